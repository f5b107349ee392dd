"""The model table: which models exist, what they are called, which are allowed.

SPEC section 5. The table starts from every provider's built-in list plus the
live catalogue of each provider the server can reach (a server key, or a URL
for keyless Ollama), then applies `CUSTOM_MODELS`, NextChat's language:

- Entries are comma-separated; whitespace around them and empty entries are
  ignored. They apply left to right, so `-x,+x` enables x and `+x,-x`
  disables it.
- `+name` or `name` enables (adding the model if unknown), `-name` disables,
  `name=Display Name` enables and sets the label (split at the first `=`).
- `name@Provider` binds to a provider, by slug or display name in any case
  (`@OpenRouter`, `@openrouter`, `@Google`). The split is at the *last* `@`,
  so `org/model@v2@Ollama` is model `org/model@v2` of Ollama. An entry whose
  text after the last `@` names no provider is reported in `problems` and
  ignored: a typo must not turn into a model called `gpt-4o@OpenAl`.
- Model names are case-sensitive.
- `-all` / `+all` disable / enable every model known so far;
  `-all@Provider` / `+all@Provider` only that provider's.
- `*` in a name matches any run of characters among the models known so far
  (built-ins, catalogue, earlier additions) of that provider, or of every
  provider without `@`: `+anthropic/*@OpenRouter`. A wildcard never adds a
  model, and its label, if any, is ignored.

A model named without a provider (NextChat's trap: there it lands on every
provider that knows the name, or on a phantom "Custom" provider):
- `-name` disables it at every provider that knows it.
- `+name` enables it at the server-configured providers that know it; if
  none do, at any provider whose built-in list has it (users may bring their
  own key); if no provider knows it, it is added to the *home* provider: the
  first server-configured provider speaking the OpenAI chat protocol in
  registry order (OpenRouter, OpenAI, DeepSeek, Google, Ollama), else OpenAI.
The same rule resolves a stored model reference without a provider
(`ModelTable.resolve`) and `DEFAULT_MODEL=name`.

Each row records in `decided_by` the entry that last decided it, or
"built-in" / "catalogue" when no entry touched it; the admin page shows it.

With `CUSTOM_MODELS` empty, any model name is accepted for any provider, as
in NextChat; the table is then only the picker's list. Once it is set
(`restricted`), only rows the table makes available are accepted.
"""

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.utils.translation import gettext as _

from providers import catalogue
from providers.catalogue import CatalogueModel
from providers.registry import PROVIDERS, configured_providers, get_provider

BUILT_IN = "built-in"
CATALOGUE = "catalogue"
CUSTOM = "custom"
ALL = "all"


@dataclass(frozen=True)
class ModelEntry:
    """One row of the table: a model of one provider."""

    provider: str  # slug
    name: str  # the id sent upstream; case-sensitive
    label: str
    available: bool
    decided_by: str  # the CUSTOM_MODELS entry that last decided this row, or BUILT_IN / CATALOGUE
    source: str = BUILT_IN  # where the row came from: BUILT_IN, CATALOGUE or CUSTOM
    context_length: int | None = None
    prompt_price: Decimal | None = None  # USD per token
    completion_price: Decimal | None = None  # USD per token
    input_modalities: tuple[str, ...] = ()
    supports_reasoning: bool | None = None

    @property
    def provider_name(self) -> str:
        return PROVIDERS[self.provider].name

    @property
    def ref(self) -> str:
        """The reference stored on a conversation: `name@provider`."""
        return f"{self.name}@{self.provider}"

    @property
    def text_only(self) -> bool:
        """Whether its catalogue says it takes no images (one that says nothing, a custom model, may take them)."""
        return bool(self.input_modalities) and "image" not in self.input_modalities


@dataclass(frozen=True)
class Rule:
    """One parsed CUSTOM_MODELS entry."""

    text: str  # the entry as written, whitespace stripped
    enable: bool
    name: str
    provider: str | None  # slug, None when the entry names none
    label: str = ""

    @property
    def is_all(self) -> bool:
        return self.name == ALL

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name


@dataclass(frozen=True)
class Problem:
    """A CUSTOM_MODELS entry that was ignored or did nothing, for the admin page."""

    UNKNOWN_PROVIDER: ClassVar[str] = "unknown-provider"
    NO_NAME: ClassVar[str] = "no-name"
    NO_MATCH: ClassVar[str] = "no-match"

    entry: str
    kind: str
    provider: str = ""  # what followed the last "@", for UNKNOWN_PROVIDER

    @property
    def message(self) -> str:
        # Translated when read: one memoised table serves every language.
        if self.kind == self.UNKNOWN_PROVIDER:
            return _("No provider is called “%(provider)s”; the entry is ignored.") % {"provider": self.provider}
        if self.kind == self.NO_NAME:
            return _("The entry names no model; it is ignored.")
        return _("The entry matches no known model.")


