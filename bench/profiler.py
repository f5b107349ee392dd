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

RATE = 200  # samples per second: enough for a few seconds of load, light on the target


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profile:
    def __init__(self, pid: int, output: Path) -> None:
        self.pid = pid
        self.output = output
        self.process: subprocess.Popen | None = None
        self.error = ""

    def __enter__(self) -> "Profile":
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
        """The functions with the most samples: by `self` time (on top of the stack) and by
        `total` time (anywhere in it, leaving out the frames that are in nearly every sample:
        the event loop, the thread's entry point)."""
        own: Counter[str] = Counter()
        inside: Counter[str] = Counter()
        samples = 0
        if self.output.exists():
            for line in self.output.read_text(errors="replace").splitlines():
                stack, _, number = line.rpartition(" ")
                if not stack or not number.isdigit():
                    continue
                n = int(number)
                frames = [_function(f) for f in stack.split(";")]
                samples += n
                own[frames[-1]] += n
                for function in set(frames):
                    inside[function] += n
        if not samples:
            return {"samples": 0, "error": self.error or "no samples"}
        everywhere = {f for f, n in inside.items() if n >= samples * 0.97}
        by_total = [f for f, _n in inside.most_common() if f not in everywhere][:count]
        return {
            "samples": samples,
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
