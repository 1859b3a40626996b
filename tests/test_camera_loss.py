"""Camera loss and return, end to end, with a network camera the test runs itself (MJPEG over HTTP)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from tests.support import wait_until
from tests.support.daemon import Daemon
from tests.support.recordings import is_marker, marker_picture, moving_picture
from tests.support.streams import Part, StreamWatcher, decode, is_placeholder

BOUNDARY = "camframe"
WARMUP_FRAMES = 5
# A short warm-up that still discards exactly the camera's first WARMUP_FRAMES frames.
WARMUP = ("--warmup-delay", "0", "--warmup-frames", str(WARMUP_FRAMES), "--warmup-max", "2")


class NetworkCamera:
    """An MJPEG-over-HTTP camera on 127.0.0.1: multipart/x-mixed-replace JPEGs of a moving picture.

    Like a real webcam it starts every connection with a few frames that are not fit to show
    (``markers``: noisy magenta, which the frame gate lets through): only warm-up may discard them.
    """

    def __init__(self, fps: float = 15, size: tuple[int, int] = (320, 240), markers: int = WARMUP_FRAMES) -> None:
        self.fps, self.size, self.markers = fps, size, markers
        self.port = 0
        self.connections = 0
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video.mjpg"

    def start(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                camera.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                number = 0
                while not camera._stopping.is_set():
                    picture = marker_picture if number < camera.markers else moving_picture
                    ok, jpeg = cv2.imencode(".jpg", picture(number, *camera.size))
                    assert ok
                    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    try:
                        self.wfile.write(head.encode() + jpeg.tobytes() + b"\r\n")
                    except OSError:
                        return
                    number += 1
                    camera._stopping.wait(1 / camera.fps)
                self.close_connection = True

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # reuses the port: SO_REUSEADDR
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()

    def stop(self) -> None:
        """Unplug: stop listening and end every connection."""
        assert self._server is not None
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        # Nothing may still accept on the port: camd must see the camera gone.
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", self.port))


@pytest.fixture
def camera() -> Iterator[NetworkCamera]:
    camera = NetworkCamera()
    camera.start()
    yield camera
    if camera._server is not None:
        camera.stop()


def _live(part: Part) -> bool:
    return not is_placeholder(decode(part.body))


def test_viewer_sees_placeholder_while_camera_is_gone_and_live_frames_after(
    daemon_factory: Callable[..., Daemon], camera: NetworkCamera
) -> None:
    daemon = daemon_factory("--source", camera.url, "--stall-timeout", "2", *WARMUP)
    assert daemon.get("/api/status").json()["camera"]["state"] == "live"
    viewer = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)
    try:
        first_live = viewer.wait_for(_live, 10, "a live frame")
        assert decode(viewer.parts[first_live].body).shape == (240, 320, 3)

        camera.stop()
        lost_at = len(viewer.parts)
        placeholder = viewer.wait_for(lambda part: not _live(part), 15, "the placeholder", start=lost_at)
        # Same size as the camera's picture, so a page's layout does not jump.
        assert decode(viewer.parts[placeholder].body).shape == (240, 320, 3)
        wait_until(lambda: daemon.health() == (503, "offline"), 10, what="/healthz to say offline")
        status = daemon.get("/api/status").json()
        assert status["camera"]["state"] == "offline"
        assert status["reconnects"] == 1
        assert re.search(r"camera lost", daemon.log)

        camera.start()  # the same port again
        back = viewer.wait_for(_live, 20, "live frames again on the same connection", start=placeholder)
        assert back > placeholder
        daemon.wait_healthy(10)
        # Live frames keep coming after the return, not just one.
        viewer.wait_for(_live, 10, "a second live frame after the return", start=back + 1)
    finally:
        viewer.close()
    assert viewer.error is None

    # A fresh warm-up after the return, as thorough as the first: the camera's first frames never showed.
    counts = [int(n) for n in re.findall(r"warm-up discarded (\d+) frames", daemon.log)]
    assert len(counts) == 2 and min(counts) >= WARMUP_FRAMES, daemon.log
    assert not [i for i, part in enumerate(viewer.parts) if is_marker(decode(part.body))], "a warm-up frame was shown"
    assert "camera back after" in daemon.log
    status = daemon.get("/api/status").json()
    assert status["camera"]["state"] == "live"
    assert status["reconnects"] == 1
    assert camera.connections >= 2
    # While it was gone the viewer got placeholders only, never a stale live frame.
    stamps = [float(part.headers["x-timestamp"]) for part in viewer.parts[placeholder:back]]
    assert stamps == sorted(stamps)
    assert not [part for part in viewer.parts[placeholder:back] if _live(part)]


def test_snapshot_is_never_a_placeholder_and_health_recovers(
    daemon_factory: Callable[..., Daemon], camera: NetworkCamera
) -> None:
    daemon = daemon_factory("--source", camera.url, "--stall-timeout", "2", *WARMUP)
    before = daemon.get("/snapshot.jpg")
    assert before.status_code == 200 and not is_placeholder(decode(before.content))
    camera.stop()
    stopped_at = time.time()
    wait_until(lambda: daemon.health() == (503, "offline"), 15, what="/healthz to say offline")
    wait_until(lambda: daemon.get("/api/status").json()["camera"]["state"] == "offline", 10, what="state offline")
    # Viewers get the placeholder now, but a snapshot is the newest *valid* frame: never the
    # placeholder, never newer than the loss.
    during = daemon.get("/snapshot.jpg")
    if during.status_code == 200:
        assert not is_placeholder(decode(during.content))
        assert float(during.headers["X-Timestamp"]) <= stopped_at
    camera.start()
    daemon.wait_healthy(20)
    after = daemon.get("/snapshot.jpg")
    assert after.status_code == 200 and not is_placeholder(decode(after.content))
    assert float(after.headers["X-Timestamp"]) > float(before.headers["X-Timestamp"])
