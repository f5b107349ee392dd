"""Targets, the table on stdout and bench/results/latest.json.

The targets come from the issue "Benchmarks"; every one is judged against a
figure of the same run (ratios against direct access for the proxy).
"""

import json
import operator
import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


@dataclass(frozen=True)
class Goal:
    key: str  # a dotted path into the figures
    label: str
    compare: str  # "<=", ">=" or "=="
    bound: Any
    unit: str = ""

    def met(self, figures: dict) -> bool | None:
        value = lookup(figures, self.key)
        if value is None:
            return None
        return {"<=": operator.le, ">=": operator.ge, "==": operator.eq}[self.compare](value, self.bound)

    def as_text(self) -> str:
        return f"{self.compare} {format_value(self.bound)}{self.unit}"


GOALS = [
    Goal("proxy.ttft_added_p50_ms", "a. time to first token p50, added", "<=", 15, " ms"),
    Goal("proxy.total_p50_ratio", "a. total time p50, vs direct", "<=", 1.05, "x"),
    Goal("saturation.tokens_per_second_ratio", "b. tokens/s at saturation, vs direct", ">=", 0.4, "x"),
    Goal("chat.tokens_delivered_fraction", "c. tokens delivered", ">=", 1.0),
    Goal("chat.delay_p99_ms", "c. token delay p99", "<=", 200, " ms"),
    Goal("chat.frames_per_second_max", "c. frames per second per stream (max)", "<=", 20),
    Goal("page.server_p50_ms", "d. page server time p50", "<=", 300, " ms"),
    Goal("page.queries_fixed", "d. queries fixed (long page = short page)", "==", True),
]


