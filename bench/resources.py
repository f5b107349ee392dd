"""What a scenario cost the machine: CPU of the server and of the load generator, refused connections.

    with Resources(server_pid) as used:
        ...  # the load
    used.figures()  # {"seconds": 4.1, "server_cpu": 0.97, "load_cpu": 0.41, "listen_overflows": 0}

CPU is a share of one core over the scenario's wall time (1.0 = one core
busy throughout). The server is one Daphne process, so near 1.0 it is
saturated; the load generator near 1.0 would mean the figures measure the
bench, not the app. Listen overflows are connections the kernel dropped
because a listening socket's backlog was full (machine-wide counter): each
costs its client a SYN retry, 1 s or more.
"""

import os
import resource
import time
from pathlib import Path
from typing import Self

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of stat; the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def listen_overflows() -> int | None:
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return None


class Resources:
    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self._start: tuple[float, float, float, int | None] | None = None
        self._end: tuple[float, float, float, int | None] | None = None

    def _sample(self) -> tuple[float, float, float, int | None]:
        server = process_cpu_seconds(self.server_pid) if self.server_pid else 0.0
        return time.perf_counter(), server, own_cpu_seconds(), listen_overflows()

    def __enter__(self) -> Self:
        self._start = self._sample()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._end = self._sample()

    def figures(self) -> dict:
        assert self._start is not None and self._end is not None
        seconds = self._end[0] - self._start[0]
        overflows = None
        if self._start[3] is not None and self._end[3] is not None:
            overflows = self._end[3] - self._start[3]
        return {
            "seconds": seconds,
            "server_cpu": (self._end[1] - self._start[1]) / seconds if self.server_pid else None,
            "load_cpu": (self._end[2] - self._start[2]) / seconds,
            "listen_overflows": overflows,
        }
