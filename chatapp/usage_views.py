"""The usage pages (SPEC section 9): a user's own, a CSV of it, and the admins' view of everyone."""

import csv

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from chatapp.usage_chart import daily_chart
from providers.usage import UsageRecord

DAYS = 30
METRICS = ("cost", "tokens")
CSV_COLUMNS = (
    "date", "provider", "model", "requests", "prompt_tokens", "completion_tokens",
    "reasoning_tokens", "cached_tokens", "total_tokens", "cost_usd",
)  # fmt: skip
# Spreadsheets run a cell that starts with one of these as a formula, and
# model names are whatever a user typed.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _sums() -> dict:
    """The same totals as UsageRecord's daily and per-model rows, for any grouping."""
    return {
        "requests": Count("id"),
        "prompt_tokens_total": Sum("prompt_tokens"),
        "completion_tokens_total": Sum("completion_tokens"),
        "reasoning_tokens_total": Sum("reasoning_tokens"),
        "cached_tokens_total": Sum("cached_tokens"),
        "total_tokens": Sum(F("prompt_tokens") + F("completion_tokens")),
        "cost_total": Sum("cost"),
    }


def _report(request: HttpRequest, records: QuerySet) -> dict:
    totals = records.last_days(DAYS).aggregate(**_sums())
    metric = request.GET.get("metric")
    if metric not in METRICS:
        metric = "cost" if totals["cost_total"] else "tokens"
    daily = list(records.daily_totals(DAYS))
    return {
        "days": DAYS,
        "totals": totals,
        "daily": daily,
        "per_model": list(records.per_model_totals(DAYS)),
        "metric": metric,
        "chart": daily_chart(daily, metric, DAYS),
    }


@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    context = _report(request, UsageRecord.objects.for_user(request.user))
    return render(request, "chatapp/usage.html", context)


@require_GET
def usage_admin(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise Http404
    records = UsageRecord.objects.all()
    per_user = (
        records.last_days(DAYS)
        .values("user_id", "user__username")
        .annotate(**_sums())
        .order_by(F("cost_total").desc(nulls_last=True), "-total_tokens", "user__username")
    )
    context = _report(request, records) | {"admin_view": True, "per_user": list(per_user)}
    return render(request, "chatapp/usage.html", context)


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


@require_GET
def usage_csv(request: HttpRequest) -> HttpResponse:
    """One row per day and model of the signed-in user's last 30 days."""
    rows = (
        UsageRecord.objects.for_user(request.user)
        .last_days(DAYS)
        .annotate(day=TruncDate("created_at"))
        .values("day", "provider", "model")
        .annotate(**_sums())
        .order_by("day", "provider", "model")
    )
    filename = f"switchboard-usage-{timezone.localdate().isoformat()}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row["day"].isoformat(),
                _cell(row["provider"]),
                _cell(row["model"]),
                row["requests"],
                row["prompt_tokens_total"],
                row["completion_tokens_total"],
                row["reasoning_tokens_total"],
                row["cached_tokens_total"],
                row["total_tokens"],
                "" if row["cost_total"] is None else row["cost_total"],
            ]
        )
    return response
