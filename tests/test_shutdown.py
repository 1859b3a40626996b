"""A clean stop: SIGTERM or SIGINT with viewers connected ends their streams and exits 0 within 5 s."""

from __future__ import annotations

import base64
import signal
import socket
import time
from collections.abc import Callable

import pytest

from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.streams import StreamWatcher

STOP_WITHIN = 5.0


def _silent_viewer(daemon: Daemon) -> socket.socket:
    """A viewer that asks for the stream and then never reads: its socket buffers fill up."""
    sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    token = base64.b64encode(":".join(daemon.auth).encode()).decode()
    sock.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n".encode())
    return sock


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_with_viewers_connected(daemon_factory: Callable[..., Daemon], sig: signal.Signals) -> None:
    daemon = daemon_factory("--source", "test", "--width", "640", "--height", "480", *FAST_WARMUP)
    viewers = [StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth) for _ in range(3)]
    silent = _silent_viewer(daemon)
    try:
        for viewer in viewers:
            viewer.wait_for(lambda part: True, 10, "a frame")
            first = len(viewer.parts)
            viewer.wait_for(lambda part: True, 10, "more frames", start=first)
        assert daemon.get("/api/status").json()["viewers"] == 4

        assert daemon.proc is not None
        sent = time.monotonic()
        daemon.proc.send_signal(sig)
        code = daemon.proc.wait(STOP_WITHIN + 5)
        took = time.monotonic() - sent
        assert code == 0, daemon.log
        assert took < STOP_WITHIN, f"took {took:.1f}s to stop"
        daemon.wait_for_log(r"\bstopped\b", 5)
        assert "Traceback" not in daemon.log

        # Every viewer's connection ended (EOF or reset), none is left hanging.
        for viewer in viewers:
            assert viewer.ended.wait(5), "a viewer's stream did not end"
        silent.settimeout(5)
        try:
            while silent.recv(65536):
                pass
        except ConnectionResetError:
            pass
        # And nothing listens any more.
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", daemon.port))
    finally:
        for viewer in viewers:
            viewer.close()
        silent.close()
