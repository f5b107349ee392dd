"""`make bench` works end to end, at a tiny scale (issue: Benchmarks).

Not a speed test: nothing here looks at a timing. It checks that the harness
starts its upstream and a real Daphne, drives every scenario (3 streams of 5
tokens, 3 conversations of 10, a 20-message page) and the floor peer,
produces every figure the targets are judged on, and writes the JSON where
it is told to.
"""

import json

from bench.__main__ import main
from bench.report import GOALS, lookup


def test_the_bench_produces_every_figure_and_writes_its_json(tmp_path, capsys):
    output = tmp_path / "results" / "latest.json"

    assert main(["--tiny", "--peer", "floor", "--output", str(output)]) == 0

    result = json.loads(output.read_text())
    figures = result["figures"]
    failed = {key: value["error"] for key, value in figures.items() if isinstance(value, dict) and "error" in value}
    assert not failed, failed
    for goal in GOALS:
        assert lookup(figures, goal.key) is not None, goal.key
    assert {j["key"] for j in result["judged"]} == {goal.key for goal in GOALS}
    assert all(j["met"] in (True, False) for j in result["judged"])
    assert set(result["machine"]) >= {"cores", "memory_gb", "cpu", "python"}
    assert result["started"] <= result["finished"]
    # Every stream and every conversation came through whole, directly and through the app.
    assert (figures["direct"]["complete"], figures["proxy"]["complete"]) == (3, 3)
    assert figures["saturation"]["proxy_tokens_per_second"] > 0
    assert figures["chat"]["tokens_final"] == figures["chat"]["tokens_expected"] == 30
    assert figures["chat"]["ttft_p50_ms"] is not None
    assert figures["page"]["messages"] == 20 and figures["page"]["queries"] > 0
    assert figures["page"]["kept_messages"] == 20 and figures["page"]["kept_p50_ms"] > 0
    assert figures["memory"]["sockets"] == 3
    # The floor relay, a peer that needs no install, came through whole too.
    floor = result["peers"]["floor"]
    assert (floor["proxy"]["complete"], floor["saturation"]["proxy_tokens_per_second"] > 0) == (3, True)
    table = capsys.readouterr().out
    assert "targets" in table and str(output) in table and "floor vs direct" in table


def test_the_several_processes_bench_serves_through_every_process_count(tmp_path):
    from bench.processes import main as processes_main

    output = tmp_path / "processes.json"
    processes_main(["--tiny", "--processes", "1,2", "--output", str(output)])

    rows = json.loads(output.read_text())["rows"]
    assert [(r["processes"], r["server"]) for r in rows] == [
        (1, "switchboard"), (1, "floor"), (2, "switchboard"), (2, "floor")
    ]
    assert all(r["complete"] == r["streams"] == 3 and r["ttft_added_p50_ms"] is not None for r in rows)
