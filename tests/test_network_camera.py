"""A network camera: camd reading another camd's MJPEG stream over HTTP with basic auth in the URL.

The password in the source URL must never reach the log, /api/status or /metrics, whether the
camera answers, refuses the login, or is not there at all (FFmpeg's own messages included).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, PASSWORD, USER, Daemon
from tests.support.streams import decode

CAMERA = ("--source", "test", "--width", "320", "--height", "240", "--fps", "10", *FAST_WARMUP)


def secrets_shown(daemon: Daemon, secret: str) -> list[str]:
    """Where ``secret`` (or its URL-quoted form) shows: log lines, /api/status, /metrics."""
    places = [line for line in daemon.lines if secret in line or quote(secret) in line]
    for path in ("/api/status", "/metrics"):
        text = daemon.get(path).text
        if secret in text or quote(secret) in text:
            places.append(path)
    return places


def test_a_network_camera_goes_live_and_its_password_shows_nowhere(daemon_factory: Callable[..., Daemon]) -> None:
    camera = daemon_factory(*CAMERA)
    url = f"http://{USER}:{quote(PASSWORD)}@127.0.0.1:{camera.port}/stream.mjpg"
    viewer = daemon_factory("--source", url, *FAST_WARMUP)

    status = viewer.get("/api/status").json()
    assert status["camera"]["state"] == "live"
    assert (status["camera"]["width"], status["camera"]["height"]) == (320, 240)
    picture = decode(viewer.get("/snapshot.jpg").content)
    assert picture.shape[:2] == (240, 320)
    assert secrets_shown(viewer, PASSWORD) == []
    assert f"http://***@127.0.0.1:{camera.port}/stream.mjpg" in viewer.log  # said, with the secret hidden


@pytest.mark.parametrize("where", ["a wrong password", "nothing listening", "rtsp, nothing listening"])
def test_a_refused_or_missing_network_camera_stays_offline_without_showing_its_password(
    daemon_factory: Callable[..., Daemon], where: str
) -> None:
    wrong = "not-the-Password-42"
    if where == "a wrong password":
        camera = daemon_factory(*CAMERA)
        port = camera.port
    else:
        port = 9  # discard: nothing listens on loopback
    scheme = "rtsp" if where.startswith("rtsp") else "http"
    url = f"{scheme}://{USER}:{wrong}@127.0.0.1:{port}/stream.mjpg"
    viewer = daemon_factory("--source", url, *FAST_WARMUP, wait_healthy=False)

    viewer.wait_for_log(r"cannot open", 30)
    wait_until(lambda: viewer.log.count("cannot open") >= 2, 30, what="a second failed open, after the backoff")
    status = viewer.get("/api/status").json()
    assert status["camera"]["state"] == "offline", status["camera"]
    assert viewer.get("/snapshot.jpg").status_code == 503
    assert secrets_shown(viewer, wrong) == []
