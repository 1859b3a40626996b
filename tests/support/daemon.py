"""A real camd process: ``python -m camd run`` on 127.0.0.1 and a free port, its log, its HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import requests

from camd.users import set_password
from tests.support import wait_until

USER = "admin"
PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parent.parent.parent
FAST_WARMUP = ("--warmup-delay", "0.2", "--warmup-frames", "3", "--warmup-max", "2")


@dataclass
class Daemon:
    """A camd process started with ``python -m camd run`` on 127.0.0.1 and a free port."""

    state_dir: Path
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    module: str = "camd"  # what ``python -m`` runs: tests.faults wraps camd with fault injection
    wrapper: tuple[str, ...] = ()  # a command that execs camd, e.g. ``prlimit --nofile=256:256 --``
    proc: subprocess.Popen[str] | None = None
    port: int = 0
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def auth(self) -> tuple[str, str]:
        return (USER, PASSWORD)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def start(self, wait_healthy: bool = True, timeout: float = 30) -> Daemon:
        users = self.state_dir / "users"
        if not users.exists():
            set_password(users, USER, PASSWORD)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        if "NOTIFY_SOCKET" not in self.env:
            env.pop("NOTIFY_SOCKET", None)  # the test's own runner may be under systemd
        command = [
            *self.wrapper, sys.executable, "-m", self.module, "run", "--host", "127.0.0.1", "--port", "0",
            "--state-dir", str(self.state_dir), *self.args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        match = self.wait_for_log(r"serving on https?://[^:]+:(\d+)/", timeout)
        self.port = int(match.group(1))
        if wait_healthy:
            self.wait_healthy(timeout)
        return self

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for_log(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            if self.proc is not None and self.proc.poll() is not None and not regex.search(self.log):
                if self._reader is not None:
                    self._reader.join(2)  # its last lines may still be on their way
                if not regex.search(self.log):
                    raise AssertionError(f"camd exited with {self.proc.returncode}:\n{self.log}")
            return regex.search(self.log)

        return wait_until(found, timeout, what=f"log line {pattern!r}")  # type: ignore[return-value]

    def get(self, path: str, *, auth: bool = True, **kwargs: object) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return requests.get(self.url(path), auth=self.auth if auth else None, **kwargs)  # type: ignore[arg-type]

    def health(self) -> tuple[int, str]:
        response = requests.get(self.url("/healthz"), timeout=5)
        return response.status_code, response.json()["status"]

    def wait_healthy(self, timeout: float = 30) -> None:
        wait_until(lambda: self.health() == (200, "ok"), timeout, what="/healthz to say ok")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self._reader is not None:
                self._reader.join(2)
