"""Per-user request limits (`RATE_LIMIT`, e.g. "60/m"): proxied requests and chat answers count alike.

A fixed window counted in the Django cache: with Redis every server process
counts into the same key, so the limit holds across processes. One atomic
count per request (`shared_cache.acount`, one round trip with Redis), so two
processes racing at a window's start both count.
"""

import logging
import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.utils.functional import lazy
from django.utils.translation import gettext

from providers import shared_cache

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400,
           "day": 86400}  # fmt: skip
DEFAULT = "120/m"
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$", re.IGNORECASE)
_OFF = {"", "0", "off", "none", "unlimited"}


@dataclass(frozen=True)
class Rate:
    limit: int  # requests
    period: int  # seconds

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


def parse_rate(text: str) -> Rate | None:
    """`"60/m"`, `"10/s"`, `"1000/h"`, `"5/10s"`, `"100/day"` -> Rate; None when off.

    Raises ValueError for anything else.
    """
    text = (text or "").strip().lower()
    if text in _OFF:
        return None
    match = _RATE.match(text)
    if not match or match[3] not in PERIODS:
        raise ValueError(f"RATE_LIMIT must look like 60/m, 10/s or 1000/h, not {text!r}")
    limit, multiple, unit = int(match[1]), int(match[2] or 1), match[3]
    if limit == 0:
        return None
    return Rate(limit, max(multiple, 1) * PERIODS[unit])


@lru_cache(maxsize=8)
def _configured(text: str) -> Rate | None:
    try:
        return parse_rate(text)
    except ValueError as exc:
        # A typo must not turn the limit off, nor fail every request.
        logger.error("%s; using %s", exc, DEFAULT)
        return parse_rate(DEFAULT)


def current_rate() -> Rate | None:
    return _configured(settings.RATE_LIMIT)


async def ahit(scope: str | int, rate: Rate | None = None) -> int | None:
    """Count one request of `scope` (a user id); seconds to wait when over the limit, else None."""
    rate = rate or current_rate()
    if rate is None:
        return None
    now = time.time()
    window = int(now // rate.period)
    key = f"ratelimit:{scope}:{rate.period}:{window}"
    count = await shared_cache.acount(key, rate.period + 1)
    if count <= rate.limit:
        return None
    return max(1, math.ceil((window + 1) * rate.period - now))


def _refusal(seconds: int) -> str:
    return gettext("Too many requests. Try again in %(seconds)d seconds.") % {"seconds": seconds}


refusal = lazy(_refusal, str)  # what a user over the limit is told, in the language it is shown in
