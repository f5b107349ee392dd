"""The usage page's bar chart, drawn on the server as inline SVG (SPEC section 9).

No script and no inline style (the CSP forbids both): this module computes the
geometry and the localised labels, templates/chatapp/_usage_chart.svg writes
them out with autoescaping, and static/css/usage.css colours the classes.
Coordinates are formatted here, never by the template, so that a language
with a decimal comma cannot break them.
"""

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 76, 40, 14, 34  # room for the axis labels (at least: longer ones get more)
LABEL_CHARACTER = 11.5  # the widest character of an axis label, in the chart's units, at a phone's 18 (usage.css)
LABEL_EVERY = 7  # days between date labels, counted back from today
MIN_BAR = 1.5  # a day with usage stays visible however small


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    label: str


@dataclass(frozen=True)
class Tick:
    y: str
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: str
    label: str


@dataclass
class UsageChart:
    metric: str  # "cost" or "tokens"
    title: str
    description: str
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    day_labels: list[DayLabel] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: str = f"{LEFT}"
    right: str = f"{WIDTH - RIGHT}"
    baseline: str = f"{HEIGHT - BOTTOM}"
    label_x: str = f"{LEFT - 6}"  # the tick labels' right edge
    label_y: str = f"{HEIGHT - BOTTOM + 20}"


def _coordinate(value: float) -> str:
    return f"{value:.1f}"


# The top of the scale, as a multiple of a power of ten, and the intervals that cut it into round ticks:
# 2.5 in four would tick at 0.625, 5 at 1.25; in five they tick at 0.5 and 1.
_SCALES = ((Decimal(1), 4), (Decimal(2), 4), (Decimal("2.5"), 5), (Decimal(5), 5), (Decimal(10), 5))


def _scale(value: Decimal) -> tuple[Decimal, int]:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value`, and its number of ticks."""
    if value <= 0:
        return Decimal(1), 4
    power = Decimal(10) ** math.floor(math.log10(value))
    return next((step * power, ticks) for step, ticks in _SCALES if step * power >= value)


def format_value(value: Decimal | int | None, metric: str) -> str:
    """A cost in USD or a token count, in the active language's number format."""
    if metric == "cost":
        if value is None:
            return _("unknown")
        return "$" + number_format(Decimal(value).quantize(Decimal("1e-4")), use_l10n=True, force_grouping=True)
    return number_format(int(value or 0), use_l10n=True, force_grouping=True)


def _label_width(text: str) -> int:
    """At most how wide an axis label is drawn, in the chart's units (a phone's, the larger)."""
    return math.ceil(LABEL_CHARACTER * len(text))


def _tick_label(value: Decimal, metric: str) -> str:
    text = number_format(value.normalize(), use_l10n=True, force_grouping=True)
    return f"${text}" if metric == "cost" else text


def _day_label(row: dict) -> str:
    day = date_format(row["day"], "DATE_FORMAT")
    requests = ngettext("%(count)s request", "%(count)s requests", row["requests"]) % {"count": row["requests"]}
    tokens = _("%(tokens)s tokens") % {"tokens": format_value(row["total_tokens"], "tokens")}
    return f"{day}: {format_value(row['cost_total'], 'cost')} · {tokens} · {requests}"


def daily_chart(rows: list[dict], metric: str, days: int = 30, today: date | None = None) -> UsageChart:
    """Bars per day over the last `days` days, from `UsageRecord` daily totals.

    A day with usage gets a bar even when its value rounds to nothing; a day
    without usage gets none.
    """
    today = today or timezone.localdate()
    first_day = today - timedelta(days=days - 1)
    by_day = {row["day"]: row for row in rows if first_day <= row["day"] <= today}

    def value(row: dict) -> Decimal:
        raw = row["cost_total"] if metric == "cost" else row["total_tokens"]
        return Decimal(raw or 0)

    ceiling, ticks = _scale(max((value(row) for row in by_day.values()), default=Decimal(0)))
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = HEIGHT - BOTTOM
    if metric == "cost":
        title = _("Cost per day, last %(days)s days") % {"days": days}
    else:
        title = _("Tokens per day, last %(days)s days") % {"days": days}
    chart = UsageChart(metric=metric, title=title, description="")
    for step in range(ticks + 1):
        y = baseline - plot_height * step / ticks
        chart.ticks.append(Tick(_coordinate(y), _tick_label(ceiling * step / ticks, metric)))
    # The plot starts where the longest tick label ends (a small cost has many digits), and ends
    # where half of today's date, centred under its bar, still fits.
    left = max(LEFT, _label_width(max((tick.label for tick in chart.ticks), key=len)) + 10)
    right = max(RIGHT, math.ceil(_label_width(date_format(today, "MONTH_DAY_FORMAT")) / 2) + 4)
    chart.left, chart.label_x, chart.right = f"{left}", f"{left - 6}", f"{WIDTH - right}"
    slot = (WIDTH - left - right) / days

    for index in range(days):
        day = first_day + timedelta(days=index)
        center = left + slot * (index + 0.5)
        if (days - 1 - index) % LABEL_EVERY == 0:
            chart.day_labels.append(DayLabel(_coordinate(center), date_format(day, "MONTH_DAY_FORMAT")))
        row = by_day.get(day)
        if row is None:
            continue
        height = max(float(value(row) / ceiling) * plot_height, MIN_BAR)
        chart.bars.append(
            Bar(
                x=_coordinate(center - slot * 0.35),
                y=_coordinate(baseline - height),
                width=_coordinate(slot * 0.7),
                height=_coordinate(height),
                label=_day_label(row),
            )
        )
    if by_day:
        busiest = max(by_day.values(), key=value)
        chart.description = ngettext(
            "%(count)s day with usage; the highest was %(day)s with %(value)s.",
            "%(count)s days with usage; the highest was %(day)s with %(value)s.",
            len(by_day),
        ) % {
            "count": len(by_day),
            "day": date_format(busiest["day"], "DATE_FORMAT"),
            "value": format_value(value(busiest), metric),
        }
    else:
        chart.description = _("No usage in this period.")
    return chart