def lookup(figures: dict, key: str) -> Any:
    value: Any = figures
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def machine() -> dict:
    """The facts that make figures comparable: cores, memory, CPU, Python, load."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    import django

    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 2**20, 1),
        "cpu": cpu or platform.processor(),
        "python": sys.version.split()[0],
        "django": django.get_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def judged(figures: dict) -> list[dict]:
    return [
        {"key": goal.key, "label": goal.label, "target": goal.as_text(), "value": lookup(figures, goal.key),
         "met": goal.met(figures)}
        for goal in GOALS
    ]  # fmt: skip


def write(result: dict, path: Path = RESULTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=False, default=str) + "\n")
    return path


# The table -------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _row(columns: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths)))


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    return "\n".join([_row(header, widths), line, *(_row(r, widths) for r in rows)])


def _met(flag: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "n/a"}[flag]


def table(result: dict) -> str:
    figures = result["figures"]
    peers = result.get("peers", {})
    direct, proxy = figures.get("direct", {}), figures.get("proxy", {})
    saturation = figures.get("saturation", {})
    header = ["a./b. proxy API", "direct", "switchboard", "vs direct"]
    rows = [
        ["TTFT p50", _ms(direct.get("ttft_p50_ms")), _ms(proxy.get("ttft_p50_ms")),
         f"+{format_value(proxy.get('ttft_added_p50_ms'))} ms"],
        ["TTFT p99", _ms(direct.get("ttft_p99_ms")), _ms(proxy.get("ttft_p99_ms")),
         f"+{format_value(proxy.get('ttft_added_p99_ms'))} ms"],
        ["total p50", _ms(direct.get("total_p50_ms")), _ms(proxy.get("total_p50_ms")),
         f"{format_value(proxy.get('total_p50_ratio'))}x"],
        ["complete streams", f"{direct.get('complete', '-')}/{direct.get('streams', '-')}",
         f"{proxy.get('complete', '-')}/{proxy.get('streams', '-')}", ""],
        ["tokens/s at saturation", format_value(saturation.get("direct_tokens_per_second")),
         format_value(saturation.get("proxy_tokens_per_second")),
         f"{format_value(saturation.get('tokens_per_second_ratio'))}x"],
    ]  # fmt: skip
    for name, peer in peers.items():
        header.append(name)
        header.append(f"{name} vs direct")
        if "error" in peer:
            for row in rows:
                row += ["-", "-"]
            rows[0][-2] = "not run"
            continue
        pp, ps = peer.get("proxy", {}), peer.get("saturation", {})
        extra = [
            [_ms(pp.get("ttft_p50_ms")), f"+{format_value(pp.get('ttft_added_p50_ms'))} ms"],
            [_ms(pp.get("ttft_p99_ms")), f"+{format_value(pp.get('ttft_added_p99_ms'))} ms"],
            [_ms(pp.get("total_p50_ms")), f"{format_value(pp.get('total_p50_ratio'))}x"],
            [f"{pp.get('complete', '-')}/{pp.get('streams', '-')}", ""],
            [format_value(ps.get("proxy_tokens_per_second")), f"{format_value(ps.get('tokens_per_second_ratio'))}x"],
        ]
        for row, cells in zip(rows, extra):
            row += cells
    parts = [_table(header, rows)]

    chat = figures.get("chat", {})
    memory = figures.get("memory", {})
    page = figures.get("page", {})
    parts.append(_table(["c. chat over WebSocket", "value"], [
        ["conversations", format_value(chat.get("conversations"))],
        ["tokens in final content", f"{chat.get('tokens_final', '-')}/{chat.get('tokens_expected', '-')}"],
        ["tokens streamed live", f"{chat.get('tokens_streamed', '-')}/{chat.get('tokens_expected', '-')}"],
        ["token delay p50 / p99", f"{_ms(chat.get('delay_p50_ms'))} / {_ms(chat.get('delay_p99_ms'))}"],
        ["time to first token p50 / p99", f"{_ms(chat.get('ttft_p50_ms'))} / {_ms(chat.get('ttft_p99_ms'))}"],
        ["frames/s per stream p50 / max",
         f"{format_value(chat.get('frames_per_second_p50'))} / {format_value(chat.get('frames_per_second_max'))}"],
        ["conversation total p50 (vs direct stream)",
         f"{_ms(chat.get('total_p50_ms'))} ({format_value(chat.get('total_p50_ratio'))}x)"],
        ["server memory per idle socket",
         f"{format_value(memory.get('per_socket_kb'))} KB ({memory.get('sockets', '-')} sockets)"],
    ]))  # fmt: skip
    parts.append(_table(["d. conversation page", "value"], [
        ["messages (on the page)", f"{format_value(page.get('messages'))} ({page.get('messages_on_page', '-')})"],
        ["server time p50 / p99", f"{_ms(page.get('server_p50_ms'))} / {_ms(page.get('server_p99_ms'))}"],
        ["page size", f"{format_value((page.get('bytes') or 0) / 1024)} KB"],
        ["SQL queries (long / short page)", f"{page.get('queries', '-')} / {page.get('queries_short', '-')}"],
        ["earlier windows, each p50 / max (messages then)",
         f"{page.get('earlier_windows', '-')}, {_ms(page.get('earlier_p50_ms'))} / {_ms(page.get('earlier_max_ms'))}"
         f" ({page.get('messages_loaded', '-')})"],
        ["a page opened at the 11th message (?keep=) p50 (messages)",
         f"{_ms(page.get('kept_p50_ms'))} ({page.get('kept_messages', '-')})"],
        ["whole branch in one page (?all=1) p50, size",
         f"{_ms(page.get('whole_p50_ms'))}, {format_value((page.get('whole_bytes') or 0) / 1024)} KB"],
    ]))  # fmt: skip
    resources = result.get("resources", {})
    if resources:
        parts.append(_table(["CPU (1.0 = one core busy)", "seconds", "serving process", "load generator",
                             "listen overflows"], [
            [name, f"{r['seconds']:.1f}", format_value(r["server_cpu"]), format_value(r["load_cpu"]),
             format_value(r["listen_overflows"])]
            for name, r in resources.items()
        ]))  # fmt: skip
    for name, profile in result.get("profiles", {}).items():
        rows = [[p["function"], f"{p['share']:.1%}"] for p in profile.get("self", [])[:8]]
        if rows:
            title = f"py-spy {name}: {profile['samples']} samples, {profile['idle']:.0%} idle; on top of the stack"
            parts.append(_table([title, "share"], rows))
    parts.append(_table(["targets", "value", "target", ""], [
        [j["label"], format_value(j["value"]), j["target"], _met(j["met"])] for j in result["judged"]
    ]))  # fmt: skip
    facts = result["machine"]
    parts.append(
        f"machine: {facts['cores']} cores, {facts['memory_gb']} GB, {facts['cpu']}, Python {facts['python']}, "
        f"load {', '.join(f'{x:.2f}' for x in facts['load_average_at_start'])} at start"
    )
    return "\n\n".join(parts)
