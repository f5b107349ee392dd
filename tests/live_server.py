"""The app served by real Daphne processes, for browser and multi-process tests.

Each `AppServer` is a `daphne chatapp.asgi:application` subprocess with its own
environment (database, channel layer, provider URLs), exactly as production
runs it. `prepared_database(env)` migrates a database and creates a user.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def base_env(**overrides: str) -> dict[str, str]:
    """A clean environment: no provider key or URL leaks in from the shell."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_URL")) and k not in ("CUSTOM_MODELS", "DEFAULT_MODEL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        SECRET_KEY="live-server-secret-key-" + "x" * 40,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepared_database(env: dict[str, str], username: str = "alice") -> None:
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(
        env,
        "shell",
        "-c",
        "from accounts.models import User; "
        f"User.objects.filter(username='{username}').exists() or "
        f"User.objects.create_user('{username}', password='{PASSWORD}', is_staff=True, is_superuser=True)",
    )


@dataclass
class AppServer:
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log: Path | None = None  # the process's stderr, for a failing test to read

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "AppServer":
        self.log = Path(tempfile.mkstemp(prefix=f"daphne-{self.port}-", suffix=".log")[1])
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-e", f"tcp:port={self.port}:interface=127.0.0.1:backlog=1024",
                 "chatapp.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            wait_until_ready(self.process, lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200,
                             timeout)  # fmt: skip
        except NotReady as exc:
            raise RuntimeError(f"daphne {exc}: {self.log.read_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def signed_in_cookies(self, username: str = "alice") -> dict[str, str]:
        """Sign in through the sign-in form, as a browser would."""
        with httpx.Client(base_url=self.url, timeout=10) as client:
            page = client.get("/accounts/signin/")
            token = page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
            response = client.post(
                "/accounts/signin/",
                data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
                headers={"Referer": f"{self.url}/accounts/signin/"},
            )
            assert response.status_code == 302, response.text[:500]
            return dict(client.cookies)


class NotReady(Exception):
    """A server process exited, or did not answer in time; the message says which."""


def wait_until_ready(process: subprocess.Popen, ready: Callable[[], bool], timeout: float,
                     interval: float = 0.1) -> None:  # fmt: skip
    """Poll `ready` until it is true; connection errors count as "not yet".

    NotReady when the process exits first, or when `timeout` seconds pass (the
    process is stopped then).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotReady(f"exited with status {process.returncode}")
        try:
            if ready():
                return
        except (OSError, httpx.TransportError):
            pass
        time.sleep(interval)
    stop_process(process)
    raise NotReady(f"was not ready in {timeout} s")


def stop_process(process: subprocess.Popen | None, timeout: float = 5) -> None:
    """End a child process: asked to terminate, killed if it has not after `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
