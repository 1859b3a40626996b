"""Path safety: hostile names against the still, thumbnail, download, viewer and zip routes.

Requests are written to the socket as they are (no client-side normalising of
``..`` or encodings). None may serve anything from outside the stills folder,
none may answer 5xx.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.recordings import moving_picture
from tests.support.streams import decode

SECRET = b"TOPSECRET-outside-the-stills-folder"


def raw_get(daemon: Daemon, path: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """Send ``path`` byte for byte; return the status and the whole response (head and body)."""
    token = base64.b64encode(f"{daemon.auth[0]}:{daemon.auth[1]}".encode())
    request = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\nConnection: close\r\n\r\n" % (
        method, path, token,
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    status_line = response.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), response


@pytest.fixture
def planted(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> tuple[Daemon, str, str]:
    """A daemon with one real still, secrets outside its folder, and symlinks planted inside it."""
    import cv2

    outside = tmp_path / "outside"
    outside.mkdir()
    secret_jpeg = cv2.imencode(".jpg", moving_picture(7, 320, 240))[1].tobytes() + SECRET
    today = time.strftime("%Y-%m-%d")
    stamp = time.strftime("%Y%m%d")
    (outside / f"{stamp}-000001.jpg").write_bytes(secret_jpeg)
    (outside / "secret.jpg").write_bytes(secret_jpeg)
    (outside / "20200101-000000.jpg").write_bytes(secret_jpeg)
    daemon = daemon_factory(
        "--source", "test", "--width", "320", "--height", "240", *FAST_WARMUP,
        "--stills-interval", "1h", "--stills-max-age", "0", "--stills-min-free-mb", "0",
    )  # fmt: skip
    response = requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10)
    assert response.status_code == 201
    name = response.json()["name"]
    root = daemon.state_dir / "stills"
    (daemon.state_dir / "secret.jpg").write_bytes(secret_jpeg)
    (root / today / f"{stamp}-000002.jpg").symlink_to(outside / f"{stamp}-000001.jpg")
    (root / "2020-01-01").symlink_to(outside, target_is_directory=True)
    (root / today / ".camd-0123456789abcdef.tmp").write_bytes(secret_jpeg)
    return daemon, today, name


def hostile_paths(today: str, name: str) -> list[str]:
    stem = name[:-4]
    stamp = today.replace("-", "")
    return [
        "/stills/../users",
        "/stills/../secret.jpg",
        "/stills/..%2fusers",
        "/stills/%2e%2e/users",
        "/stills/%2e%2e%2fsecret.jpg",
        "/stills/%252e%252e%252fsecret.jpg",
        "/stills/../../../../etc/passwd",
        f"/stills/{today}/../../users",
        f"/stills/{today}/../../secret.jpg",
        f"/stills/{today}/..%2f..%2fsecret.jpg",
        f"/stills/{today}/%2e%2e%2f%2e%2e%2fsecret.jpg",
        f"/stills/{today}/%252e%252e%252f%252e%252e%252fsecret.jpg",
        f"/stills/{today}/..%5c..%5csecret.jpg",
        f"/stills/{today}/..\\..\\secret.jpg",
        "/stills/..\\..\\users",
        "/stills/%2fetc%2fpasswd",
        "/stills//etc/passwd",
        f"/stills/{today}//etc/passwd",
        f"/stills/{today}/%2fetc%2fpasswd",
        f"/stills/{today}/%2Ftmp%2F{stamp}-000001.jpg",
        f"/stills/{today}/{name}%00.jpg",
        f"/stills/{today}/{stem}%00.jpg",
        f"/stills/{today}%00/{name}",
        f"/stills/{today}/{'9' * 5000}.jpg",
        f"/stills/{today}/{stem}-{'1' * 300}.jpg",
        "/stills/" + "a" * 9000 + "/x.jpg",
        f"/stills/{today}/{stamp}-000002.jpg",  # a symlink planted in the folder, pointing outside
        "/stills/2020-01-01/20200101-000000.jpg",  # a symlinked day folder
        f"/stills/{today}/.camd-0123456789abcdef.tmp",
        f"/stills/{today}/....//....//secret.jpg",
        "/stills/....%2f....%2fsecret.jpg",
        "/stills/%c0%ae%c0%ae/secret.jpg",
        "/stills/..%c0%afsecret.jpg",
        "/stills/%u002e%u002e/secret.jpg",
        "/stills/file:%2f%2f%2fetc%2fpasswd",
        f"/stills/{today}/{name}/..",
        f"/stills/{today}/{name}/",
        f"/stills/{today}/{stem}.JPG",
        f"/stills/{today}/{stem}.jpg.",
        f"/stills/{today}/%20{name}",
        "/stills/0000-00-00/00000000-000000.jpg",
        "/stills/2026-13-45/20261345-256199.jpg",
        f"/stills/{today}/../2020-01-01/20200101-000000.jpg",
        "/stills/..%2f..%2fusers.zip",
        "/stills/%2e%2e.zip",
        "/stills/..\\users.zip",
        "/stills/%252e%252e.zip",
        f"/stills/{today}%00.zip",
        f"/stills/{today}/..%2f.zip",
        "/stills/2020-01-01.zip",  # the symlinked day folder
        "/stills/" + "9" * 5000 + ".zip",
    ]


def test_hostile_names_never_serve_outside_content_nor_5xx(planted: tuple[Daemon, str, str]) -> None:
    daemon, today, name = planted
    users = (daemon.state_dir / "users").read_bytes()
    # The genuine still is served, so the refusals below are not an accident of the setup.
    status, response = raw_get(daemon, f"/stills/{today}/{name}".encode())
    assert status == 200
    decode(response.split(b"\r\n\r\n", 1)[1])

    paths = hostile_paths(today, name)
    assert len(paths) >= 30
    suffixes = ["", "?thumb=1", "?download=1"]
    results = []
    for path in paths:
        for suffix in suffixes if not path.endswith(".zip") else [""]:
            for method in (b"GET", b"HEAD"):
                status, response = raw_get(daemon, (path + suffix).encode("latin-1"), method)
                results.append((method, path + suffix, status))
                assert status < 500, f"{method!r} {path + suffix} -> {status}"
                assert status not in (200, 206), f"{method!r} {path + suffix} was served: {status}"
                assert SECRET not in response, f"{path + suffix} leaked a file from outside"
                assert users not in response and b"root:" not in response
    # NUL bytes in a raw request line: the server refuses them before the app sees them.
    for path in (b"/stills/" + today.encode() + b"/" + name.encode() + b"\x00.jpg", b"/stills/\x00/../users"):
        status, response = raw_get(daemon, path)
        assert 400 <= status < 500 and SECRET not in response
    assert "Traceback" not in daemon.log and " 500 " not in daemon.log
    assert len(results) > 100
