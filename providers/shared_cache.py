"""The Django cache from async code, without a thread hop.

Django's async cache methods run the sync ones through `sync_to_async`, on
the process's one thread for thread-sensitive work, where they queue behind
every database call of every request. For the in-process cache
(LocMemCache, the default without Redis) the call itself never blocks, so it
is made directly. With Redis the same keys and values go over
`redis.asyncio` on the running loop: what Django's RedisCache would have
written, written without a thread, so sync code reading through Django's
cache sees it as its own.

    await shared_cache.acount("ratelimit:7:60:29123", timeout=61)  # 1, 2, 3, ...
    await shared_cache.aget_many(["a", "b"])  # {"a": ...}: missing keys left out
"""

import asyncio
import threading
import weakref
from typing import Any

import redis.asyncio
from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.utils.functional import cached_property

ASYNC_CONNECTIONS = 50
ASYNC_TIMEOUT = 5.0  # seconds to wait for a free connection, to connect, or for an answer


class RedisCache(django_redis.RedisCache):
    """Django's Redis cache, with one connection pool per process instead of one per request.

    Django keeps a cache object per async context, so under ASGI each request
    (and each WebSocket message, each generation task) builds its own, with
    its own connection pool: every one of them opened a new connection to
    Redis, handshake included, for its first cache call. With Redis, that was
    most of the proxy API's CPU per request: 4.5 ms against 1.8 ms without
    Redis (`python -m bench.cost`; 1.8 ms with Redis since). The pool is
    thread-safe; cache objects built with the same settings share it, and
    share one `redis.asyncio` client per event loop for this module.
    """

    _shared: dict[tuple, django_redis.RedisCacheClient] = {}
    _async_clients: dict[tuple, "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]"] = {}
    _lock = threading.Lock()

    @cached_property
    def _settings_key(self) -> tuple:
        return tuple(self._servers), repr(sorted(self._options.items()))

    @cached_property
    def _cache(self) -> django_redis.RedisCacheClient:
        with self._lock:
            client = self._shared.get(self._settings_key)
            if client is None:
                client = self._shared[self._settings_key] = self._class(self._servers, **self._options)
            return client

    def async_client(self) -> redis.asyncio.Redis:
        """The running loop's client, on the server Django writes to (the first)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._async_clients.setdefault(self._settings_key, weakref.WeakKeyDictionary())
            client = clients.get(loop)
            if client is None:
                # At most ASYNC_CONNECTIONS per loop; a burst beyond that waits its turn instead of failing.
                pool = redis.asyncio.BlockingConnectionPool.from_url(
                    self._servers[0], max_connections=ASYNC_CONNECTIONS, timeout=ASYNC_TIMEOUT,
                    socket_timeout=ASYNC_TIMEOUT, socket_connect_timeout=ASYNC_TIMEOUT,
                )  # fmt: skip
                client = clients[loop] = redis.asyncio.Redis(connection_pool=pool)
            return client


class _InProcess:
    """LocMemCache: its calls never block, so they are made directly."""

    def __init__(self, cache: LocMemCache) -> None:
        self.cache = cache

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        return self.cache.get_many(keys)

    async def set(self, key: str, value: Any, timeout) -> None:
        self.cache.set(key, value, timeout)

    async def add(self, key: str, value: Any, timeout) -> bool:
        return self.cache.add(key, value, timeout)

    async def delete(self, key: str) -> None:
        self.cache.delete(key)

    async def count(self, key: str, timeout: int) -> int:
        try:
            return self.cache.incr(key)
        except ValueError:  # the first count (or the counter just expired)
            if self.cache.add(key, 1, timeout):
                return 1
            return self.cache.incr(key)  # another thread counted first


class _Redis:
    """Django's RedisCache's keys and values (its serializer), over redis.asyncio."""

    serializer = django_redis.RedisSerializer()

    def __init__(self, cache: RedisCache) -> None:
        self.cache = cache
        self.client = cache.async_client()

    async def get_many(self, keys: list[str]) -> dict[str, Any]:
        made = {self.cache.make_and_validate_key(key): key for key in keys}
        values = await self.client.mget(list(made))
        return {made[k]: self.serializer.loads(v) for k, v in zip(made, values, strict=True) if v is not None}

    async def set(self, key: str, value: Any, timeout) -> None:
        made, seconds = self.cache.make_and_validate_key(key), self.cache.get_backend_timeout(timeout)
        if seconds == 0:
            await self.client.delete(made)
        else:
            await self.client.set(made, self.serializer.dumps(value), ex=seconds)

    async def add(self, key: str, value: Any, timeout) -> bool:
        made, seconds = self.cache.make_and_validate_key(key), self.cache.get_backend_timeout(timeout)
        if seconds == 0:
            return False
        return bool(await self.client.set(made, self.serializer.dumps(value), ex=seconds, nx=True))

    async def delete(self, key: str) -> None:
        await self.client.delete(self.cache.make_and_validate_key(key))

    async def count(self, key: str, timeout: int) -> int:
        made = self.cache.make_and_validate_key(key)
        async with self.client.pipeline(transaction=True) as pipeline:
            pipeline.set(made, 0, ex=timeout, nx=True)
            pipeline.incr(made)
            _created, count = await pipeline.execute()
        return count


_current: tuple[object, asyncio.AbstractEventLoop, _InProcess | _Redis] | None = None


def _backend() -> _InProcess | _Redis:
    """The cache for the running loop, built once per loop and cache settings.

    Django's `caches[...]` builds a cache object per async context (per
    request), through asgiref's Local: about 2% of the proxy's CPU for a
    burst of request starts (py-spy). Ours share their state anyway.
    """
    global _current
    configured, loop = settings.CACHES, asyncio.get_running_loop()
    if _current is None or _current[0] is not configured or _current[1] is not loop:
        # The settings configure one of the two (chatapp/settings.py: REDIS_URL or not).
        cache = caches[DEFAULT_CACHE_ALIAS]
        _current = (configured, loop, _Redis(cache) if isinstance(cache, RedisCache) else _InProcess(cache))
    return _current[2]


async def aget_many(keys: list[str]) -> dict[str, Any]:
    """The values of those of `keys` that are set."""
    return await _backend().get_many(keys)


async def aget(key: str, default: Any = None) -> Any:
    return (await _backend().get_many([key])).get(key, default)


async def aset(key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT) -> None:
    await _backend().set(key, value, timeout)


async def aadd(key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """Set `key` unless it is set; True if this call set it."""
    return await _backend().add(key, value, timeout)


async def adelete(key: str) -> None:
    await _backend().delete(key)


async def acount(key: str, timeout: int) -> int:
    """Add one to the counter `key`, which expires `timeout` seconds after its first count; the new count.

    Atomic across processes: no count from anywhere is lost. With Redis it
    is one round trip.
    """
    return await _backend().count(key, timeout)
