"""Accounting: one UsageRecord per request to an upstream (SPEC sections 8 and 9).

The chat and the proxy API both write here, and the usage pages read the
per-day and per-model totals. Loaded as part of the providers app's models by
the import at the end of providers/models.py.
"""

import asyncio
import contextvars
import logging
import re
import weakref
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from providers.database import database_sync_to_async
from providers.events import Usage

logger = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # nginx's code for "the client went away first"
_ERROR_LENGTH = 500
_COST_PLACES = Decimal("1e-10")
# Anything shaped like a bearer token or API key is cut out of error texts:
# upstreams sometimes echo the key they were sent.
_SECRET = re.compile(r"(?i)\b(?:bearer\s+\S+|(?:sk|sb|pk|key)-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,})")


def _scrub(error: str) -> str:
    return _SECRET.sub("[redacted]", error or "").strip()[:_ERROR_LENGTH]


class UsageRecordQuerySet(models.QuerySet):
    def for_user(self, user) -> "UsageRecordQuerySet":
        return self.filter(user=user)

    def last_days(self, days: int) -> "UsageRecordQuerySet":
        """Records from the start of the day `days - 1` days ago (local time) on."""
        first_day = timezone.localdate() - timedelta(days=days - 1)
        start = timezone.make_aware(datetime.combine(first_day, time.min))
        return self.filter(created_at__gte=start)

    def _totals(self) -> "UsageRecordQuerySet":
        return self.annotate(
            requests=Count("id"),
            prompt_tokens_total=Sum("prompt_tokens"),
            completion_tokens_total=Sum("completion_tokens"),
            reasoning_tokens_total=Sum("reasoning_tokens"),
            cached_tokens_total=Sum("cached_tokens"),
            total_tokens=Sum(F("prompt_tokens") + F("completion_tokens")),
            # None when no record of the group has a known cost.
            cost_total=Sum("cost"),
        )

    def daily_totals(self, days: int = 30) -> "UsageRecordQuerySet":
        """One dict per day with records, oldest first: `day` plus the totals."""
        return self.last_days(days).annotate(day=TruncDate("created_at")).values("day")._totals().order_by("day")

    def per_model_totals(self, days: int = 30) -> "UsageRecordQuerySet":
        """One dict per (provider, model), most expensive, then most used, first."""
        return (
            self.last_days(days)
            .values("provider", "model")
            ._totals()
            .order_by(F("cost_total").desc(nulls_last=True), "-total_tokens", "provider", "model")
        )


class UsageRecord(models.Model):
    """What one request to an upstream cost, from the chat or the proxy API."""

    class Source(models.TextChoices):
        API = "api", _("Proxy API")
        CHAT = "chat", _("Chat")
        TITLE = "title", _("Conversation title")

    class CostSource(models.TextChoices):
        UNKNOWN = "", _("Unknown")
        PROVIDER = "provider", _("Reported by the provider")
        GENERATION = "generation", _("Looked up after the generation")
        CATALOGUE = "catalogue", _("Computed from catalogue prices")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records", verbose_name=_("user")
    )
    # A plain slug, not choices: records outlive a provider's removal.
    provider = models.CharField(_("provider"), max_length=32)
    model = models.CharField(_("model"), max_length=200)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.PositiveIntegerField(
        _("completion tokens"), default=0, help_text=_("Includes the reasoning tokens.")
    )
    reasoning_tokens = models.PositiveIntegerField(_("reasoning tokens"), default=0)
    cached_tokens = models.PositiveIntegerField(
        _("cached tokens"), default=0, help_text=_("Prompt tokens read from the provider's cache.")
    )
    cost = models.DecimalField(_("cost (USD)"), max_digits=20, decimal_places=10, null=True, blank=True)
    cost_source = models.CharField(
        _("cost source"), max_length=12, choices=CostSource.choices, default=CostSource.UNKNOWN, blank=True
    )
    time_to_first_token = models.FloatField(_("time to first token (s)"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), default=0.0)
    status_code = models.PositiveSmallIntegerField(
        _("status"), default=200, help_text=_("200 on success, the upstream's status on error, 499 if the client left.")
    )
    error = models.CharField(_("error"), max_length=_ERROR_LENGTH, blank=True)
    # A default rather than auto_now_add, so imports and tests can date records.
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        indexes = [models.Index(fields=["user", "created_at"], name="providers_usage_user_created")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.provider}/{self.model} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def build(cls, *, usage: Usage | None = None, **fields) -> "UsageRecord":
        """An unsaved record. `usage` fills the token and cost fields not given explicitly."""
        if usage is not None:
            for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"):
                fields.setdefault(name, getattr(usage, name))
            if "cost" not in fields:
                fields["cost"] = usage.cost
                fields.setdefault("cost_source", usage.cost_source if usage.cost is not None else "")
        for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"):
            # Upstreams have been seen to report negative or missing counts.
            fields[name] = max(int(fields.get(name) or 0), 0)
        if fields.get("cost") is not None:
            fields["cost"] = Decimal(fields["cost"]).quantize(_COST_PLACES)
        else:
            fields["cost_source"] = ""
        fields["error"] = _scrub(fields.get("error", ""))
        return cls(**fields)

    @classmethod
    def record(cls, **fields) -> "UsageRecord":
        """Save a record now. Takes the model's fields and optionally `usage=`."""
        record = cls.build(**fields)
        record.save()
        return record

    @classmethod
    async def arecord(cls, **fields) -> "UsageRecord":
        record = cls.build(**fields)
        await record.asave()
        return record


