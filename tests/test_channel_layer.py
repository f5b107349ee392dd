"""The in-process channel layer keeps Channels' contract: group delivery, capacity, expiry."""

import asyncio

import pytest

from chatapp import channel_layer
from chatapp.channel_layer import InMemoryChannelLayer


async def test_a_group_message_reaches_every_member_once():
    layer = InMemoryChannelLayer()
    members = [await layer.new_channel() for _ in range(3)]
    for channel in members:
        await layer.group_add("chat", channel)
    outsider = await layer.new_channel()

    await layer.group_send("chat", {"type": "delta", "text": "hi"})

    for channel in members:
        assert await layer.receive(channel) == {"type": "delta", "text": "hi"}
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await layer.receive(outsider)


async def test_each_member_gets_its_own_copy():
    layer = InMemoryChannelLayer()
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat", first)
    await layer.group_add("chat", second)

    await layer.group_send("chat", {"type": "delta", "parts": ["a"]})
    (await layer.receive(first))["parts"].append("changed")

    assert await layer.receive(second) == {"type": "delta", "parts": ["a"]}


async def test_a_full_member_does_not_cost_the_others_the_message():
    layer = InMemoryChannelLayer(capacity=1)
    stuck, reading = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat", stuck)
    await layer.group_add("chat", reading)

    await layer.group_send("chat", {"type": "delta", "n": 1})
    assert await layer.receive(reading) == {"type": "delta", "n": 1}
    await layer.group_send("chat", {"type": "delta", "n": 2})  # `stuck` is full now

    assert await layer.receive(reading) == {"type": "delta", "n": 2}
    assert await layer.receive(stuck) == {"type": "delta", "n": 1}


async def test_a_channel_whose_message_expired_leaves_its_groups(monkeypatch):
    monkeypatch.setattr(channel_layer, "SWEEP_SECONDS", 0.1)
    layer = InMemoryChannelLayer(expiry=0.2)
    gone, alive = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("chat", gone)
    await layer.group_add("chat", alive)
    await layer.send(gone, {"type": "never.read"})

    await asyncio.sleep(0.35)  # past the message's expiry and the next sweep
    await layer.group_send("chat", {"type": "delta"})

    assert await layer.receive(alive) == {"type": "delta"}
    assert gone not in layer.groups["chat"] and gone not in layer.channels
