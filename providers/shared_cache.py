"""The Django cache from async code, without a thread hop when it is in-process.

Django's async cache methods run the sync ones through `sync_to_async`. For
the in-process cache (LocMemCache, the default without Redis) that hop costs
far more than the call itself, which never blocks; the proxy's hot path
(rate limit, catalogue stamps) calls it directly then. With Redis the async
methods are used as they are.
"""

from typing import Any

from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache


def _cache():
    return caches["default"]


def _in_process() -> bool:
    return isinstance(_cache(), LocMemCache)


async def aget_many(keys: list[str]) -> dict[str, Any]:
    return _cache().get_many(keys) if _in_process() else await _cache().aget_many(keys)


async def aadd(key: str, value: Any, timeout: int) -> bool:
    return _cache().add(key, value, timeout) if _in_process() else await _cache().aadd(key, value, timeout)


async def aincr(key: str) -> int:
    """Raises ValueError when the key is missing, like cache.incr."""
    return _cache().incr(key) if _in_process() else await _cache().aincr(key)
