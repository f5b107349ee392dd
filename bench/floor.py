"""The floor: the least a proxy under Daphne can add (`make bench PEER=floor`).

    FLOOR_UPSTREAM=http://127.0.0.1:43117 daphne bench.floor:application

An ASGI app of a few lines that relays a streamed chat completion to the
bench upstream over raw asyncio streams: no Django, no httpx, no token, no
allow-list, no accounting. What it adds to direct access is what Daphne and
Twisted cost a proxied stream in one process, the share that no change to
Switchboard's own code can take away. Reported beside Switchboard as a peer.
"""

import asyncio
import os
from urllib.parse import urlsplit


async def application(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    upstream = urlsplit(os.environ["FLOOR_UPSTREAM"])
    reader, writer = await asyncio.open_connection(upstream.hostname, upstream.port, limit=1 << 20)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (upstream.netloc.encode(), len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):  # the bench upstream's chunks
            chunk = await reader.readexactly(size + 2)
            await send({"type": "http.response.body", "body": chunk[:-2], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        writer.close()
