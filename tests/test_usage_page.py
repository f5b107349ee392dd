"""The usage pages and their CSV (issue: Conversations and usage)."""

import csv
import io
import re
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from providers.usage import UsageRecord

pytestmark = pytest.mark.django_db


def _noon(days_ago: int) -> datetime:
    return timezone.make_aware(datetime.combine(timezone.localdate() - timedelta(days=days_ago), time(12)))


def _record(user, days_ago: int, model: str, prompt: int, completion: int, reasoning: int = 0, cost: str | None = None):
    return UsageRecord.objects.create(
        user=user, provider="openrouter", model=model, source=UsageRecord.Source.CHAT, prompt_tokens=prompt,
        completion_tokens=completion, reasoning_tokens=reasoning, cost=None if cost is None else Decimal(cost),
        created_at=_noon(days_ago),
    )  # fmt: skip


@pytest.fixture
def records(alice, bob):
    """Alice's usage on three days (two models), older usage, and Bob's."""
    counted = [
        _record(alice, 0, "openai/gpt-4o", 1000, 200, 50, "0.0100"),
        _record(alice, 0, "anthropic/claude", 500, 300, 0, "0.0200"),
        _record(alice, 3, "openai/gpt-4o", 1234, 766, 100, "0.0050"),
        _record(alice, 29, "anthropic/claude", 10, 20, 0, None),
    ]
    _record(alice, 30, "openai/gpt-4o", 99_999, 99_999, 0, "9.0000")  # a day too old
    _record(alice, 90, "openai/gpt-4o", 88_888, 88_888, 0, "8.0000")
    _record(bob, 0, "bob/secret-model", 77_777, 77_777, 0, "7.0000")
    return counted


def test_the_totals_are_the_sums_of_the_last_thirty_days(alice_client, records):
    response = alice_client.get(reverse("usage"))
    assert response.status_code == 200
    totals = response.context["totals"]
    assert totals["requests"] == 4
    assert totals["prompt_tokens_total"] == sum(r.prompt_tokens for r in records) == 2744
    assert totals["completion_tokens_total"] == sum(r.completion_tokens for r in records) == 1286
    assert totals["reasoning_tokens_total"] == 150
    assert totals["cost_total"] == Decimal("0.0350")
    html = response.content.decode()
    assert '<dd data-total="requests">4</dd>' in html
    assert '<dd data-total="prompt_tokens">2,744</dd>' in html
    assert '<dd data-total="completion_tokens">1,286</dd>' in html
    assert '<dd data-total="cost">$0.0350</dd>' in html
    assert "bob/secret-model" not in html and "99,999" not in html and "88,888" not in html


def test_the_model_table_lists_each_model_once(alice_client, records):
    per_model = alice_client.get(reverse("usage")).context["per_model"]
    assert [(row["model"], row["requests"], row["total_tokens"]) for row in per_model] == [
        ("anthropic/claude", 2, 830),
        ("openai/gpt-4o", 2, 3200),
    ]


def test_the_chart_has_one_bar_per_day_with_usage(alice_client, records):
    html = alice_client.get(reverse("usage")).content.decode()
    svg = re.search(r"<svg class=\"usage-chart\".*?</svg>", html, re.DOTALL).group(0)
    assert 'role="img"' in svg and 'aria-labelledby="usage-chart-title usage-chart-desc"' in svg
    assert '<title id="usage-chart-title">Cost per day, last 30 days</title>' in svg
    assert svg.count('<rect class="usage-bar"') == 3
    assert "$0.0300 · 2,000 tokens · 2 requests</title>" in svg  # today's tooltip
    assert "style=" not in html and "<script>" not in html


def test_the_chart_can_show_tokens(alice_client, records):
    html = alice_client.get(reverse("usage"), {"metric": "tokens"}).content.decode()
    assert "Tokens per day, last 30 days" in html
    assert html.count('<rect class="usage-bar"') == 3


