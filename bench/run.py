"""One bench run: the services, the scenarios in order, the figures.

The app is served exactly as in production: `daphne chatapp.asgi:application`
with DEBUG off, through tests.live_server (the same harness the multi-process
tests use), on a fresh SQLite file (WAL) unless BENCH_DATABASE_URL names
another database. Each scenario starts with a small warm-up that is not
measured (first requests fetch the model catalogue, fill caches and import
code), and direct and proxied rounds alternate so that a noisy neighbour
hurts both sides alike.
"""

import asyncio
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench import chat, load, report
from bench.load import Target, percentile
from bench.profiler import Profile
from bench.resources import Resources
from bench.upstream import MODEL, UpstreamProcess
from tests.live_server import ROOT, AppServer, base_env, free_port, manage, prepared_database

CHAT_MODEL = f"{MODEL}@openrouter"
PAUSE = 0.5  # seconds between rounds: sockets closed, buffers drained
_EARLIER = re.compile(r'<div class="earlier-messages" hx-get="([^"]+)"')  # the link to the window before (d.)
_ARTICLE_ID = re.compile(r'<article id="m-(\d+)"')
PROXY_PATH = "/api/openrouter/v1/chat/completions"  # where scenarios a. and b. post, through Switchboard
SCENARIOS = "abcd"


@dataclass(frozen=True)
class Scale:
    """How much load each scenario puts on; `Scale()` is the issue's, `Scale.tiny()` the smoke test's."""

    streams: int = 100
    tokens: int = 100
    delay: float = 0.02
    rounds: int = 3
    saturation_streams: int = 50
    saturation_tokens: int = 200
    saturation_seconds: float = 4.0
    saturation_rounds: int = 2
    conversations: int = 100
    chat_tokens: int = 100
    chat_rounds: int = 2
    idle_sockets: int = 500
    page_messages: int = 1000
    page_requests: int = 20
    isolated: bool = True  # a fresh Daphne for the chat and for the page
    settle: float = 1.0  # seconds for the server's memory to settle around the idle sockets

    @classmethod
    def tiny(cls) -> "Scale":
        return cls(streams=3, tokens=5, delay=0.02, rounds=1, saturation_streams=2, saturation_tokens=5,
                   saturation_seconds=0.3, saturation_rounds=1, conversations=3, chat_tokens=10, chat_rounds=1,
                   idle_sockets=3, page_messages=20, page_requests=2, isolated=False, settle=0.1)  # fmt: skip


