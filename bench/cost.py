"""Server CPU per proxied request, without and with Redis: `python -m bench.cost [--redis URL]`.

A complement to `make bench`, for work on the proxy's cost per request: ten
clients ask for one-token streams back to back, and the Daphne process's CPU
time (user + system, from /proc) is divided by the requests. Each figure is
the mean over 1,000 requests, repeated; the spread between repeats says how
noisy the machine is. With `--redis`, the app runs as several processes would
(REDIS_URL set: channels-redis, and Django's cache on Redis), which adds a
rate-limit count and a catalogue read per request over the network.

    .venv/bin/python -m bench.cost                                  # in-process cache
    .venv/bin/python -m bench.cost --redis redis://127.0.0.1:6379/5 # Redis (that database is used, not flushed)
"""

import argparse
import asyncio
import statistics

from bench import load
from bench.load import Target
from bench.resources import process_cpu_seconds
from bench.run import PROXY_PATH, Bench, Scale
from bench.upstream import UpstreamProcess
from tests.live_server import AppServer

CLIENTS = 10
REQUESTS = 1000


async def cpu_ms_per_request(target: Target, pid: int) -> float:
    await load.concurrent_streams(target, CLIENTS, 1, 0.0)  # warm: token, catalogue, connections
    before = process_cpu_seconds(pid)
    for _ in range(REQUESTS // CLIENTS):
        results = await load.concurrent_streams(target, CLIENTS, 1, 0.0)
        if failed := [r.error for r in results if not r.ok]:
            raise RuntimeError(f"requests failed: {failed[:3]}")
    return (process_cpu_seconds(pid) - before) * 1000 / REQUESTS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--redis", metavar="URL", help="run the app with REDIS_URL set to this")
    parser.add_argument("--repeats", type=int, default=4)
    arguments = parser.parse_args(argv)
    upstream = UpstreamProcess().start()
    bench = Bench(Scale())
    server = None
    try:
        env, token = bench.prepared_app(upstream.url, arguments.redis)
        server = AppServer(env).start(timeout=60)
        assert server.process is not None
        target = Target("switchboard", f"{server.url}{PROXY_PATH}",
                        {"Authorization": f"Bearer {token}"})  # fmt: skip
        figures = [asyncio.run(cpu_ms_per_request(target, server.process.pid)) for _ in range(arguments.repeats)]
    finally:
        if server is not None:
            server.stop()
        upstream.stop()
        bench.cleanup()
    cache = "Redis" if arguments.redis else "in-process cache"
    print(f"server CPU per one-token proxied request ({cache}): median {statistics.median(figures):.2f} ms;"
          f" repeats {', '.join(f'{f:.2f}' for f in figures)} ms")  # fmt: skip


if __name__ == "__main__":
    main()
