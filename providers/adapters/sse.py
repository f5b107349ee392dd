"""Server-sent events, decoded incrementally from raw bytes.

Bytes arrive in whatever pieces TCP delivers: an event, a line, even a UTF-8
character may be split across them. `SSEDecoder.feed` keeps the unfinished
tail and returns only complete events, so the chat and the proxy's usage
reader can both feed it chunks exactly as they come.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str = ""  # the `event:` field; empty means "message"


class SSEDecoder:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by this chunk."""
        self._buffer += chunk
        events: list[SSEEvent] = []
        for line in self._complete_lines():
            event = self._take_line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """What is left at the end of the body: an event missing its blank line."""
        events = self.feed(b"\n") if self._buffer else []
        event = self._take_line("")
        return events + ([event] if event is not None else [])

    def _complete_lines(self) -> list[str]:
        # \r, \n and \r\n all end a line; a trailing \r may be the first half of \r\n.
        text = self._buffer
        keep_from = len(text)
        if text.endswith(b"\r"):
            keep_from -= 1
        self._buffer = text[keep_from:]
        body = text[:keep_from].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, tail = body.split(b"\n")
        self._buffer = tail + self._buffer
        # Line ends are ASCII, so a line is never cut inside a UTF-8 character.
        return [line.decode("utf-8", errors="replace") for line in lines]

    def _take_line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. ": OPENROUTER PROCESSING"
        name, _sep, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(data="\n".join(self._data), event=self._event)
        self._data, self._event = [], ""
        return event
