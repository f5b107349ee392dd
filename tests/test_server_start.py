"""A server's start marks the answers a stopped server left streaming (SPEC: "on the next start").

Real Daphne processes on a database file: the answers are written as a dead
server would have left them, the server starts, and the database is read
back without any page having been opened. With Redis, an answer another live
process is still writing (its heartbeat is in the shared cache) is left alone.
"""

import json
import os

import redis

from tests.conftest import needs_service
from tests.live_server import AppServer, base_env, manage, prepared_database

REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/4")

LEFT_STREAMING = """
from chatapp.models import Conversation, Message
from accounts.models import User
from django.core.cache import cache
from chatapp.generation import heartbeat_key
chat = Conversation.objects.create(owner=User.objects.get(username="alice"), model="fake/model@openrouter")
ids = []
for n in range(2):
    question, answer = chat.add_exchange("question " + str(n), chat.current_leaf_id, "fake/model@openrouter")
    Message.objects.filter(pk=answer.pk).update(content="half an ans")
    ids.append(answer.pk)
if ALIVE:
    cache.set(heartbeat_key(ids[1]), 1, 60)  # the second is still being written by a live process
print(json.dumps(ids))
"""

STATUSES = "from chatapp.models import Message; print(json.dumps(list(Message.objects.filter(role='assistant').order_by('pk').values_list('status', 'content'))))"  # noqa: E501


def _shell(env: dict[str, str], code: str):
    return json.loads(manage(env, "shell", "-c", "import json\n" + code).strip().splitlines()[-1])


def _statuses_after_a_start(env: dict[str, str], alive: bool) -> list[list[str]]:
    prepared_database(env)
    _shell(env, f"ALIVE = {alive}\n" + LEFT_STREAMING)
    server = AppServer(env).start()
    try:
        return _shell(env, STATUSES)
    finally:
        server.stop()


def test_answers_left_streaming_are_interrupted_when_a_server_starts(tmp_path):
    env = base_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    assert _statuses_after_a_start(env, alive=False) == [["interrupted", "half an ans"]] * 2


def test_an_answer_another_process_is_writing_is_left_alone(tmp_path):
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).flushdb()
        up = True
    except redis.RedisError:
        up = False
    needs_service("Redis", up)
    env = base_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", REDIS_URL=REDIS_URL)
    try:
        assert _statuses_after_a_start(env, alive=True) == [["interrupted", "half an ans"], ["streaming", "half an ans"]]
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()
