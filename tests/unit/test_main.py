"""camd.__main__.run: a part that fails to start unwinds everything started before it, in reverse."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camd import http
from camd.__main__ import run
from camd.lock import StateLock
from camd.settings import load

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)


@pytest.fixture(autouse=True)
def own_signal_handlers() -> Iterator[None]:
    """run() installs its handlers in this process: put pytest's back afterwards."""
    saved = {number: signal.getsignal(number) for number in HANDLED}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_a_failed_start_stops_what_started_and_frees_the_port_and_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "camd.toml"  # empty, so that a machine's /etc/camd/camd.toml plays no part
    config.write_text("")
    settings = load(
        {"state_dir": str(tmp_path / "state"), "source": "test", "host": "127.0.0.1", "port": "0"},
        environ={}, config=config,
    )  # fmt: skip
    bound: list[socket.socket] = []
    real_bind = http.bind

    def bind(host: str, port: int) -> socket.socket:
        bound.append(real_bind(host, port))
        return bound[-1]

    def refuse(self: http.HttpServer) -> None:
        raise RuntimeError("the server cannot start")

    monkeypatch.setattr(http, "bind", bind)
    monkeypatch.setattr(http.HttpServer, "start", refuse)
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="cannot start"):
        run(settings)
    left = [thread.name for thread in set(threading.enumerate()) - before if thread.is_alive()]
    assert left == []  # capture, stills, activity, timelapses and the fan-out were stopped
    assert bound[0].fileno() == -1  # the listening socket is closed
    lock = StateLock(settings.state_path)
    lock.acquire()  # the state directory is free again
    lock.release()
