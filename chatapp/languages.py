"""The reader's language outside a request (WebSocket frames are rendered for it)."""

from django.conf import settings
from django.http.cookie import parse_cookie
from django.utils.translation import get_supported_language_variant
from django.utils.translation.trans_real import parse_accept_lang_header


def language_for_scope(scope: dict, user) -> str:
    """The user's preference, else the language cookie, else Accept-Language."""
    from accounts.models import Preferences

    preferred = Preferences.objects.filter(user=user).values_list("language", flat=True).first()
    if preferred:
        return preferred
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    cookie = parse_cookie(headers.get("cookie", "")).get(settings.LANGUAGE_COOKIE_NAME)
    candidates = [cookie] if cookie else []
    candidates += [code for code, _q in parse_accept_lang_header(headers.get("accept-language", ""))]
    for code in candidates:
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE
