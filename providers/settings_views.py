"""Settings pages for providers: a card per provider (own URL and key, Test
connection) and, for admins, the model table of SPEC section 5.

Every view answers a plain POST with a redirect (or the page with inline
errors) and an htmx request with the card alone, swapped in place.
"""

import datetime
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from providers import catalogue, ratelimit
from providers.catalogue import CatalogueError, afetch_models
from providers.credentials import CredentialError, aresolve_endpoint
from providers.endpoints import BlockedEndpoint
from providers.forms import ProviderCredentialForm
from providers.model_table import BUILT_IN, CATALOGUE, ModelTable
from providers.models import ProviderCredential
from providers.registry import PROVIDERS, Provider, configured_providers

PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class ConnectionResult:
    """What Test connection found. `kind` picks the template's wording."""

    kind: str  # "ok", "refused" (message says why), "upstream", "unreachable", "timeout"
    count: int = 0
    message: str = ""  # translated, for "refused"
    detail: str = ""  # the upstream's own words or the transport error, shown as they are
    key_source: str = ""  # "own", "server", or "" for a keyless provider

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


@dataclass
class ProviderCard:
    provider: Provider
    credential: ProviderCredential | None
    form: ProviderCredentialForm | None  # None when users may not set keys
    result: ConnectionResult | None = None
    notice: str = ""

    @property
    def status(self) -> str:
        """Which credentials a request would use, as `providers.credentials` decides."""
        credential = self.credential if self.form is not None else None
        if credential is not None:
            if credential.has_api_key:
                return "own-key-own-url" if credential.base_url else "own-key"
            if credential.base_url:
                return "own-url" if not self.provider.needs_key else "url-without-key"
        return "server" if self.provider.is_configured else "unavailable"


def _provider_or_404(slug: str) -> Provider:
    try:
        return PROVIDERS[slug]
    except KeyError:
        raise Http404("No such provider") from None


def _credential(user, provider: Provider) -> ProviderCredential | None:
    return ProviderCredential.objects.filter(user=user, provider=provider.slug).first()


def _card(provider: Provider, credential: ProviderCredential | None, form=None, **extra) -> ProviderCard:
    if settings.HIDE_USER_API_KEY:
        form = None
    elif form is None:
        form = ProviderCredentialForm(provider=provider, credential=credential)
    return ProviderCard(provider, credential, form, **extra)


def _refuse_if_keys_hidden() -> None:
    if settings.HIDE_USER_API_KEY:
        raise PermissionDenied(_("This server does not let users set their own keys."))


def _card_url(provider: Provider) -> str:
    return f"{reverse('settings:providers')}#provider-{provider.slug}"


def _respond(request: HttpRequest, card: ProviderCard) -> HttpResponse:
    """The card alone for htmx; otherwise the whole page with this card as given."""
    if request.htmx:
        return render(request, "settings/_provider_card.html", {"card": card})
    return _render_page(request, {card.provider.slug: card})


def _render_page(request: HttpRequest, replaced: dict[str, ProviderCard] | None = None) -> HttpResponse:
    replaced = replaced or {}
    credentials = {c.provider: c for c in ProviderCredential.objects.filter(user=request.user)}
    cards = [replaced.get(slug) or _card(p, credentials.get(slug)) for slug, p in PROVIDERS.items()]
    context = {"cards": cards, "section": "providers", "keys_hidden": settings.HIDE_USER_API_KEY}
    return render(request, "settings/providers.html", context)


def providers(request: HttpRequest) -> HttpResponse:
    return _render_page(request)


@sensitive_post_parameters("api_key")
@require_POST
def provider_save(request: HttpRequest, provider: str) -> HttpResponse:
    provider = _provider_or_404(provider)
    _refuse_if_keys_hidden()
    credential = _credential(request.user, provider)
    form = ProviderCredentialForm(request.POST, provider=provider, credential=credential)
    if not form.is_valid():
        return _respond(request, _card(provider, credential, form))
    credential = form.save(request.user)
    notice = _("Saved your settings for %(provider)s.") % {"provider": provider.name}
    if request.htmx:
        return _respond(request, _card(provider, credential, notice=notice))
    messages.success(request, notice)
    return redirect(_card_url(provider))


@require_POST
def provider_clear(request: HttpRequest, provider: str) -> HttpResponse:
    provider = _provider_or_404(provider)
    _refuse_if_keys_hidden()
    ProviderCredential.objects.filter(user=request.user, provider=provider.slug).delete()
    notice = _("Removed your key and URL for %(provider)s.") % {"provider": provider.name}
    if request.htmx:
        return _respond(request, _card(provider, None, notice=notice))
    messages.success(request, notice)
    return redirect(_card_url(provider))


async def _test_connection(user, provider: Provider) -> ConnectionResult:
    try:
        endpoint = await aresolve_endpoint(user, provider)
    except CredentialError as exc:
        return ConnectionResult("refused", message=str(exc.message))
    if not endpoint.api_key:
        key_source = ""
    else:
        key_source = "server" if endpoint.api_key in provider.server_keys else "own"
    try:
        models = await afetch_models(
            provider, base_url=endpoint.base_url, key=endpoint.api_key, user_supplied=endpoint.user_supplied
        )
    except CatalogueError as exc:
        # afetch_models raises `from None`; what went wrong is still the context.
        cause = exc.__context__
        if isinstance(cause, BlockedEndpoint):
            return ConnectionResult("refused", message=str(cause.user_message), key_source=key_source)
        if isinstance(cause, httpx.TimeoutException):
            return ConnectionResult("timeout", key_source=key_source)
        detail = str(exc) if endpoint.user_supplied else _without_server_url(str(exc), provider, endpoint.base_url)
        if isinstance(cause, (httpx.TransportError, httpx.InvalidURL)):
            return ConnectionResult("unreachable", detail=detail, key_source=key_source)
        return ConnectionResult("upstream", detail=detail, key_source=key_source)
    return ConnectionResult("ok", count=len(models), key_source=key_source)


