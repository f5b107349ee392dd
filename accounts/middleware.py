from django.utils import translation


class UserLanguageMiddleware:
    """A signed-in user's language preference wins over cookie and browser.

    Runs after LocaleMiddleware (which applied the cookie or Accept-Language)
    and AuthenticationMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            language = _preferred_language(user)
            if language:
                translation.activate(language)
                request.LANGUAGE_CODE = language
        return self.get_response(request)


def _preferred_language(user) -> str:
    from accounts.models import Preferences

    try:
        return user.preferences.language
    except Preferences.DoesNotExist:
        return ""
