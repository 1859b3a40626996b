"""Request hygiene: malformed and oversized requests get a 4xx, and stalled clients starve no one."""

from __future__ import annotations

import base64
import socket
import ssl
import time
from pathlib import Path

import pytest
import requests

from camd.http.front import REQUEST_TIMEOUT as HEAD_TIMEOUT
from tests.support import wait_until
from tests.support.daemon import PASSWORD, USER, Daemon
from tests.support.streams import read_parts
from tests.test_tls import certificate, https_daemon  # noqa: F401  (fixtures)

AUTH = b"Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()) + b"\r\n"


def exchange(daemon: Daemon, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes on a fresh connection; the response's status line (b'' if none)."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while b"\r\n" not in received and len(received) < 1 << 16:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
    return received.split(b"\r\n", 1)[0]


def get(target: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: camd\r\n" + b"".join(headers) + b"\r\n"


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


MALFORMED: list[tuple[str, bytes]] = [
    ("bad base64", get(b"/api/status", b"Authorization: Basic !!!not base64!!!\r\n")),
    ("no colon", get(b"/api/status", b"Authorization: Basic " + b64(b"adminnocolon") + b"\r\n")),
    ("non-UTF-8 credentials", get(b"/api/status", b"Authorization: Basic " + b64(b"\xff\xfe:\xc3\x28") + b"\r\n")),
    ("non-ASCII header bytes", get(b"/api/status", b"Authorization: Basic \xff\xfe\xfd\r\n")),
    ("empty scheme", get(b"/api/status", b"Authorization: \r\n")),
    ("other scheme", get(b"/api/status", b"Authorization: Bearer abc\r\n")),
    ("basic, nothing after", get(b"/api/status", b"Authorization: Basic\r\n")),
    ("long credentials", get(b"/api/status", b"Authorization: Basic " + b64(b"admin:" + b"x" * 9000) + b"\r\n")),
    ("huge Authorization", get(b"/api/status", b"Authorization: Basic " + b"A" * 40_000 + b"\r\n")),
    ("many headers", get(b"/", *(b"X-Pad-%d: %s\r\n" % (n, b"y" * 50) for n in range(2000)))),
    ("huge query", get(b"/api/status?q=" + b"a" * 40_000)),
    ("long path", get(b"/" + b"a" * 9000)),
    ("unknown method, private", get(b"/api/status", AUTH, method=b"BREW")),
    ("unknown method, public", get(b"/", method=b"BREW")),
    ("POST to a GET route", get(b"/stream.mjpg", AUTH, b"Content-Length: 0\r\n", method=b"POST")),
    ("control characters in method", get(b"/", method=b"G\x00T")),
    ("raw non-ASCII path", get(b"/\xff\xfe")),
    ("escaped non-UTF-8 path", get(b"/%ff%fe", AUTH)),
    ("traversal in static", get(b"/static/../camd/users.py")),
    ("escaped traversal in static", get(b"/static/%2e%2e/web/auth.py")),
    ("absolute URI of another host", get(b"http://example.com/")),
    ("asterisk", get(b"*", method=b"OPTIONS")),
    ("HTTP/0.9", b"GET /\r\n\r\n"),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("bare LF", b"GET / HTTP/1.1\nHost: camd\n\n"),
    ("header without colon", get(b"/", b"nonsense\r\n")),
    ("bad Content-Length", get(b"/api/status", b"Content-Length: abc\r\n", method=b"POST")),
    ("huge Content-Length", get(b"/api/status", AUTH, b"Content-Length: 99999999999\r\n", method=b"POST")),
    ("bad chunked body", get(b"/api/status", AUTH, b"Transfer-Encoding: chunked\r\n", method=b"POST") + b"zz\r\n\r\n"),
    ("fps not a number", get(b"/stream.mjpg?fps=abc", AUTH)),
    ("fps nan", get(b"/stream.mjpg?fps=nan", AUTH)),
    ("fps inf", get(b"/stream.mjpg?fps=inf", AUTH)),
    ("fps zero", get(b"/stream.mjpg?fps=0", AUTH)),
    ("fps negative", get(b"/stream.mjpg?fps=-5", AUTH)),
    ("fps too high", get(b"/stream.mjpg?fps=1e9", AUTH)),
    ("fps overflow", get(b"/stream.mjpg?fps=1e999", AUTH)),
    ("fps NUL", get(b"/stream.mjpg?fps=%00", AUTH)),
    ("fps bad escape", get(b"/stream.mjpg?fps=%ff", AUTH)),
    ("fps twice", get(b"/stream.mjpg?fps=abc&fps=5", AUTH)),
    ("Range past the end", get(b"/snapshot.jpg", AUTH, b"Range: bytes=99999999-\r\n")),
    ("Range garbage", get(b"/snapshot.jpg", AUTH, b"Range: lines=a-b\r\n")),
    ("odd Host", get(b"/", b"Host: \xff\xfe:99999\r\n")),
]


@pytest.mark.parametrize(("name", "data"), MALFORMED, ids=[name for name, _ in MALFORMED])
def test_malformed_requests_get_a_4xx(daemon: Daemon, name: str, data: bytes) -> None:
    status_line = exchange(daemon, data)
    print(f"\n{name}: {status_line.decode('latin-1')!r}")
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    code = int(status_line.split()[1])
    assert code < 500 or (name == "HTTP/2 preface" and code == 505), status_line
    # The daemon still answers, and nothing it logged is a traceback.
    assert requests.get(daemon.url("/healthz"), timeout=5).status_code == 200
    assert "Traceback" not in daemon.log


def test_a_head_that_never_ends_gets_408_and_is_closed(daemon: Daemon) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=HEAD_TIMEOUT + 20) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: camd\r\n")
        started = time.monotonic()
        # Trickling header lines does not extend the deadline.
        answer = b""
        while time.monotonic() - started < HEAD_TIMEOUT + 15:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            sock.settimeout(1)
            try:
                answer += sock.recv(4096)
                break
            except TimeoutError:
                continue
        elapsed = time.monotonic() - started
    status_line = answer.split(b"\r\n")[0]
    print(f"\nslow head: answered {status_line!r} after {elapsed:.1f}s (limit {HEAD_TIMEOUT:g}s)")
    assert answer.startswith(b"HTTP/1.1 408")
    assert elapsed < HEAD_TIMEOUT + 10


def viewer_rate(daemon: Daemon, seconds: float) -> tuple[float, float, int]:
    """Seconds to the first part, and the frame rate a viewer then gets over ``seconds``."""
    started = time.monotonic()
    first: list[float] = []

    def stop(part: object) -> bool:
        now = time.monotonic()
        if not first:
            first.append(now)
        return now - first[0] >= seconds

    parts = read_parts(daemon.url("/stream.mjpg"), 10_000, auth=daemon.auth, timeout=seconds + 30, stop=stop)
    stamps = [float(part.headers["x-timestamp"]) for part in parts[1:]]
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return first[0] - started if first else float("inf"), fps, len(parts)


def test_stalled_half_requests_do_not_starve_a_real_viewer(daemon: Daemon) -> None:
    capture_fps = wait_until(lambda: daemon.get("/api/status").json()["capture_fps"], 10, what="a capture rate")
    stalled: list[socket.socket] = []
    try:
        for number in range(200):
            sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
            # Half a request each, in the two usual shapes: nothing at all, and a head that stops.
            if number % 2:
                sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: camd\r\n" + AUTH[:20])
            stalled.append(sock)
        opened = time.monotonic()
        first_after, fps, count = viewer_rate(daemon, 4.0)
        health = requests.get(daemon.url("/healthz"), timeout=5)
        status = daemon.get("/api/status")
        waited = time.monotonic() - opened
        print(
            f"\n200 stalled connections: a viewer's first frame after {first_after * 1000:.0f} ms, then "
            f"{fps:.1f} fps over 4 s ({count} parts); capture at {capture_fps:.1f} fps; "
            f"/healthz {health.status_code}, /api/status {status.status_code} after {waited:.1f}s"
        )
        assert health.status_code == 200 and status.status_code == 200
        assert first_after < 3.0
        assert fps >= 0.8 * float(capture_fps)  # type: ignore[arg-type]
    finally:
        for sock in stalled:
            sock.close()


def test_tls_clients_that_never_finish_the_handshake_or_say_nothing_block_no_one(
    https_daemon: Daemon,  # noqa: F811
    certificate: tuple[Path, Path],  # noqa: F811
) -> None:
    cert, _ = certificate
    context = ssl.create_default_context(cafile=str(cert))
    silent = [socket.create_connection(("127.0.0.1", https_daemon.port), timeout=10) for _ in range(50)]
    quiet = [
        context.wrap_socket(socket.create_connection(("127.0.0.1", https_daemon.port), timeout=10),
                            server_hostname="127.0.0.1")
        for _ in range(50)
    ]  # fmt: skip
    try:
        asked = time.monotonic()
        response = requests.get(f"https://127.0.0.1:{https_daemon.port}/api/status", auth=https_daemon.auth, timeout=30)
        took = time.monotonic() - asked
        parts = read_parts(f"https://127.0.0.1:{https_daemon.port}/stream.mjpg", 5, auth=https_daemon.auth)
    finally:
        for sock in silent + quiet:
            sock.close()
    print(f"\nTLS: 50 connections without a handshake and 50 silent after it: /api/status in {took * 1000:.0f} ms")
    assert response.status_code == 200 and len(parts) == 5
    assert took < 2.0
    assert "Traceback" not in https_daemon.log
