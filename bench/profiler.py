"""Where the server's time goes: py-spy sampling a process while a scenario runs.

    with Profile(pid, Path("profiles/proxy.txt")) as profile:
        ...  # the load
    profile.summary()  # {"samples": 812, "self": [{"function": ..., "share": 0.21}, ...], "total": [...]}

Optional (`python -m bench --profile DIR`): without py-spy installed, or
without the right to trace the process, it says so and measures nothing.
"""

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Self

RATE = 200  # samples per second: enough for a few seconds of load, light on the target
IDLE = {"EpollSelector.select (selectors.py)", "_worker (concurrent/futures/thread.py)"}
# Frames under everything (process and thread entry, the event loop, thread hand-offs): left out of `total`.
PLUMBING = ("<frozen runpy>", "threading.py", "asyncio/base_events.py", "asyncio/events.py", "concurrent/futures/",
            "daphne/cli.py", "daphne/server.py", "daphne/__main__.py", "twisted/internet/asyncioreactor.py",
            "asgiref/sync.py", "asgiref/current_thread_executor.py", "contextvars")  # fmt: skip


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profile:
    def __init__(self, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output
        self.process: subprocess.Popen | None = None
        self.error = ""

    def __enter__(self) -> Self:
        executable = py_spy()
        if executable is None:
            self.error = "py-spy is not installed"
            return self
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [executable, "record", "--pid", str(self.pid), "--rate", str(RATE), "--format", "raw",
             "--nonblocking", "--output", str(self.output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            _out, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _out, err = self.process.communicate()
        if not self.output.exists():
            self.error = (err or b"").decode(errors="replace").strip()[-300:] or "py-spy wrote nothing"

    def summary(self, count: int = 12) -> dict:
        """The functions with the most samples.

        `self`: on top of the stack; `total`: anywhere in it, leaving out the
        plumbing every sample goes through (process and thread entry, the event
        loop, asgiref's thread hand-offs). Samples of a thread waiting for work (an idle executor thread,
        the event loop in its selector) are counted apart as `idle`: py-spy
        cannot always tell them from work.
        """
        own: Counter[str] = Counter()
        inside: Counter[str] = Counter()
        samples = idle = 0
        if self.output.exists():
            for line in self.output.read_text(errors="replace").splitlines():
                stack, _, number = line.rpartition(" ")
                if not stack or not number.isdigit():
                    continue
                n = int(number)
                frames = [_function(f) for f in stack.split(";")]
                samples += n
                if frames[-1] in IDLE:
                    idle += n
                    continue
                own[frames[-1]] += n
                for function in set(frames):
                    inside[function] += n
        if not samples:
            return {"samples": 0, "error": self.error or "no samples"}
        by_total = [f for f, _n in inside.most_common() if not any(p in f for p in PLUMBING)][:count]
        return {
            "samples": samples,
            "idle": round(idle / samples, 3),
            "self": [{"function": f, "share": round(n / samples, 3)} for f, n in own.most_common(count)],
            "total": [{"function": f, "share": round(inside[f] / samples, 3)} for f in by_total],
        }


def _function(frame: str) -> str:
    """`render (django/template/base.py:1008)` -> `render (django/template/base.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in ("site-packages/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name
