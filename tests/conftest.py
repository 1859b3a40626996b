"""Fixtures over tests/support: a real camd process on a free loopback port, a browser, a notify socket.

The helpers themselves live in ``tests/support``, and tests import them from there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults import ENV, STALL, set_mode
from tests.support.browser import chromium
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.notify import NotifySocket

UNIT = Path(__file__).resolve().parent / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything outside tests/unit is the end-to-end layer: mark it slow, so `-m "not slow"` is the quick loop."""
    for item in items:
        if UNIT not in item.path.parents:
            item.add_marker(pytest.mark.slow)


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
def faulty(tmp_path: Path) -> Iterator[Callable[..., tuple[Daemon, Path]]]:
    """Start camd under tests.faults; returns the daemon and its fault control file."""
    started: list[Daemon] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[Daemon, Path]:
        state = tmp_path / f"faulty{len(started)}"
        state.mkdir()
        control = state / "fault"
        set_mode(control, "ok")
        environ = {ENV: str(control), **(env or {})}
        daemon = Daemon(state, ("--stall-timeout", STALL, *FAST_WARMUP, *args), environ, "tests.faults")
        started.append(daemon)
        daemon.start()
        return daemon, control

    yield start
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    """camd on the test pattern at 640x480, with a short warm-up."""
    return daemon_factory("--source", "test", "--width", "640", "--height", "480", *FAST_WARMUP)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per test file; each test opens its own context."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    listener = NotifySocket()
    yield listener
    listener.close()
