"""The cache from async code (providers.shared_cache), in-process and on a real Redis.

With Redis, what the async side writes must be what Django's own cache reads
(and the reverse): other processes, and sync code, read it through Django.
Counting must be exact under concurrency, and cache objects built in many
request contexts must not each open their own connection.
"""

import asyncio
import os

import pytest
import redis
from asgiref.sync import sync_to_async
from django.core.cache import caches

from providers import shared_cache
from tests.conftest import needs_service

REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/6")


def _redis_up() -> bool:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).flushdb()
        return True
    except redis.RedisError:
        return False


def _use_redis(settings):
    needs_service("Redis", _redis_up())
    settings.CACHES = {"default": {"BACKEND": "providers.shared_cache.RedisCache", "LOCATION": REDIS_URL,
                                   "KEY_PREFIX": "switchboard-test"}}  # fmt: skip
    return caches["default"]


@pytest.fixture(params=["in-process", "redis"])
def cache(request, settings):
    if request.param == "redis":
        return _use_redis(settings)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "shared-cache-test"}}  # fmt: skip
    caches["default"].clear()
    return caches["default"]


async def test_what_async_code_writes_django_reads_and_the_reverse(cache):
    value = {"models": ["a", "b"], "stamp": 1.5}
    await shared_cache.aset("catalogue", value, timeout=60)
    await shared_cache.aset("number", 7, timeout=60)
    assert await sync_to_async(cache.get_many)(["catalogue", "number"]) == {"catalogue": value, "number": 7}

    await sync_to_async(cache.set)("heartbeat", 1, 60)
    assert await shared_cache.aget_many(["heartbeat", "absent"]) == {"heartbeat": 1}
    assert await shared_cache.aget("absent", "default") == "default"
    await shared_cache.adelete("heartbeat")
    assert await sync_to_async(cache.get)("heartbeat") is None


async def test_add_sets_only_once(cache):
    assert await shared_cache.aadd("lock", 1, timeout=60) is True
    assert await shared_cache.aadd("lock", 2, timeout=60) is False
    assert await sync_to_async(cache.get)("lock") == 1


async def test_counts_are_exact_under_concurrency_and_expire(cache):
    counts = await asyncio.gather(*(shared_cache.acount("window", timeout=1) for _ in range(200)))
    assert sorted(counts) == list(range(1, 201))
    assert await sync_to_async(cache.get)("window") == 200  # an int to Django too
    await asyncio.sleep(1.2)
    assert await shared_cache.acount("window", timeout=1) == 1  # a new window


async def test_request_contexts_share_one_redis_connection_pool(settings):
    _use_redis(settings)
    stats = redis.Redis.from_url(REDIS_URL)
    before = stats.info("stats")["total_connections_received"]

    async def request(n: int) -> None:  # each task is a context of its own, as each request is under ASGI
        await sync_to_async(caches["default"].set)(f"k{n}", n, 60)
        await shared_cache.aget(f"k{n}")

    for n in range(100):
        await asyncio.create_task(request(n))
    opened = stats.info("stats")["total_connections_received"] - before
    assert opened <= 2  # the sync pool's and the loop's; not one per context
