"""Shared fixtures: a real camd process on a free loopback port, recordings, stream readers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests

from camd.users import set_password

USER = "admin"
PASSWORD = "correct horse battery"
REPO = Path(__file__).resolve().parent.parent
FAST_WARMUP = ("--warmup-delay", "0.2", "--warmup-frames", "3", "--warmup-max", "2")


UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything outside tests/unit is the end-to-end layer: mark it slow, so `-m "not slow"` is the quick loop."""
    for item in items:
        if UNIT not in item.path.parents:
            item.add_marker(pytest.mark.slow)


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "") -> object:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def require_tool(name: str) -> str:
    """The path of an external tool; in CI a missing one fails the test instead of skipping it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CAMD_REQUIRE_TOOLS") or os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


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


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start camd processes with extra arguments; every one is stopped after the test."""
    started: list[Daemon] = []

    def start(
        *args: str, env: dict[str, str] | None = None, wait_healthy: bool = True, wrapper: tuple[str, ...] = ()
    ) -> Daemon:
        state = tmp_path / f"state{len(started)}"
        state.mkdir()
        daemon = Daemon(state, args, env or {}, wrapper=wrapper)
        started.append(daemon)
        return daemon.start(wait_healthy=wait_healthy)

    yield start
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    """camd on the test pattern at 640x480, with a short warm-up."""
    return daemon_factory("--source", "test", "--width", "640", "--height", "480", *FAST_WARMUP)


# --- recordings and stream reading -------------------------------------------------------


