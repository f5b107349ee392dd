"""Personal API tokens for the proxy API (SPEC section 8): shown once, stored hashed."""

import asyncio
import hashlib
import secrets
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken
from providers import api_auth


def _row(token: ApiToken) -> dict:
    return ApiToken.objects.filter(pk=token.pk).values().get()


@pytest.mark.django_db
def test_issued_token_authenticates_its_owner(alice):
    token, raw = ApiToken.issue(alice, "laptop")
    assert raw.startswith("sb-") and len(raw) >= 43
    assert ApiToken.authenticate(raw) == alice
    assert token.name == "laptop"


@pytest.mark.django_db
def test_only_the_hash_of_the_token_is_stored(alice):
    token, raw = ApiToken.issue(alice, "laptop")
    row = _row(token)
    assert row["token_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert row["prefix"] == raw[3:11]
    secret = raw[3:]
    assert not any(secret in str(value) for value in row.values())


@pytest.mark.django_db
def test_two_tokens_differ(alice):
    _first, raw1 = ApiToken.issue(alice, "one")
    _second, raw2 = ApiToken.issue(alice, "two")
    assert raw1 != raw2


WRONG = {
    "truncated": lambda raw: raw[:-1],
    "extended": lambda raw: raw + "x",
    "case changed": str.swapcase,
    "never issued": lambda raw: "sb-" + secrets.token_urlsafe(32),
}


@pytest.mark.django_db
@pytest.mark.parametrize("mangle", WRONG.values(), ids=WRONG.keys())
def test_wrong_token_is_refused(alice, mangle):
    _token, raw = ApiToken.issue(alice, "laptop")
    assert ApiToken.authenticate(mangle(raw)) is None


@pytest.mark.django_db
@pytest.mark.parametrize("garbage", [None, "", "sb-", "Bearer sb-abc", "sk-" + "a" * 43, "sb-" + "a" * 5000])
def test_garbage_is_refused(alice, garbage):
    ApiToken.issue(alice, "laptop")
    assert ApiToken.authenticate(garbage) is None


@pytest.mark.django_db
def test_revoked_token_is_refused(alice):
    token, raw = ApiToken.issue(alice, "laptop")
    token.revoke()
    assert _row(token)["revoked_at"] is not None
    assert ApiToken.authenticate(raw) is None


@pytest.mark.django_db
def test_token_of_inactive_user_is_refused(bob):
    _token, raw = ApiToken.issue(bob, "script")
    bob.is_active = False
    bob.save()
    assert ApiToken.authenticate(raw) is None


@pytest.mark.django_db
def test_last_used_is_recorded_at_most_once_a_minute(alice, django_assert_num_queries):
    token, raw = ApiToken.issue(alice, "laptop")
    assert _row(token)["last_used_at"] is None

    ApiToken.authenticate(raw)
    first_use = _row(token)["last_used_at"]
    assert first_use is not None

    with django_assert_num_queries(1):  # the look-up, no write
        assert ApiToken.authenticate(raw) == alice
    assert _row(token)["last_used_at"] == first_use

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    ApiToken.authenticate(raw)
    assert _row(token)["last_used_at"] > first_use


@pytest.mark.django_db(transaction=True)
async def test_async_twin_accepts_and_refuses_like_the_sync_one(alice):
    token, raw = await sync_to_async(ApiToken.issue)(alice, "laptop")
    assert await ApiToken.aauthenticate(raw) == alice
    assert (await ApiToken.objects.aget(pk=token.pk)).last_used_at is not None
    assert await ApiToken.aauthenticate(raw[:-1]) is None
    await sync_to_async(token.revoke)()
    assert await ApiToken.aauthenticate(raw) is None


@pytest.mark.django_db
def test_one_users_tokens_are_not_anothers(alice, bob):
    _alice_token, alice_raw = ApiToken.issue(alice, "alice's")
    bob_token, bob_raw = ApiToken.issue(bob, "bob's")
    assert ApiToken.authenticate(alice_raw) == alice
    assert ApiToken.authenticate(bob_raw) == bob
    assert list(bob.api_tokens.all()) == [bob_token]
    bob_token.revoke()
    assert ApiToken.authenticate(alice_raw) == alice


@pytest.mark.django_db
def test_command_prints_only_a_working_token(bob):
    out = StringIO()
    call_command("create_api_token", "bob", "--name", "backup script", stdout=out)
    raw = out.getvalue().strip()
    assert out.getvalue() == raw + "\n"
    assert ApiToken.authenticate(raw) == bob
    assert bob.api_tokens.get().name == "backup script"


@pytest.mark.django_db
def test_command_refuses_an_unknown_user(bob):
    with pytest.raises(CommandError, match="No user named 'mallory'"):
        call_command("create_api_token", "mallory", stdout=StringIO())
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_admin_lists_tokens_without_their_hash(alice_client, bob):
    token, raw = ApiToken.issue(bob, "bob's script")
    token.revoke()
    changelist = alice_client.get(reverse("admin:accounts_apitoken_changelist"))
    assert changelist.status_code == 200
    page = changelist.content.decode()
    assert "bob&#x27;s script" in page and f"sb-{token.prefix}" in page
    change = alice_client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content.decode()
    for body in (page, change):
        assert token.token_hash not in body and raw not in body
    assert alice_client.get(reverse("admin:accounts_apitoken_add")).status_code == 403


# Remembered look-ups ----------------------------------------------------------------


async def test_requests_missing_together_share_one_lookup_and_its_answer_is_remembered():
    memory, calls, release = api_auth._Memory(), [], asyncio.Event()

    async def lookup():
        calls.append(1)
        await release.wait()
        return "alice"

    waiting = [asyncio.create_task(memory.get("token", lookup)) for _ in range(20)]
    await asyncio.sleep(0.01)
    waiting[0].cancel()  # one client hanging up does not cancel the others' look-up
    release.set()
    answers = await asyncio.gather(*waiting[1:])

    assert answers == ["alice"] * 19 and len(calls) == 1
    assert await memory.get("token", lookup) == "alice" and len(calls) == 1


async def test_a_refused_lookup_and_one_overtaken_by_forget_are_not_remembered():
    memory, answers = api_auth._Memory(), iter([None, "bob", "carol", "dave"])
    release = asyncio.Event()

    async def lookup():
        await release.wait()
        return next(answers)

    release.set()
    assert await memory.get("token", lookup) is None
    release.clear()
    pending = asyncio.create_task(memory.get("token", lookup))
    await asyncio.sleep(0.01)
    memory.forget()  # a revocation while the look-up is out: its answer may be stale
    release.set()
    assert await pending == "bob"
    assert await memory.get("token", lookup) == "carol"
    assert await memory.get("token", lookup) == "carol"
