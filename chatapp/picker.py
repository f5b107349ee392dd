"""The model picker: what the allow-list offers, grouped by provider."""

from dataclasses import dataclass
from decimal import Decimal

from chatapp.models import Preset
from providers.model_table import ModelTable
from providers.registry import PROVIDERS, Provider

PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class PickerOption:
    ref: str  # "name@provider", what the conversation stores
    name: str
    label: str
    context_length: int | None
    prompt_price: Decimal | None  # USD per million tokens
    completion_price: Decimal | None
    text_only: bool = False  # its catalogue says it takes no images

    @property
    def context_size(self) -> str:
        """The context length as a picker has room for: "128K", "1M", "1.05M"; "" when unknown."""
        length = self.context_length or 0
        for unit, size in (("M", 1_000_000), ("K", 1000)):
            if length >= size:
                return f"{length / size:.3g}{unit}"
        return str(length) if length else ""


@dataclass(frozen=True)
class ProviderGroup:
    provider: Provider
    options: list[PickerOption]


def model_ref(provider_slug: str, model: str) -> str:
    return f"{model}@{provider_slug}"


def _per_million(price: Decimal | None) -> Decimal | None:
    return None if price is None else (price * PER_MILLION).normalize()


def picker_groups(providers: list[str], table: ModelTable | None = None) -> list[ProviderGroup]:
    """The models of `providers` (those the user can reach) that the allow-list offers."""
    table = table or ModelTable.current()
    groups = []
    for provider in (PROVIDERS[slug] for slug in providers):
        options = [
            PickerOption(
                ref=model_ref(provider.slug, entry.name),
                name=entry.name,
                label=entry.label or entry.name,
                context_length=entry.context_length,
                prompt_price=_per_million(entry.prompt_price),
                completion_price=_per_million(entry.completion_price),
                text_only=entry.text_only,
            )
            for entry in table.available(provider.slug)
        ]
        if options:
            groups.append(ProviderGroup(provider, sorted(options, key=lambda o: o.label.lower())))
    return groups


def picker_context(providers: list[str], selected: str, table: ModelTable | None = None) -> dict:
    """What chatapp/_model_select.html shows: the groups, the selection, and a model no longer offered.

    A conversation whose model left the allow-list (or an imported one) says
    so in the picker instead of showing another model as if it were chosen.
    """
    groups = picker_groups(providers, table)
    offered = any(option.ref == selected for group in groups for option in group.options)
    return {"model_groups": groups, "selected_model": selected, "unavailable_model": "" if offered else selected}


def default_model_ref(user, providers: list[str], table: ModelTable | None = None) -> str:
    """The model new chats of the user's start with: that of the preset they start them from, else their preferred
    model, each if still allowed; else DEFAULT_MODEL, else the first offered."""
    table = table or ModelTable.current()
    preset_model = Preset.objects.for_new_chats(user).values_list("model", flat=True).first()
    for preferred in (preset_model, getattr(getattr(user, "preferences", None), "default_model", "")):
        resolved = table.resolve(preferred, providers) if preferred else None
        if resolved is not None and resolved[0] in providers:
            return model_ref(*resolved)
    default = table.default_model(providers)
    return model_ref(*default) if default else ""