def parse_model_ref(ref: str) -> tuple[str | None, str]:
    """`"name@Provider"` -> `(provider slug, name)`; `(None, name)` without a known provider.

    The split is at the last `@`, and only when what follows it names a
    provider, so a model id containing `@` survives.
    """
    ref = (ref or "").strip()
    name, at, provider_text = ref.rpartition("@")
    if at:
        provider = get_provider(provider_text)
        if provider is not None and name.strip():
            return provider.slug, name.strip()
    return None, ref


def parse_custom_models(text: str) -> tuple[list[Rule], list[Problem]]:
    rules: list[Rule] = []
    problems: list[Problem] = []
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        body, enable = entry, True
        if body[0] in "+-":
            body, enable = body[1:], body[0] == "+"
        target, _eq, label = body.partition("=")
        name, at, provider_text = target.strip().rpartition("@")
        provider = None
        if at:
            found = get_provider(provider_text)
            if found is None:
                problems.append(Problem(entry, Problem.UNKNOWN_PROVIDER, provider_text.strip()))
                continue
            provider = found.slug
        else:
            name = provider_text
        name = name.strip()
        if not name:
            problems.append(Problem(entry, Problem.NO_NAME))
            continue
        rules.append(Rule(entry, enable, name, provider, label.strip()))
    return rules, problems


def _wildcard(name: str) -> re.Pattern:
    return re.compile(".*".join(re.escape(part) for part in name.split("*")), re.DOTALL)


@dataclass
class _Row:
    provider: str
    name: str
    label: str
    available: bool
    decided_by: str
    source: str
    order: int
    meta: CatalogueModel | None = None

    def freeze(self) -> ModelEntry:
        meta = self.meta or CatalogueModel(self.name)
        return ModelEntry(
            provider=self.provider,
            name=self.name,
            label=self.label,
            available=self.available,
            decided_by=self.decided_by,
            source=self.source,
            context_length=meta.context_length,
            prompt_price=meta.prompt_price,
            completion_price=meta.completion_price,
            input_modalities=meta.input_modalities,
            supports_reasoning=meta.supports_reasoning,
        )