@pytest.mark.parametrize(
    ("metric", "highest", "labels"),
    [
        ("cost", "0.00042", ["$0", "$0.0001", "$0.0002", "$0.0003", "$0.0004", "$0.0005"]),
        ("cost", "0.0123", ["$0", "$0.005", "$0.01", "$0.015", "$0.02"]),
        ("tokens", 230, ["0", "50", "100", "150", "200", "250"]),
        ("tokens", 9_000, ["0", "2,000", "4,000", "6,000", "8,000", "10,000"]),
    ],
)
def test_the_charts_scale_ticks_at_round_values(alice_client, alice, metric, highest, labels):
    if metric == "cost":
        _record(alice, 0, "m", 10, 10, cost=highest)
    else:
        _record(alice, 0, "m", highest, 0, cost="0.01")
    page = alice_client.get(f"/usage/?metric={metric}").content.decode()
    svg = re.search(r"<svg class=\"usage-chart\".*?</svg>", page, re.DOTALL).group(0)
    ticks = re.findall(r'<text class="usage-axis-label" x="[\d.]+" y="[\d.]+" text-anchor="end"[^>]*>([^<]+)</text>',
                       svg)  # fmt: skip
    assert ticks == labels


def test_model_names_are_escaped_in_the_page_and_chart(alice_client, alice):
    _record(alice, 0, '<script>alert("x")</script>', 1, 1, 0, "0.01")
    html = alice_client.get(reverse("usage")).content.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html


def test_numbers_follow_the_active_language(alice_client, records):
    html = alice_client.get(reverse("usage"), HTTP_ACCEPT_LANGUAGE="da").content.decode()
    assert '<dd data-total="prompt_tokens">2.744</dd>' in html
    assert '<dd data-total="cost">$0,0350</dd>' in html
    svg = re.search(r"<svg class=\"usage-chart\".*?</svg>", html, re.DOTALL).group(0)
    # Coordinates keep their decimal point whatever the language.
    assert not re.search(r'(?:x|y|width|height)="\d+,\d', svg)


def test_an_empty_page_says_so(bob_client):
    response = bob_client.get(reverse("usage"))
    assert response.status_code == 200
    assert response.content.decode().count('<rect class="usage-bar"') == 0
    assert "No usage in this period." in response.content.decode()


def test_the_csv_has_one_row_per_day_and_model(alice_client, records):
    response = alice_client.get(reverse("usage_csv"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="switchboard-usage-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    today, three_days_ago, oldest = (timezone.localdate() - timedelta(days=d) for d in (0, 3, 29))
    assert [(r["date"], r["model"], r["requests"], r["prompt_tokens"], r["total_tokens"]) for r in rows] == [
        (oldest.isoformat(), "anthropic/claude", "1", "10", "30"),
        (three_days_ago.isoformat(), "openai/gpt-4o", "1", "1234", "2000"),
        (today.isoformat(), "anthropic/claude", "1", "500", "800"),
        (today.isoformat(), "openai/gpt-4o", "1", "1000", "1200"),
    ]
    assert [r["cost_usd"] and Decimal(r["cost_usd"]) for r in rows] == [
        "",
        Decimal("0.005"),
        Decimal("0.02"),
        Decimal("0.01"),
    ]


def test_csv_cells_cannot_start_a_formula(alice_client, alice):
    _record(alice, 0, '=HYPERLINK("http://evil")', 1, 1)
    rows = list(csv.DictReader(io.StringIO(alice_client.get(reverse("usage_csv")).content.decode())))
    assert rows[0]["model"] == '\'=HYPERLINK("http://evil")'


def test_admins_see_everyone(alice_client, records):
    response = alice_client.get(reverse("usage_admin"))
    assert response.status_code == 200
    per_user = {row["user__username"]: row for row in response.context["per_user"]}
    assert per_user["alice"]["requests"] == 4 and per_user["bob"]["requests"] == 1
    assert per_user["bob"]["cost_total"] == Decimal(7)
    assert response.context["totals"]["requests"] == 5
    html = response.content.decode()
    assert "bob/secret-model" in html and '<rect class="usage-bar"' in html


def test_the_admin_view_is_a_404_for_others(bob_client, records):
    assert bob_client.get(reverse("usage_admin")).status_code == 404


def test_the_usage_page_needs_a_sign_in(client):
    response = client.get(reverse("usage"))
    assert response.status_code == 302 and "/accounts/" in response["Location"]
