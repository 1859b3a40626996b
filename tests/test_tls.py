"""https with tls_cert/tls_key: a client that trusts the certificate reads the stream, through the fan-out."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support import require_tool, wait_until
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.streams import Part, decode, read_parts


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI."""
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=camd test",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_daemon(
    daemon_factory: Callable[..., Daemon], certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Daemon:
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # this test's clients trust the test certificate
    daemon = daemon_factory(
        "--source", "test", "--width", "1280", "--height", "720", "--tls-cert", str(cert), "--tls-key", str(key),
        *FAST_WARMUP, wait_healthy=False,
    )  # fmt: skip
    assert "serving on https://" in daemon.log
    wait_until(lambda: health(daemon) == 200, 30, what="/healthz over https")
    return daemon


def https(daemon: Daemon, path: str) -> str:
    return f"https://127.0.0.1:{daemon.port}{path}"


def health(daemon: Daemon) -> int:
    return requests.get(https(daemon, "/healthz"), timeout=5).status_code


def test_stream_over_https(https_daemon: Daemon) -> None:
    parts = read_parts(https(https_daemon, "/stream.mjpg"), 20, auth=https_daemon.auth)
    assert len(parts) == 20
    for part in parts:
        assert int(part.headers["content-length"]) == len(part.body)
        assert decode(part.body).shape == (720, 1280, 3)
    stamps = [float(part.headers["x-timestamp"]) for part in parts]
    assert stamps == sorted(stamps) and len(set(stamps)) == 20


def test_a_client_that_does_not_trust_the_certificate_is_refused(
    https_daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https(https_daemon, "/healthz"), timeout=5)
    # Plain http is not served: it gets a short 400 that says why, and the connection is closed.
    plain = requests.get(f"http://127.0.0.1:{https_daemon.port}/healthz", timeout=5)
    assert plain.status_code == 400 and "https" in plain.text and plain.headers["Connection"] == "close"


def test_private_routes_still_need_a_login_over_https(https_daemon: Daemon) -> None:
    response = requests.get(https(https_daemon, "/stream.mjpg"), timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="camd"'
    snapshot = requests.get(https(https_daemon, "/snapshot.jpg"), auth=https_daemon.auth, timeout=5)
    assert snapshot.status_code == 200 and decode(snapshot.content).shape == (720, 1280, 3)


def test_a_slow_tls_viewer_gets_whole_frames_and_does_not_hold_up_a_fast_one(https_daemon: Daemon) -> None:
    """Large frames over TLS fill the socket: the fan-out's sends must survive SSLWantWrite and partial writes."""
    slow_parts: list[Part] = []

    def slow_viewer() -> None:
        def pause_after_first(part: Part) -> bool:
            if not slow_parts:
                time.sleep(3)  # stop reading: the server's TLS writes back up
            slow_parts.append(part)
            return len(slow_parts) >= 8

        read_parts(https(https_daemon, "/stream.mjpg"), 8, auth=https_daemon.auth, timeout=40, stop=pause_after_first)

    slow = threading.Thread(target=slow_viewer)
    slow.start()
    started = time.monotonic()
    fast = read_parts(https(https_daemon, "/stream.mjpg"), 30, auth=https_daemon.auth, timeout=30)
    fast_took = time.monotonic() - started
    slow.join(60)
    assert len(fast) == 30
    assert fast_took < 20
    assert len(slow_parts) == 8
    for part in slow_parts:
        assert decode(part.body).shape == (720, 1280, 3)
    stamps = [float(part.headers["x-timestamp"]) for part in slow_parts]
    assert stamps == sorted(stamps)
