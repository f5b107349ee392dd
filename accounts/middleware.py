from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils import translation


class UserLanguageMiddleware:
    """A signed-in user's language preference wins over cookie and browser.

    Runs after LocaleMiddleware (which applied the cookie or Accept-Language)
    and AuthenticationMiddleware. Async-capable, so async views (the proxy
    API) are not pushed through a thread for it.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        user = request.user
        if user.is_authenticated:
            _activate(request, _preferred_language(user))
        return self.get_response(request)

    async def __acall__(self, request):
        user = await request.auser()
        if user.is_authenticated:
            _activate(request, await _apreferred_language(user))
        return await self.get_response(request)


def _activate(request, language: str) -> None:
    if language:
        translation.activate(language)
        request.LANGUAGE_CODE = language


def _preferred_language(user) -> str:
    from accounts.models import Preferences

    return Preferences.objects.filter(user=user).values_list("language", flat=True).first() or ""


async def _apreferred_language(user) -> str:
    from accounts.models import Preferences

    return await Preferences.objects.filter(user=user).values_list("language", flat=True).afirst() or ""
