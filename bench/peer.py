"""Peers to compare with, in front of the same fake upstream: a. and b. run against each.

- `litellm`: LiteLLM's proxy, one worker. `python -m bench --peer litellm`
  installs it on first use into its own virtual environment
  (bench/.peer-venv, so none of its many dependencies reach the app's).
- `floor`: bench/floor.py under Daphne, a bare relay: what Daphne itself
  adds, below which Switchboard cannot go in one process.

Each is started on a free loopback port. Any failure (no network for pip, a
start that never becomes healthy) is reported and the bench carries on.
"""

import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.load import Target
from tests.live_server import ROOT, NotReady, stop_process, wait_until_ready
from bench.upstream import MODEL

PEER_VENV = Path(__file__).resolve().parent / ".peer-venv"
PEERS = ("litellm", "floor")
INSTALL_TIMEOUT = 1200  # seconds: LiteLLM's proxy pulls in a few hundred MB
START_TIMEOUT = 180  # seconds: it imports a lot before it listens
# LiteLLM refuses to start without a master key; clients then send it as their token.
MASTER_KEY = "sk-bench-" + secrets.token_hex(16)

CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream}/v1
      api_key: sk-bench
litellm_settings:
  drop_params: true
  telemetry: false
"""


class PeerUnavailable(Exception):
    pass


class PeerProcess:
    """A peer server in its own process, on `port`, with a scratch directory."""

    name = ""
    log_name = ""  # the server's output, in workdir

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-"))

    def wait_until_ready(self, ready, interval: float = 0.1) -> None:
        assert self.process is not None
        try:
            wait_until_ready(self.process, ready, START_TIMEOUT, interval)
        except NotReady as exc:
            raise PeerUnavailable(f"{self.name} {exc}: {self.log_tail()}") from None

    def log_tail(self) -> str:
        log = self.workdir / self.log_name
        return log.read_text(errors="replace")[-800:] if log.exists() else ""

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


class LiteLLMProxy(PeerProcess):
    name = "litellm"
    log_name = "litellm.log"

    @property
    def executable(self) -> Path:
        return PEER_VENV / "bin" / "litellm"

    def install(self) -> None:
        if self.executable.exists():
            return
        print(f"installing litellm[proxy] into {PEER_VENV} (first use only)...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True, capture_output=True)
            subprocess.run(
                [str(PEER_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
                check=True,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
            )
        except subprocess.CalledProcessError as exc:
            raise PeerUnavailable(f"installing litellm failed: {(exc.stderr or exc.stdout or '')[-500:]}") from None
        except subprocess.TimeoutExpired:
            raise PeerUnavailable("installing litellm took too long") from None
        if not self.executable.exists():
            raise PeerUnavailable("litellm was installed but has no `litellm` command")

    def start(self, upstream_url: str) -> "LiteLLMProxy":
        config = self.workdir / "config.yaml"
        config.write_text(CONFIG.format(model=MODEL, upstream=upstream_url))
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_URL"))}
        # Offline and quiet: the bundled price list instead of fetching one, no telemetry, few logs.
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False", LITELLM_LOG="ERROR",
                   LITELLM_MASTER_KEY=MASTER_KEY)  # fmt: skip
        log = (self.workdir / self.log_name).open("wb")
        self.process = subprocess.Popen(
            [str(self.executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port),
             "--num_workers", "1"],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        healthy = f"http://127.0.0.1:{self.port}/health/liveliness"
        self.wait_until_ready(lambda: httpx.get(healthy, timeout=2).status_code == 200, interval=0.5)
        return self

    def target(self) -> Target:
        return Target(self.name, f"http://127.0.0.1:{self.port}/v1/chat/completions",
                      {"Authorization": f"Bearer {MASTER_KEY}"})  # fmt: skip


class FloorRelay(PeerProcess):
    """bench/floor.py under Daphne, served as the app is (same backlog, one process)."""

    name = "floor"
    log_name = "daphne.log"

    def install(self) -> None:
        pass  # Daphne is the app's own

    def start(self, upstream_url: str) -> "FloorRelay":
        log = (self.workdir / self.log_name).open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-e", f"tcp:port={self.port}:interface=127.0.0.1:backlog=1024",
             "bench.floor:application"],
            cwd=ROOT, env={**os.environ, "FLOOR_UPSTREAM": upstream_url}, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        self.wait_until_ready(lambda: _accepts_connections(self.port))
        return self

    def target(self) -> Target:
        return Target(self.name, f"http://127.0.0.1:{self.port}/v1/chat/completions")


def _accepts_connections(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


PEER_CLASSES = {"litellm": LiteLLMProxy, "floor": FloorRelay}