class ModelTable:
    """The table for one `CUSTOM_MODELS` text, set of catalogues and configured providers.

    Build one directly for tests; requests use `ModelTable.current()`.
    """

    _memo: ClassVar[dict[tuple, "ModelTable"]] = {}
    _memo_lock: ClassVar[threading.Lock] = threading.Lock()
    _MEMO_SIZE: ClassVar[int] = 8

    def __init__(
        self,
        custom_models: str = "",
        catalogues: Mapping[str, Iterable[CatalogueModel]] | None = None,
        configured: Iterable[str] = (),
    ) -> None:
        self.custom_models = custom_models or ""
        self.configured: tuple[str, ...] = tuple(configured)
        self.rules, self.problems = parse_custom_models(self.custom_models)
        # Set but all invalid still counts as set: the admin meant a restriction.
        self.restricted = bool(self.rules or self.problems)
        self._rows: dict[tuple[str, str], _Row] = {}
        self._seed(catalogues or {})
        for rule in self.rules:
            self._apply(rule)
        order = {slug: i for i, slug in enumerate(PROVIDERS)}
        rows = sorted(self._rows.values(), key=lambda r: (order[r.provider], r.order))
        self.rows: list[ModelEntry] = [row.freeze() for row in rows]
        self._index = {(row.provider, row.name): row for row in self.rows}

    # -- building --------------------------------------------------------

    def _add(self, provider: str, name: str, label: str, decided_by: str, source: str, meta=None) -> _Row:
        row = _Row(provider, name, label, True, decided_by, source, len(self._rows), meta)
        self._rows[(provider, name)] = row
        return row

    def _seed(self, catalogues: Mapping[str, Iterable[CatalogueModel]]) -> None:
        for slug, provider in PROVIDERS.items():
            for name in provider.builtin_models:
                self._add(slug, name, name, BUILT_IN, BUILT_IN)
            for model in catalogues.get(slug, ()):
                row = self._rows.get((slug, model.id))
                if row is None:
                    self._add(slug, model.id, model.name or model.id, CATALOGUE, CATALOGUE, model)
                else:  # a built-in the catalogue describes
                    row.meta = model
                    row.label = model.name or row.label

    def _known(self, rule: Rule) -> list[_Row]:
        if rule.provider is not None and not (rule.is_all or rule.is_pattern):
            row = self._rows.get((rule.provider, rule.name))
            return [row] if row else []
        rows = [r for r in self._rows.values() if rule.provider is None or r.provider == rule.provider]
        if rule.is_all:
            return rows
        if rule.is_pattern:
            pattern = _wildcard(rule.name)
            return [r for r in rows if pattern.fullmatch(r.name)]
        return [r for r in rows if r.name == rule.name]

    def _targets(self, rule: Rule) -> list[_Row]:
        rows = self._known(rule)
        if rule.provider is None and rule.enable and not (rule.is_all or rule.is_pattern):
            # Prefer the providers the server can actually reach.
            served = [r for r in rows if r.provider in self.configured]
            return served or rows
        return rows

    def _apply(self, rule: Rule) -> None:
        targets = self._targets(rule)
        if not targets:
            if rule.enable and not (rule.is_all or rule.is_pattern):
                provider = rule.provider or self.home_provider()
                self._add(provider, rule.name, rule.label or rule.name, rule.text, CUSTOM)
            else:
                self.problems.append(Problem(rule.text, Problem.NO_MATCH))
            return
        for row in targets:
            row.available = rule.enable
            row.decided_by = rule.text
            if rule.enable and rule.label and not (rule.is_all or rule.is_pattern):
                row.label = rule.label

    def home_provider(self) -> str:
        """Where a model named without a provider and unknown everywhere goes."""
        for slug in self.configured:
            if PROVIDERS[slug].protocol == "openai-chat":
                return slug
        return "openai"

    # -- reading ---------------------------------------------------------

    def find(self, provider_slug: str, model: str) -> ModelEntry | None:
        return self._index.get((provider_slug, model))

    def is_allowed(self, provider_slug: str, model: str) -> bool:
        if provider_slug not in PROVIDERS or not model:
            return False
        if not self.restricted:
            return True
        row = self.find(provider_slug, model)
        return row is not None and row.available

    def available(self, provider_slug: str | None = None, providers: Iterable[str] | None = None) -> list[ModelEntry]:
        """Available rows, grouped by provider in registry order.

        `provider_slug` picks one provider whether or not the server has its
        key (a user may bring their own). Without it, rows of `providers`
        (e.g. the server-configured ones plus those the user has a key for),
        by default the server-configured providers only.
        """
        if provider_slug is not None:
            wanted = {provider_slug}
        else:
            wanted = set(self.configured if providers is None else providers)
        return [row for row in self.rows if row.available and row.provider in wanted]

    def resolve(self, ref: str, providers: Iterable[str] | None = None) -> tuple[str, str] | None:
        """A model reference (`name` or `name@Provider`) -> an allowed `(provider slug, name)`.

        Without a provider, the model goes where `+name` would enable it: an
        available row at a server-configured provider (or one of `providers`),
        then at any provider; unknown everywhere, the home provider takes it
        when the table is not restricted. None when nothing allows it.
        """
        slug, name = parse_model_ref(ref)
        if not name:
            return None
        if slug is not None:
            return (slug, name) if self.is_allowed(slug, name) else None
        reachable = set(self.configured if providers is None else providers)
        candidates = [row for row in self.rows if row.name == name and row.available]
        for row in sorted(candidates, key=lambda r: r.provider not in reachable):
            return row.provider, row.name
        if not self.restricted:
            return self.home_provider(), name
        return None

    def default_model(self, providers: Iterable[str] | None = None) -> tuple[str, str] | None:
        """DEFAULT_MODEL when it is allowed and reachable, else the first available model.

        Reachable: the provider is one of `providers`, by default the
        server-configured ones (pass the user's own too, if they have keys).

        "First" favours the admin's own order: the earliest CUSTOM_MODELS
        entry that enabled a specific model, else the table's order.
        """
        providers = list(self.configured if providers is None else providers)
        if settings.DEFAULT_MODEL.strip():
            resolved = self.resolve(settings.DEFAULT_MODEL, providers)
            if resolved is not None and resolved[0] in providers:
                return resolved
        rows = self.available(providers=providers)
        if not rows:
            return None
        named = {rule.text: index for index, rule in enumerate(self.rules) if not (rule.is_all or rule.is_pattern)}
        first = min(rows, key=lambda row: named.get(row.decided_by, len(named)))
        return first.provider, first.name

    # -- the current table -----------------------------------------------

    @classmethod
    def current(cls) -> "ModelTable":
        """The table for the current settings and cached catalogues.

        Cheap per request: one cache round trip to check the catalogues'
        stamps; the parsed table is reused while nothing changed.
        """
        providers = configured_providers()
        return cls._memoised(providers, catalogue.catalogues_for(providers))

    @classmethod
    async def acurrent(cls) -> "ModelTable":
        providers = configured_providers()
        return cls._memoised(providers, await catalogue.acatalogues_for(providers))

    @classmethod
    def _memoised(cls, providers, catalogues: Mapping[str, catalogue.Catalogue]) -> "ModelTable":
        slugs = tuple(p.slug for p in providers)
        key = (settings.CUSTOM_MODELS, slugs, tuple(catalogues[slug].stamp for slug in slugs))
        table = cls._memo.get(key)
        if table is None:
            table = cls(settings.CUSTOM_MODELS, {s: c.models for s, c in catalogues.items()}, slugs)
            with cls._memo_lock:
                while len(cls._memo) >= cls._MEMO_SIZE:
                    cls._memo.pop(next(iter(cls._memo)))
                cls._memo[key] = table
        return table

    def __repr__(self) -> str:
        available = sum(row.available for row in self.rows)
        return f"<ModelTable {available}/{len(self.rows)} available, restricted={self.restricted}>"