class Bench:
    def __init__(self, scale: Scale, profile_dir: Path | None = None, say=None, only: str = SCENARIOS) -> None:
        self.scale = scale
        self.only = only  # the scenarios to run, by letter
        self.profile_dir = profile_dir
        self.say = say or self._say
        self._began = time.monotonic()
        self.figures: dict = {}
        self.profiles: dict = {}
        self.resources: dict[str, list[dict]] = {}
        self.upstream_pid = 0
        self.servers: list[AppServer] = []
        self.peers: dict = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))

    # -- services ------------------------------------------------------------

    def app_env(self, upstream_url: str) -> dict[str, str]:
        database = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        return base_env(
            DATABASE_URL=database,
            DEBUG="false",
            OPENROUTER_API_KEY="sk-bench",
            OPENROUTER_URL=upstream_url,
            RATE_LIMIT="100000/m",  # the proxy counts requests per user: the bench is one user
        )

    def prepared_app(self, upstream_url: str, redis_url: str | None = None) -> tuple[dict[str, str], str]:
        """The app's environment, its database migrated with the bench's user, and that user's API token."""
        env = self.app_env(upstream_url)
        if redis_url:
            env["REDIS_URL"] = redis_url
        prepared_database(env)
        return env, manage(env, "create_api_token", "alice", "--name", "bench").strip()

    def run(self, peers: tuple[str, ...] = ()) -> dict:
        started = report.now()
        machine = report.machine()
        upstream = UpstreamProcess().start()
        assert upstream.process is not None
        self.upstream_pid = upstream.process.pid
        try:
            self.say("preparing the database and starting Daphne...")
            env, token = self.prepared_app(upstream.url)
            direct = Target("direct", f"{upstream.url}/v1/chat/completions")
            server, pid = self.fresh_server(env)
            proxy = Target("switchboard", f"{server.url}{PROXY_PATH}",
                           {"Authorization": f"Bearer {token}"})  # fmt: skip
            if "a" in self.only:
                self.scenario("a. proxy API, realistic load", ("direct", "proxy"),
                              lambda: asyncio.run(self.realistic(direct, proxy, pid)))  # fmt: skip
            if "b" in self.only:
                self.scenario("b. proxy API, saturation", ("saturation",),
                              lambda: (asyncio.run(self.saturation(direct, proxy, pid)),))  # fmt: skip
            cookies = server.signed_in_cookies()  # the session is in the database: good on every server
            # The chat and the page get a server of their own, so that their
            # figures do not depend on what the scenarios before them left behind.
            if "c" in self.only:
                if self.scale.isolated:
                    server, pid = self.fresh_server(env)
                browser = chat.Browser(server.port, cookies)
                self.scenario("c. chat over WebSocket", ("chat",), lambda: (asyncio.run(self.chat(browser, pid)),))
                self.scenario("c. memory per idle socket", ("memory",),
                              lambda: (asyncio.run(chat.memory_per_socket(browser, pid, self.scale.idle_sockets,
                                                                          self.scale.settle)),))  # fmt: skip
            if "d" in self.only:
                if self.scale.isolated:
                    server, pid = self.fresh_server(env)
                self.scenario("d. a long conversation page", ("page",),
                              lambda: (self.page(env, server, cookies, pid),))  # fmt: skip
            self.retire_servers()
            for peer in peers:
                self.peers[peer] = self.peer(peer, direct, upstream.url)
        finally:
            self.retire_servers()
            upstream.stop()
        result = {
            "issue": "Benchmarks",
            "started": started,
            "finished": report.now(),
            "machine": machine,
            "scale": asdict(self.scale),
            "method": METHOD,
            "figures": self.figures,
            "judged": report.judged(self.figures),
        }
        if self.peers:
            result["peers"] = self.peers
        result["resources"] = {name: _combined(rounds) for name, rounds in self.resources.items()}
        if self.profiles:
            result["profiles"] = self.profiles
        return result

    def _say(self, text: str) -> None:
        print(f"[{time.monotonic() - self._began:5.1f} s] {text}", flush=True)

    def fresh_server(self, env: dict[str, str]) -> tuple[AppServer, int]:
        """Stop the running Daphne, if any, and start a new one on the same database."""
        self.retire_servers()
        server = AppServer(env).start(timeout=60)
        self.servers.append(server)
        assert server.process is not None
        return server, server.process.pid

    def retire_servers(self) -> None:
        while self.servers:
            server = self.servers.pop()
            server.stop()
            self._keep_log(server)

    def scenario(self, title: str, keys: tuple[str, ...], work) -> None:
        """Run one scenario; a failure is recorded with its figures and the next one still runs."""
        self.say(f"{title}...")
        try:
            for key, figures in zip(keys, work(), strict=True):
                self.figures[key] = figures
        except Exception as exc:  # noqa: BLE001 - a broken scenario must not cost the others their figures
            self.say(f"  failed: {type(exc).__name__}: {exc}")
            for key in keys:
                self.figures[key] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}

    def _keep_log(self, server: AppServer) -> None:
        """The server's log, when it said anything worth reading, is kept beside the profiles."""
        if server.log is None or not server.log.exists():
            return
        text = server.log.read_text(errors="replace")
        if self.profile_dir is not None and text.strip():
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            with (self.profile_dir / "daphne.log").open("a") as log:
                log.write(text)
        errors = [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
        if errors:
            self.figures.setdefault("server_errors", []).extend(errors[: 10 - len(self.figures.get("server_errors", []))])
        server.log.unlink()

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _profiled(self, name: str, pid: int) -> Profile | None:
        if self.profile_dir is None or not pid:
            return None
        return Profile(pid, self.profile_dir / f"{name}.txt")

    async def _measured(self, name: str, pid: int, work, profiled: bool = True):
        """Run `work` under a resource meter of process `pid` (and py-spy on it when asked)."""
        profile = self._profiled(name, pid) if profiled else None
        with Resources(pid) as used:
            if profile is None:
                outcome = await work
            else:
                with profile:
                    outcome = await work
        self.resources.setdefault(name, []).append(used.figures())
        if profile is not None:
            self.profiles[name] = profile.summary()
        return outcome

    # -- a. realistic ---------------------------------------------------------

    async def realistic(self, direct: Target, proxy: Target, pid: int) -> tuple[dict, dict]:
        s = self.scale
        await load.concurrent_streams(proxy, min(5, s.streams), 5, 0.0)  # warm-up
        direct_results, proxy_results, rounds = [], [], []
        for _round in range(s.rounds):
            direct_results += await self._measured(
                f"a_{direct.name}", self.upstream_pid,
                load.concurrent_streams(direct, s.streams, s.tokens, s.delay), profiled=False,
            )  # fmt: skip
            await asyncio.sleep(PAUSE)
            proxied = await self._measured(
                f"a_{proxy.name}", pid, load.concurrent_streams(proxy, s.streams, s.tokens, s.delay)
            )
            proxy_results += proxied
            figures = load.stream_figures(proxied, s.tokens)
            rounds.append({key: figures[key] for key in ("ttft_p50_ms", "ttft_p99_ms", "total_p50_ms", "complete")})
            await asyncio.sleep(PAUSE)
        direct_figures = load.stream_figures(direct_results, s.tokens)
        proxy_figures = load.stream_figures(proxy_results, s.tokens)
        proxy_figures.update(_compared(direct_figures, proxy_figures))
        proxy_figures["rounds"] = rounds
        return direct_figures, proxy_figures

    # -- b. saturation --------------------------------------------------------

    async def saturation(self, direct: Target, proxy: Target, pid: int) -> dict:
        s = self.scale
        sides: dict[str, list[load.Throughput]] = {"direct": [], "proxy": []}
        for _round in range(s.saturation_rounds):
            sides["direct"].append(await self._measured(
                f"b_{direct.name}", self.upstream_pid,
                load.saturation(direct, s.saturation_streams, s.saturation_tokens, s.saturation_seconds),
                profiled=False,
            ))  # fmt: skip
            await asyncio.sleep(PAUSE)
            sides["proxy"].append(await self._measured(
                f"b_{proxy.name}", pid,
                load.saturation(proxy, s.saturation_streams, s.saturation_tokens, s.saturation_seconds),
            ))  # fmt: skip
            await asyncio.sleep(PAUSE)
        return _throughput_figures(sides["direct"], sides["proxy"])

    # -- c. chat ----------------------------------------------------------------

    async def chat(self, browser: chat.Browser, pid: int) -> dict:
        s = self.scale
        await chat.conversations(browser, 1, 5, 0.0, CHAT_MODEL)  # warm-up
        results, rounds = [], []
        for _round in range(s.chat_rounds):
            conversations = await self._measured(
                "c_chat", pid, chat.conversations(browser, s.conversations, s.chat_tokens, s.delay, CHAT_MODEL)
            )
            results += conversations
            figures = chat.chat_figures(conversations, s.chat_tokens)
            rounds.append({key: figures[key] for key in ("delay_p50_ms", "delay_p99_ms", "frames_per_second_p50",
                                                         "total_p50_ms")})  # fmt: skip
            await asyncio.sleep(PAUSE)
        figures = chat.chat_figures(results, s.chat_tokens)
        figures["rounds"] = rounds
        direct_total = (self.figures.get("direct") or {}).get("total_p50_ms")
        if direct_total and figures["total_p50_ms"]:
            figures["total_p50_ratio"] = figures["total_p50_ms"] / direct_total
        return figures

    # -- d. page ----------------------------------------------------------------

    def page(self, env: dict[str, str], server: AppServer, cookies: dict[str, str], pid: int) -> dict:
        s = self.scale
        seeded = subprocess.run(
            [sys.executable, "-m", "bench.page", "--messages", str(s.page_messages)],
            cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "chatapp.settings"},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if seeded.returncode != 0:
            raise RuntimeError(f"seeding the long conversation failed:\n{seeded.stderr[-3000:]}")
        figures = json.loads(seeded.stdout)
        profile = self._profiled("d_page", pid)
        with httpx.Client(base_url=server.url, cookies=cookies, timeout=60) as client:

            def timed(url: str, requests: int, **kwargs) -> tuple[list[float], httpx.Response]:
                """Milliseconds for each of `requests` GETs of `url`, and the last response."""
                times = []
                for _request in range(requests):
                    began = time.perf_counter()
                    response = client.get(url, **kwargs)
                    times.append((time.perf_counter() - began) * 1000)
                    response.raise_for_status()
                return times, response

            timed(figures["url"], 2)  # warm up
            if profile is not None:
                profile.__enter__()
            try:
                times, response = timed(figures["url"], s.page_requests)
            finally:
                if profile is not None:
                    profile.__exit__(None, None, None)
                    self.profiles["d_page"] = profile.summary()
            # The page carries the latest messages: a reader scrolling up fetches the earlier ones a window at a time.
            page = response.text
            on_page = loaded = page.count("<article ")
            windows = []
            while link := _EARLIER.search(page):
                window_times, response = timed(html.unescape(link[1]), 1, headers={"HX-Request": "true"})
                windows += window_times
                page = response.text
                loaded += page.count("<article ")
            # A page opened at the 11th message (a search result far up): the messages around it.
            early = _ARTICLE_ID.findall(page)[:11][-1]
            kept, kept_page = timed(figures["url"], max(2, s.page_requests // 4), params={"keep": early})
            # The whole branch in one page, as a browser without JavaScript asks for it.
            whole, whole_page = timed(figures["url"], max(2, s.page_requests // 4), params={"all": "1"})
        figures.update(
            requests=len(times),
            server_p50_ms=percentile(times, 50),
            server_p99_ms=percentile(times, 99),
            queries_fixed=figures["queries"] == figures["queries_short"],
            messages_on_page=on_page,
            earlier_windows=len(windows),
            earlier_p50_ms=percentile(windows, 50),
            earlier_max_ms=max(windows, default=None),
            messages_loaded=loaded,  # after every window: all of them, once
            kept_p50_ms=percentile(kept, 50),
            kept_messages=kept_page.text.count("<article "),
            whole_p50_ms=percentile(whole, 50),
            whole_bytes=len(whole_page.content),
        )
        return figures

    # -- the peer ---------------------------------------------------------------

    def peer(self, name: str, direct: Target, upstream_url: str) -> dict:
        from bench.peer import PEER_CLASSES, PeerUnavailable

        self.say(f"peer: {name}...")
        proxy = PEER_CLASSES[name](free_port())
        try:
            proxy.install()
            proxy.start(upstream_url)
            target = proxy.target()
            assert proxy.process is not None
            realistic_direct, realistic = asyncio.run(self.realistic(direct, target, proxy.process.pid))
            throughput = asyncio.run(self.saturation(direct, target, proxy.process.pid))
            return {"direct": realistic_direct, "proxy": realistic, "saturation": throughput}
        except PeerUnavailable as exc:
            self.say(f"peer {name} not run: {exc}")
            return {"error": str(exc)}
        finally:
            proxy.stop()
            shutil.rmtree(proxy.workdir, ignore_errors=True)


def _combined(rounds: list[dict]) -> dict:
    """Rounds of one scenario as one: CPU shares weighted by each round's length."""
    seconds = sum(r["seconds"] for r in rounds)

    def share(key: str) -> float | None:
        if not seconds or any(r[key] is None for r in rounds):
            return None
        return sum(r[key] * r["seconds"] for r in rounds) / seconds

    overflows = [r["listen_overflows"] for r in rounds]
    return {
        "rounds": len(rounds),
        "seconds": seconds,
        "server_cpu": share("server_cpu"),
        "load_cpu": share("load_cpu"),
        "listen_overflows": None if None in overflows else sum(overflows),
    }


def _compared(direct: dict, proxied: dict) -> dict:
    def difference(key: str) -> float | None:
        return None if direct[key] is None or proxied[key] is None else proxied[key] - direct[key]

    def ratio(key: str) -> float | None:
        return None if not direct[key] or proxied[key] is None else proxied[key] / direct[key]

    return {
        "ttft_added_p50_ms": difference("ttft_p50_ms"),
        "ttft_added_p99_ms": difference("ttft_p99_ms"),
        "ttft_p50_ratio": ratio("ttft_p50_ms"),
        "total_p50_ratio": ratio("total_p50_ms"),
        "total_added_p50_ms": difference("total_p50_ms"),
    }


def _throughput_figures(direct: list[load.Throughput], proxied: list[load.Throughput]) -> dict:
    def rate(rounds: list[load.Throughput]) -> float:
        seconds = sum(r.seconds for r in rounds)
        return sum(r.tokens for r in rounds) / seconds if seconds else 0.0

    direct_rate, proxy_rate = rate(direct), rate(proxied)
    return {
        "direct_tokens_per_second": direct_rate,
        "proxy_tokens_per_second": proxy_rate,
        "tokens_per_second_ratio": proxy_rate / direct_rate if direct_rate else None,
        "direct_rounds": [_throughput(r) for r in direct],
        "proxy_rounds": [_throughput(r) for r in proxied],
    }


def _throughput(r: load.Throughput) -> dict:
    return {"tokens": r.tokens, "seconds": r.seconds, "streams": r.streams, "failed": r.failed,
            "errors": r.errors, "tokens_per_second": r.tokens_per_second}  # fmt: skip


METHOD = {
    "upstream": "bench/upstream.py in its own process: one write per token, each token stamped with time.time()",
    "load": "raw asyncio HTTP/1.1 in the bench process, one connection per stream; websockets for the chat",
    "a": "concurrent streams through POST /api/openrouter/v1/chat/completions and straight to the upstream, "
         "rounds alternating; TTFT = request start to first token parsed; total = request start to end of body",
    "b": "N clients requesting undelayed streams back to back for a fixed time; tokens received / elapsed",
    "c": "N sockets opened, one message each sent at once; delay = receipt time - the token's upstream stamp; "
         "frames/s = (frames carrying answer text - 1) / their time span; tokens counted in the final render; "
         "memory = Daphne's VmRSS before/after opening idle sockets, divided by their number",
    "d": "repeated GETs of the page over one kept-alive connection on the otherwise idle server (client-side "
         "round trip on loopback); queries counted in-process with CaptureQueriesContext around the test "
         "client against the same database, after one warm-up request; fixed = same count as a 20-message page",
}  # fmt: skip
