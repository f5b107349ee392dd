"""The in-process channel layer (no REDIS_URL): Channels' own, without the bookkeeping that grows with every socket.

channels.layers.InMemoryChannelLayer sweeps every channel and every group
membership for expired entries on each receive and on each group_send, and
group_send starts a task per member. With a hundred chats streaming, that
sweep alone was a tenth of the server's CPU in the benchmark (make bench,
c.). Here the sweep runs at most once every SWEEP_SECONDS (messages expire
after a minute, memberships after a day: nothing lives noticeably longer),
and group_send puts the message on each member's queue in turn.
"""

import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryChannelLayer

SWEEP_SECONDS = 1.0


class InMemoryChannelLayer(ChannelsInMemoryChannelLayer):
    _next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        super()._clean_expired()

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:
                await self.send(channel, message)  # a copy per member, as Channels does
            except ChannelFull:
                pass  # a member that stopped reading loses this message, not the others theirs
