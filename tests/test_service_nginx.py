"""The README's "Behind nginx" configuration, run by a real nginx: the stream comes through unbuffered."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import require_tool
from tests.support.daemon import REPO, Daemon
from tests.support.nginx import running, write_conf
from tests.support.streams import decode, read_parts


def readme_nginx_config() -> str:
    match = re.search(r"## Behind nginx.*?```nginx\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    assert match, "README.md has no nginx block under 'Behind nginx'"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nginx(daemon: Daemon, tmp_path: Path) -> Iterator[str]:
    """nginx in the foreground, in a temp dir, with the README's locations pointing at the test daemon."""
    binary = require_tool("nginx")
    port = free_port()
    locations = readme_nginx_config().replace("127.0.0.1:8080", f"127.0.0.1:{daemon.port}")
    temp = tmp_path / "nginx"
    temp.mkdir()
    url = f"http://127.0.0.1:{port}"
    with running(binary, write_conf(temp, port, locations), lambda: _answers(url)):
        yield url


def _answers(url: str) -> bool:
    try:
        requests.get(url + "/healthz", timeout=2)
    except requests.ConnectionError:
        return False
    return True


def test_the_stream_comes_through_nginx_frame_by_frame(daemon: Daemon, nginx: str) -> None:
    assert requests.get(nginx + "/stream.mjpg", timeout=5).status_code == 401  # camd still asks for the login
    started = time.monotonic()
    parts = read_parts(nginx + "/stream.mjpg", 30, auth=daemon.auth, timeout=20)
    took = time.monotonic() - started
    assert len(parts) == 30
    for part in parts:
        assert int(part.headers["content-length"]) == len(part.body)
    assert decode(parts[-1].body).shape == (480, 640, 3)
    # A buffering proxy would hold frames back and then release them in bursts; unbuffered,
    # 30 frames of a 30 fps camera take about a second.
    assert took < 8, f"30 parts took {took:.1f}s through nginx"
    stamps = [float(part.headers["x-timestamp"]) for part in parts]
    assert abs(stamps[-1] - time.time()) < 3, "the frames that come through are current"


def test_pages_and_metrics_through_nginx(daemon: Daemon, nginx: str) -> None:
    assert requests.get(nginx + "/healthz", timeout=5).json() == {"status": "ok"}
    metrics = requests.get(nginx + "/metrics", auth=daemon.auth, timeout=5)
    assert metrics.status_code == 200 and "camd_frames_captured_total" in metrics.text
    snapshot = requests.get(nginx + "/snapshot.jpg", auth=daemon.auth, timeout=5)
    assert snapshot.status_code == 200 and decode(snapshot.content).shape == (480, 640, 3)
