"""Usage accounting (SPEC sections 8 and 9): one record per upstream request, and totals."""

import asyncio
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from providers.events import Usage
from providers.usage import CLIENT_CLOSED, UsageRecord, record_in_background, wait_for_background_writes

BASE = {"provider": "openrouter", "model": "openai/gpt-4o-mini", "source": UsageRecord.Source.API}


def _noon(days_ago: int) -> datetime:
    return timezone.make_aware(datetime.combine(timezone.localdate() - timedelta(days=days_ago), time(12)))


@pytest.mark.django_db
def test_record_saves_a_row_from_a_usage_event(alice):
    usage = Usage(
        prompt_tokens=120, completion_tokens=80, reasoning_tokens=30, cached_tokens=100,
        cost=Decimal("0.00042"), cost_source="provider",
    )  # fmt: skip
    UsageRecord.record(user=alice, usage=usage, duration=2.5, time_to_first_token=0.4, **BASE)
    row = UsageRecord.objects.values().get()
    assert row["user_id"] == alice.pk
    assert (row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"], row["cached_tokens"]) == (
        120, 80, 30, 100,
    )  # fmt: skip
    assert row["cost"] == Decimal("0.00042") and row["cost_source"] == "provider"
    assert (row["status_code"], row["duration"], row["time_to_first_token"]) == (200, 2.5, 0.4)


@pytest.mark.django_db
def test_failed_request_keeps_status_and_a_short_error_without_the_key(alice):
    error = "Invalid API key sk-or-v1-0123456789abcdef, Authorization: Bearer abc.def " + "x" * 1000
    UsageRecord.record(user=alice, status_code=401, error=error, **BASE)
    row = UsageRecord.objects.get()
    assert row.status_code == 401
    assert len(row.error) <= 500
    assert row.error.startswith("Invalid API key [redacted]")
    assert "0123456789abcdef" not in row.error and "abc.def" not in row.error
    assert (row.prompt_tokens, row.cost, row.cost_source) == (0, None, "")


@pytest.mark.django_db
def test_cost_source_is_dropped_when_the_cost_is_unknown(alice):
    record = UsageRecord.record(user=alice, usage=Usage(prompt_tokens=5, cost_source="catalogue"), **BASE)
    assert UsageRecord.objects.get(pk=record.pk).cost_source == ""


@pytest.mark.django_db(transaction=True)
async def test_arecord_writes_from_async_code(alice):
    await UsageRecord.arecord(user=alice, status_code=CLIENT_CLOSED, usage=Usage(completion_tokens=7), **BASE)
    row = await UsageRecord.objects.aget()
    assert (row.status_code, row.completion_tokens) == (499, 7)


@pytest.mark.django_db(transaction=True)
async def test_background_write_does_not_wait_for_the_database(alice):
    task = record_in_background(user=alice, usage=Usage(prompt_tokens=3, completion_tokens=4), duration=1.0, **BASE)
    assert isinstance(task, asyncio.Future) and not task.done()
    record = await task
    row = await UsageRecord.objects.aget()
    assert row.pk == record.pk and row.total_tokens == 7


@pytest.mark.django_db(transaction=True)
async def test_background_write_failure_is_logged_without_the_key(alice, caplog):
    # A negative status breaks the column's check constraint.
    record_in_background(user=alice, status_code=-1, error="bad key sk-live-0123456789abcdef", **BASE)
    await wait_for_background_writes()
    assert not await UsageRecord.objects.aexists()
    assert "Usage record not saved" in caplog.text
    assert "0123456789abcdef" not in caplog.text


@pytest.mark.django_db
def test_background_write_outside_an_event_loop_writes_at_once(alice):
    assert record_in_background(user=alice, **BASE) is None
    assert UsageRecord.objects.filter(user=alice).count() == 1


@pytest.fixture
def history(alice, bob):
    """Alice's requests over 40 days on two models, and one of Bob's."""
    rows = [
        # days ago, model, prompt, completion, cost
        (0, "a", 100, 10, Decimal("0.0010000001")),
        (0, "b", 200, 20, None),
        (1, "a", 300, 30, Decimal("0.25")),
        (1, "a", 400, 40, Decimal("0.125")),
        (29, "b", 500, 50, Decimal("1.5")),
        (30, "a", 10_000, 1000, Decimal("99")),  # outside a 30-day window
    ]
    for days_ago, model, prompt, completion, cost in rows:
        UsageRecord.record(
            user=alice, provider="openai", model=model, source="chat", created_at=_noon(days_ago),
            prompt_tokens=prompt, completion_tokens=completion, cost=cost, cost_source="provider" if cost else "",
        )  # fmt: skip
    UsageRecord.record(user=bob, created_at=_noon(0), prompt_tokens=7777, cost=Decimal("5"), **BASE)
    return rows


@pytest.mark.django_db
def test_daily_totals_are_the_sums_per_day(alice, history):
    days = list(UsageRecord.objects.for_user(alice).daily_totals(days=30))
    assert [d["day"] for d in days] == [_noon(29).date(), _noon(1).date(), _noon(0).date()]
    today, yesterday, oldest = days[2], days[1], days[0]
    assert (today["requests"], today["prompt_tokens_total"], today["completion_tokens_total"]) == (2, 300, 30)
    assert today["total_tokens"] == 330 and today["cost_total"] == Decimal("0.0010000001")
    assert (yesterday["total_tokens"], yesterday["cost_total"]) == (770, Decimal("0.375"))
    assert (oldest["total_tokens"], oldest["cost_total"]) == (550, Decimal("1.5"))
    assert sum(d["cost_total"] for d in days) == Decimal("1.8760000001")


@pytest.mark.django_db
def test_per_model_totals_are_the_sums_per_model(alice, history):
    models = list(UsageRecord.objects.for_user(alice).per_model_totals(days=30))
    assert [(m["provider"], m["model"]) for m in models] == [("openai", "b"), ("openai", "a")]
    b, a = models
    assert (b["requests"], b["prompt_tokens_total"], b["completion_tokens_total"]) == (2, 700, 70)
    assert b["cost_total"] == Decimal("1.5")
    assert (a["requests"], a["total_tokens"], a["cost_total"]) == (3, 880, Decimal("0.3760000001"))


@pytest.mark.django_db
def test_a_longer_window_includes_older_records(alice, history):
    models = {m["model"]: m for m in UsageRecord.objects.for_user(alice).per_model_totals(days=31)}
    assert models["a"]["cost_total"] == Decimal("99.3760000001")


@pytest.mark.django_db
def test_totals_across_users_for_the_admin(history):
    totals = {m["model"]: m for m in UsageRecord.objects.per_model_totals(days=30)}
    assert totals["openai/gpt-4o-mini"]["prompt_tokens_total"] == 7777
    assert totals["a"]["requests"] == 3


@pytest.mark.django_db(transaction=True)
async def test_a_burst_of_records_is_saved_whole_even_with_a_bad_one(alice, caplog):
    # Twenty streams ending together, one of them with a record the database refuses.
    futures = [record_in_background(user=alice, completion_tokens=n, **BASE) for n in range(20)]
    futures.insert(7, record_in_background(user=alice, status_code=-1, **BASE))
    records = await asyncio.gather(*futures)
    assert records[7] is None and "Usage record not saved" in caplog.text
    saved = [r.completion_tokens async for r in UsageRecord.objects.order_by("pk")]
    assert saved == list(range(20))
    assert [r.pk for r in records if r is not None] == [r.pk async for r in UsageRecord.objects.order_by("pk")]