def _without_server_url(detail: str, provider: Provider, base_url: str) -> str:
    """The error without the address the admin set: users are not shown it (Provider.public_server_url)."""
    if provider.public_server_url:
        return detail
    password = urlsplit(base_url).password

    def scrubbed(text: str) -> str:  # as the catalogue has scrubbed `detail` (its secrets)
        return text.replace(password, "***") if password else text

    parts = urlsplit(base_url)
    # Longest first: the URL in parentheses, the URL, then its host and port
    # as a socket error names them ("('10.0.0.5', 11434)").
    for url in (provider.url_for(base_url, provider.models_path), base_url.rstrip("/"), parts.netloc):
        if url:
            detail = detail.replace(f" ({scrubbed(url)})", "").replace(scrubbed(url), "…")
    for part in (parts.hostname, str(parts.port or "")):
        if part:
            detail = detail.replace(part, "…")
    return detail


@require_POST
async def provider_test(request: HttpRequest, provider: str) -> HttpResponse:
    """Fetch the model list with the key and URL a chat would use, and say how it went.

    Async, so a slow upstream holds no thread under Daphne; the URL guard
    refuses a private address when the connection is made.
    """
    provider = _provider_or_404(provider)
    user = await request.auser()
    # Each test is an upstream request: it counts against RATE_LIMIT like the API's.
    if (retry_after := await ratelimit.ahit(user.pk)) is not None:
        result = ConnectionResult("refused", message=ratelimit.refusal(retry_after))
    else:
        result = await _test_connection(user, provider)

    def respond() -> HttpResponse:
        return _respond(request, _card(provider, _credential(user, provider), result=result))

    return await sync_to_async(respond)()


# The model table (admins) ---------------------------------------------------


@dataclass(frozen=True)
class ModelRow:
    provider: Provider
    icon: str
    name: str
    label: str
    available: bool
    decided_by: str
    decided_by_entry: bool  # a CUSTOM_MODELS entry, shown as code
    context_length: str
    prompt_price: str
    completion_price: str
    search: str  # lower-cased text the filter matches


def _require_admin(request: HttpRequest) -> None:
    # A 404, not a 403: the page does not exist for other users.
    if not request.user.is_staff:
        raise Http404


def _per_million(price: Decimal | None) -> str:
    if price is None:
        return ""
    # format(..., "f") and not str(): normalize() turns 10 into "1E+1".
    return format((price * PER_MILLION).normalize(), "f")


def _model_rows(table: ModelTable, query: str) -> list[ModelRow]:
    icons = {slug: static(p.icon) for slug, p in PROVIDERS.items()}
    origin = {BUILT_IN: _("built-in"), CATALOGUE: _("catalogue")}
    needle = query.casefold()
    rows = []
    for entry in table.rows:
        provider = PROVIDERS[entry.provider]
        search = f"{entry.name} {entry.label} {provider.name} {entry.decided_by}".casefold()
        if needle and needle not in search:
            continue
        rows.append(
            ModelRow(
                provider=provider,
                icon=icons[entry.provider],
                name=entry.name,
                label=entry.label if entry.label != entry.name else "",
                available=entry.available,
                decided_by=origin.get(entry.decided_by, entry.decided_by),
                decided_by_entry=entry.decided_by not in origin,
                context_length=intcomma(entry.context_length) if entry.context_length else "",
                prompt_price=_per_million(entry.prompt_price),
                completion_price=_per_million(entry.completion_price),
                search=search,
            )
        )
    return rows


def _catalogue_status() -> list[dict]:
    statuses = []
    for provider, held in catalogue.status():
        fetched = held.fetched_at if held else None
        failed = held.error_at if held and held.error else None
        statuses.append(
            {
                "provider": provider,
                "count": len(held.models) if held and fetched else None,
                "fetched_at": datetime.datetime.fromtimestamp(fetched, datetime.UTC) if fetched else None,
                "error": held.error if held else "",
                "error_at": datetime.datetime.fromtimestamp(failed, datetime.UTC) if failed else None,
            }
        )
    return statuses


def models(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    table = ModelTable.current()
    query = request.GET.get("q", "").strip()[:200]
    rows = _model_rows(table, query)
    default = table.default_model()
    context = {
        "section": "models",
        "rows": rows,
        "total": len(table.rows),
        "available_count": sum(row.available for row in table.rows),
        "query": query,
        "problems": table.problems,
        "restricted": table.restricted,
        "custom_models": settings.CUSTOM_MODELS,
        "default_model_setting": settings.DEFAULT_MODEL,
        "default_model": f"{default[1]}@{default[0]}" if default else "",
        "statuses": _catalogue_status(),
        "now": timezone.now(),
    }
    return render(request, "settings/models.html", context)


@require_POST
def models_refresh(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    providers = configured_providers()
    if not providers:
        messages.info(request, _("No provider is configured on this server, so there is no model list to refresh."))
        return redirect("settings:models")
    # One thread per provider: a slow upstream should not hold up the others.
    with ThreadPoolExecutor(max_workers=len(providers)) as pool:
        results = list(pool.map(catalogue.refresh, providers))
    failed = [PROVIDERS[result.provider].name for result in results if result.error]
    if failed:
        messages.error(
            request,
            _("Some model lists could not be refreshed: %(providers)s. The last good copies are kept.")
            % {"providers": ", ".join(failed)},
        )
    else:
        messages.success(request, _("The model lists were refreshed."))
    return redirect("settings:models")
