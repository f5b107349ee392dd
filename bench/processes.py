"""Scenario a. under several Daphne processes on one port: `python -m bench.processes`.

`make bench` serves the app as one `daphne chatapp.asgi:application`. SPEC's
deployment runs several such processes (sharing PostgreSQL and Redis); this
measures what that does to a. (100 streams at once, 100 tokens 20 ms apart),
for Switchboard and for the floor (bench/floor.py, a bare relay under
Daphne), under 1, 2 and 3 processes. The processes share the port: each
listens on its own socket bound to it (SO_REUSEPORT, handed over with
`daphne --fd`), and the kernel spreads the connections across them.

    .venv/bin/python -m bench.processes
    .venv/bin/python -m bench.processes --processes 1,2 --redis redis://127.0.0.1:6379/5

Without `--redis` the processes keep their caches to themselves (rate-limit
counts, the model table), as SPEC says no deployment of several should;
the proxy's figures hardly depend on it (`python -m bench.cost` measures it).
"""

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.load import Target
from bench.run import PROXY_PATH, Bench, Scale
from bench.upstream import UpstreamProcess
from tests.live_server import ROOT, stop_process

RESULTS = Path(__file__).resolve().parent / "results" / "processes.json"
START_TIMEOUT = 60.0  # seconds for every process to say it listens
FIGURES = ("ttft_added_p50_ms", "ttft_added_p99_ms", "total_p50_ratio", "complete", "streams")


class SharedPort:
    """`count` Daphne processes serving `application` on one loopback port."""

    def __init__(self, count: int, application: str, env: dict[str, str]) -> None:
        self.count = count
        self.application = application
        self.env = env
        self.port = 0
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self) -> "SharedPort":
        listeners = []
        try:
            for _ in range(self.count):
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                listener.bind(("127.0.0.1", self.port))
                self.port = listener.getsockname()[1]
                listener.listen(1024)
                listeners.append(listener)
            for listener in listeners:
                log = Path(tempfile.mkstemp(prefix="daphne-shared-", suffix=".log")[1])
                with log.open("wb") as output:
                    self.processes.append(subprocess.Popen(
                        [sys.executable, "-m", "daphne", "--fd", str(listener.fileno()), self.application],
                        cwd=ROOT, env=self.env, pass_fds=(listener.fileno(),), stdout=subprocess.DEVNULL,
                        stderr=output,
                    ))  # fmt: skip
                self.logs.append(log)
        finally:
            for listener in listeners:
                listener.close()  # the processes hold their own copies
        self._wait_until_listening()
        return self

    def _wait_until_listening(self) -> None:
        # The sockets accept connections before any Daphne runs: its log says when it serves them.
        deadline = time.monotonic() + START_TIMEOUT
        while not all("Listening on" in log.read_text(errors="replace") for log in self.logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                self.stop()
                tails = " | ".join(log.read_text(errors="replace")[-300:] for log in self.logs)
                raise RuntimeError(f"Daphne did not start: {tails}")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)
        for log in self.logs:
            log.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.processes", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,3", help="process counts to measure, comma-separated")
    parser.add_argument("--redis", metavar="URL", help="run the app with REDIS_URL set to this")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--tiny", action="store_true", help="a few streams only: checks the harness")
    arguments = parser.parse_args(argv)
    counts = [int(count) for count in arguments.processes.split(",")]
    bench = Bench(Scale.tiny() if arguments.tiny else Scale())
    upstream = UpstreamProcess().start()
    rows = []
    try:
        assert upstream.process is not None
        bench.upstream_pid = upstream.process.pid
        env, token = bench.prepared_app(upstream.url, arguments.redis)
        direct = Target("direct", f"{upstream.url}/v1/chat/completions")
        servers = {
            "switchboard": ("chatapp.asgi:application", PROXY_PATH, {"Authorization": f"Bearer {token}"}),
            "floor": ("bench.floor:application", "/v1/chat/completions", {}),
        }  # fmt: skip
        for count in counts:
            for name, (application, path, headers) in servers.items():
                bench.say(f"a. with {count} Daphne process(es): {name}...")
                served = SharedPort(count, application, {**env, "FLOOR_UPSTREAM": upstream.url}).start()
                try:
                    target = Target(name, f"http://127.0.0.1:{served.port}{path}", headers)
                    _direct, proxied = asyncio.run(bench.realistic(direct, target, served.processes[0].pid))
                finally:
                    served.stop()
                rows.append({"processes": count, "server": name, **{key: proxied[key] for key in FIGURES}})
    finally:
        upstream.stop()
        bench.cleanup()
    result = {"started": report.now(), "machine": report.machine(), "redis": bool(arguments.redis), "rows": rows}
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'processes':>9}  {'server':<12} {'TTFT added p50':>15} {'p99':>8} {'total p50':>10} {'complete':>9}")
    for row in rows:
        print(f"{row['processes']:>9}  {row['server']:<12} {row['ttft_added_p50_ms']:>+12.0f} ms"
              f" {row['ttft_added_p99_ms']:>+5.0f} ms {row['total_p50_ratio']:>9.3f}x"
              f" {row['complete']:>5}/{row['streams']}")  # fmt: skip
    print(f"\nfigures: {arguments.output}")


if __name__ == "__main__":
    main()
