"""Settings pages of the account: personal API tokens and preferences."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.forms import ApiTokenForm, PreferencesForm
from accounts.models import ApiToken, Preferences
from chatapp.picker import picker_groups
from providers.api import forget_tokens
from providers.credentials import reachable_providers
from providers.model_table import ModelTable
from providers.registry import PROVIDERS

# API tokens ------------------------------------------------------------------


def _get_token_for_user(request: HttpRequest, token_id: int) -> ApiToken:
    """The one ownership check: another user's token is a 404."""
    return get_object_or_404(ApiToken, pk=token_id, user=request.user)


def _render_tokens(request: HttpRequest, form: ApiTokenForm | None = None, **extra) -> HttpResponse:
    context = {
        "section": "tokens",
        "form": form or ApiTokenForm(),
        "tokens": ApiToken.objects.filter(user=request.user),
        "api_base": request.build_absolute_uri("/api/"),
        **extra,
    }
    template = "settings/_tokens.html" if request.htmx else "settings/tokens.html"
    return render(request, template, context)


def tokens(request: HttpRequest) -> HttpResponse:
    return _render_tokens(request)


@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return _render_tokens(request, form)
    token, raw = ApiToken.issue(request.user, form.cleaned_data["name"])
    # Answered directly rather than redirected: only the hash is stored, so
    # the raw token exists in this response and nowhere else.
    response = _render_tokens(request, new_token=token, raw_token=raw)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = _get_token_for_user(request, token_id)
    token.revoke()
    # The proxy API remembers valid tokens for a few seconds; in this process
    # the revocation acts at once (others catch up within TOKEN_CACHE_SECONDS).
    forget_tokens()
    notice = _("The token “%(name)s” was revoked.") % {"name": token.name}
    if request.htmx:
        return _render_tokens(request, notice=notice)
    messages.success(request, notice)
    return redirect("settings:tokens")


# Preferences -----------------------------------------------------------------


def _preferences_form(request: HttpRequest, prefs: Preferences) -> PreferencesForm:
    table = ModelTable.current()
    providers = reachable_providers(request.user)
    default = table.default_model(providers)
    if default is not None:
        entry = table.find(*default)
        name = entry.label if entry else default[1]
        label = _("Server default (%(model)s, %(provider)s)") % {"model": name, "provider": PROVIDERS[default[0]].name}
    else:
        label = _("Server default")
    data = request.POST if request.method == "POST" else None
    return PreferencesForm(data, instance=prefs, model_groups=picker_groups(providers, table), default_label=label)


def _remember_language(response: HttpResponse, language: str) -> None:
    """The cookie LocaleMiddleware reads, so the choice holds after signing out too."""
    if not language:
        # "Follow the browser": Accept-Language decides again.
        response.delete_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            path=settings.LANGUAGE_COOKIE_PATH,
            domain=settings.LANGUAGE_COOKIE_DOMAIN,
            samesite=settings.LANGUAGE_COOKIE_SAMESITE,
        )
        return
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )


def preferences(request: HttpRequest) -> HttpResponse:
    prefs = Preferences.for_user(request.user)
    form = _preferences_form(request, prefs)
    if request.method == "POST" and form.is_valid():
        prefs = form.save()
        if prefs.language:
            translation.activate(prefs.language)  # the confirmation below is in the new language
        messages.success(request, _("Your preferences were saved."))
        response = redirect("settings:preferences")
        _remember_language(response, prefs.language)
        return response
    return render(request, "settings/preferences.html", {"section": "preferences", "form": form})