def make_recording(
    path: Path,
    frames: int = 90,
    fps: float = 30,
    size: tuple[int, int] = (320, 240),
    first: int = 0,
    first_colour: tuple[int, int, int] = (0, 255, 0),
) -> Path:
    """An MJPEG .avi whose first ``first`` frames are flat ``first_colour``, the rest a moving picture."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPEG"
    for number in range(frames):
        if number < first:
            image = np.full((height, width, 3), first_colour, np.uint8)
        else:
            image = moving_picture(number, width, height)
        writer.write(image)
    writer.release()
    return path


def moving_picture(number: int, width: int, height: int) -> np.ndarray:
    """A grey gradient with a white square that moves with ``number``: never flat, never green."""
    ramp = np.linspace(40, 200, width, dtype=np.uint8)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    x = (number * 7) % max(1, width - 40)
    cv2.rectangle(image, (x, height // 3), (x + 40, height // 3 + 40), (255, 255, 255), -1)
    cv2.putText(image, str(number), (10, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    return image


def marker_picture(number: int, width: int, height: int) -> np.ndarray:
    """Magenta with noise: not flat, so the gate lets it through; only warm-up may discard it."""
    noise = np.random.default_rng(number).integers(-40, 40, (height, width, 3))
    return np.clip(np.array([230, 30, 230]) + noise, 0, 255).astype(np.uint8)


def is_marker(image: np.ndarray) -> bool:
    blue, green, red = (float(c) for c in image.reshape(-1, 3).mean(axis=0))
    return blue > 150 and red > 150 and green < 90


def is_green(image: np.ndarray) -> bool:
    """True for a (mostly) flat green frame."""
    blue, green, red = (float(c) for c in image.reshape(-1, 3).mean(axis=0))
    return green > 150 and blue < 80 and red < 80


@dataclass
class Part:
    headers: dict[str, str]
    body: bytes


def read_parts(
    url: str,
    count: int,
    *,
    auth: tuple[str, str] | None,
    timeout: float = 15,
    stop: Callable[[Part], bool] | None = None,
) -> list[Part]:
    """Read ``count`` parts of a multipart/x-mixed-replace stream (or until ``stop`` says so)."""
    parts: list[Part] = []
    with requests.get(url, auth=auth, stream=True, timeout=timeout) as response:
        assert response.status_code == 200, response.text
        boundary = b"--" + response.headers["Content-Type"].split("boundary=")[1].encode()
        deadline = time.monotonic() + timeout
        while len(parts) < count and time.monotonic() < deadline:
            part = next_part(response.raw, boundary)
            if part is None:
                break
            parts.append(part)
            if stop is not None and stop(part):
                break
    return parts


def next_part(reader: Any, boundary: bytes) -> Part | None:
    """The next part after ``boundary`` (``--`` included) on a raw response, or None at the end."""
    while (line := reader.readline()) and line.strip() != boundary:
        pass
    if not line:
        return None
    headers: dict[str, str] = {}
    while (header := reader.readline().strip()) != b"":
        name, _, value = header.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return Part(headers, reader.read(int(headers["content-length"])))


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "part does not decode as JPEG"
    return image


def is_placeholder(image: np.ndarray) -> bool:
    """True for camd's 'no picture' frame: dark grey with text and a thin red bar at the bottom."""
    bar = image[-4:].reshape(-1, 3).mean(axis=0)
    rest = float(np.median(image[: image.shape[0] // 8]))
    return bool(bar[2] > 110 and bar[0] < 60 and bar[1] < 60 and rest < 45)


class StreamWatcher:
    """Reads a multipart stream in a background thread and keeps every part, until closed or the stream ends."""

    def __init__(self, url: str, auth: tuple[str, str] | None, timeout: float = 30) -> None:
        self.parts: list[Part] = []
        self.times: list[float] = []  # time.monotonic() when each part arrived
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._closing = threading.Event()
        self.response = requests.get(url, auth=auth, stream=True, timeout=(5, timeout))
        self.status = self.response.status_code
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self.status == 200:
            self._thread.start()
        else:
            self.ended.set()

    def _run(self) -> None:
        try:
            boundary = b"--" + self.response.headers["Content-Type"].split("boundary=")[1].encode()
            while not self._closing.is_set():
                part = next_part(self.response.raw, boundary)
                if part is None:
                    return
                self.parts.append(part)
                self.times.append(time.monotonic())
        except Exception as exc:
            if not self._closing.is_set():
                self.error = exc
        finally:
            self.ended.set()

    def wait_for(self, condition: Callable[[Part], bool], timeout: float, what: str = "", start: int = 0) -> int:
        """The index of the first part from ``start`` on that meets ``condition``; fails after ``timeout``."""
        checked = start

        def found() -> int | None:
            nonlocal checked
            while checked < len(self.parts):
                if condition(self.parts[checked]):
                    return checked + 1  # truthy even for index 0
                checked += 1
            if self.ended.is_set():
                raise AssertionError(f"the stream ended ({self.error!r}) while waiting for {what}")
            return None

        return int(wait_until(found, timeout, what=what)) - 1  # type: ignore[call-overload]

    def close(self) -> None:
        self._closing.set()
        if self._thread.ident is not None:
            self._thread.join(5)  # parts keep coming (placeholders too), so the reader sees the flag
        self.response.close()


# --- a real browser -------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]  # fmt: skip
# Collects CSP violations the page reports (the init script runs outside the page's CSP).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def watched_page(context: Any, *, failed_requests: bool = False) -> tuple[Any, list[str]]:
    """A new page and the list its console errors, page errors, 4xx/5xx answers and CSP violations go to.

    ``failed_requests`` also lists aborted requests (a download aborts its navigation, so not always).
    """
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    if failed_requests:
        page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    return page, problems


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright, one per test file; each test opens its own context."""
    executable = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# --- systemd's notify socket ---------------------------------------------------------------

WATCHDOG_USEC = "2000000"  # 2 s: camd checks (and feeds) every 0.5 s


class NotifySocket:
    """The AF_UNIX datagram socket systemd would own; records every message camd sends."""

    def __init__(self) -> None:
        # sun_path is limited to 108 bytes: pytest's tmp_path can be longer.
        self.dir = tempfile.mkdtemp(prefix="camd-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.partition("=")[::2] for line in data.decode().splitlines() if line)
            self.messages.append((time.monotonic(), fields))

    def env(self, watchdog_usec: str | None = WATCHDOG_USEC) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": self.path}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = watchdog_usec
        return env

    def count(self, key: str, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for at, fields in list(self.messages) if key in fields and since <= at < until)

    def values(self, key: str) -> list[str]:
        return [fields[key] for _, fields in list(self.messages) if key in fields]

    def wait_for(self, key: str, timeout: float = 20, value: str | None = None) -> None:
        wait_until(
            lambda: any(key in fields and value in (None, fields[key]) for _, fields in list(self.messages)),
            timeout, what=f"{key}={value or '...'} on the notify socket",
        )  # fmt: skip

    def wait_watchdogs(self, count: int, timeout: float = 20) -> None:
        start = time.monotonic()
        wait_until(lambda: self.count("WATCHDOG", since=start) >= count, timeout, what=f"{count} WATCHDOG=1")

    def close(self) -> None:
        self._closing.set()
        self._thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    listener = NotifySocket()
    yield listener
    listener.close()