def record_in_background(**fields) -> asyncio.Future | None:
    """Write a UsageRecord without delaying the caller (a stream's last chunk).

    Queues the record for the running loop's writer and returns a future of
    the saved record (None if it could not be saved: a failure is logged,
    never raised). Outside an event loop the record is written at once.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        try:
            UsageRecord.record(**fields)
        except Exception as exc:
            _log_failure(exc, fields)
        return None
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _BatchWriter()
    return writer.add(fields)


async def wait_for_background_writes() -> None:
    """Wait for the queued writes (tests, and a graceful shutdown)."""
    writer = _writers.get(asyncio.get_running_loop())
    if writer is not None:
        await writer.idle()


class _BatchWriter:
    """A loop's usage writes, saved in batches.

    A burst of streams ends within milliseconds, and one INSERT each would be
    one hop through the sync thread and one commit each, queued ahead of the
    other synchronous work of the process. Here the first record is saved at
    once; whatever arrives meanwhile waits for that save and goes in the next
    batch: one hop and one transaction for all of them. Nothing waits on a
    timer, so a lone record is written as soon as before.
    """

    def __init__(self) -> None:
        self.queue: list[tuple[dict, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def add(self, fields: dict) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.append((fields, future))
        if not self.busy:
            # A fresh context: a request's would send the save to that request's sync thread.
            self._task = loop.create_task(self._drain(), context=contextvars.Context())
        return future

    async def idle(self) -> None:
        """Return when every queued record has been saved (or given up on)."""
        while self.busy:
            await asyncio.shield(self._task)  # a cancelled waiter must not cancel the writer

    async def _drain(self) -> None:
        # No await between the queue found empty and the task's end: a record
        # added later finds the writer idle and starts a new task.
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                saved = await _save_batch([fields for fields, _future in batch])
            except Exception as exc:  # the database is unreachable: the batch is lost, and said so
                saved = [None] * len(batch)
                for fields, _future in batch:
                    _log_failure(exc, fields)
            for (_fields, future), record in zip(batch, saved, strict=True):
                if not future.done():
                    future.set_result(record)


_writers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _BatchWriter]" = weakref.WeakKeyDictionary()


def _save(batch: list[dict]) -> list[UsageRecord | None]:
    """Save `batch` in one transaction; if that fails, each record on its own, so one bad record loses only itself."""
    records: list[UsageRecord | None] = []
    for fields in batch:
        try:
            records.append(UsageRecord.build(**fields))
        except Exception as exc:
            _log_failure(exc, fields)
            records.append(None)
    try:
        with transaction.atomic():
            UsageRecord.objects.bulk_create([record for record in records if record is not None])
        return records
    except Exception:  # noqa: BLE001 - which record broke the batch is found below
        pass
    saved: list[UsageRecord | None] = []
    for record, fields in zip(records, batch, strict=True):
        if record is not None:
            record.pk = None
            try:
                record.save()
            except Exception as exc:
                _log_failure(exc, fields)
                record = None
        saved.append(record)
    return saved


# Recycles stale database connections before and after, as a request would.
_save_batch = database_sync_to_async(_save)


def _log_failure(exc: Exception, fields: dict) -> None:
    # Name the request, never its content: no key, no prompt, no traceback locals.
    user = fields.get("user")
    logger.error(
        "Usage record not saved (user %s, %s/%s): %s: %s",
        getattr(user, "pk", fields.get("user_id")),
        fields.get("provider"),
        fields.get("model"),
        type(exc).__name__,
        _scrub(str(exc)),
    )
