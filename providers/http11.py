"""Upstream HTTP/1.1 connections that hand over a chunked body a read at a time, not a chunk at a time.

An upstream streams a token per HTTP chunk. httpcore asks h11 for the body
one event at a time, and h11 makes each chunk its own Data event: every
token then walks h11's state machine, httpcore's read loop and the four
async generators between httpcore and `Response.aiter_raw()`. Measured in the
benchmark at saturation (50 streams, no delay), that walk was a fifth of the
serving process's CPU, with many chunks arriving in each socket read.

`JoinedChunkedReader` is h11's own chunked reader, asked again while whole
chunks are left in the buffer: all the chunks that arrived together become
one Data event. Bytes, framing checks, trailers and errors are h11's; only
the number of events changes. A token arriving alone still goes out alone.

`JoiningHTTPConnection` puts the reader in place once the response headers
are in and before any of the body is read: h11 chooses its reader when the
headers arrive, and reads nothing until asked.
"""

import h11
import httpcore
from h11._readers import ChunkedReader


class JoinedChunkedReader(ChunkedReader):
    def __init__(self) -> None:
        super().__init__()
        self._held: h11.EndOfMessage | h11.LocalProtocolError | None = None

    def __call__(self, buf) -> h11.Data | h11.EndOfMessage | None:
        if self._held is not None:
            # The end of the body, or the error, that came right after the data handed over last time.
            held, self._held = self._held, None
            if isinstance(held, Exception):
                raise held
            return held
        first = super().__call__(buf)
        if type(first) is not h11.Data:
            return first
        pieces = [first.data]
        last = first
        while True:
            try:
                event = super().__call__(buf)
            except h11.LocalProtocolError as exc:  # h11 turns it into a RemoteProtocolError as it leaves
                self._held = exc
                break
            if event is None:
                break
            if type(event) is not h11.Data:
                self._held = event
                break
            pieces.append(event.data)
            last = event
        if last is first:
            return first
        return h11.Data(data=b"".join(pieces), chunk_start=first.chunk_start, chunk_end=last.chunk_end)


def join_chunks(state: h11.Connection) -> None:
    """Give a client connection whose response headers just arrived the joining reader, if its body is chunked."""
    if type(state._reader) is ChunkedReader:
        state._reader = JoinedChunkedReader()


class JoiningHTTPConnection(httpcore.AsyncHTTPConnection):
    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        response = await super().handle_async_request(request)
        # No await since the headers came: nothing of the body is read yet.
        if isinstance(self._connection, httpcore.AsyncHTTP11Connection):  # not HTTP/2
            join_chunks(self._connection._h11_state)
        return response
