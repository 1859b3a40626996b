"""camd under a real NOTIFY_SOCKET: READY, STATUS, WATCHDOG while frames flow, STOPPING on SIGTERM."""

from __future__ import annotations

import http.server
import signal
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import cv2
import pytest

from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.notify import NotifySocket
from tests.support.recordings import moving_picture


class MjpegServer:
    """A network camera in a few lines: MJPEG over HTTP, which can be made to hang or to die."""

    def __init__(self, fps: float = 15.0) -> None:
        self.fps = fps
        self.hang = threading.Event()
        self.release = threading.Event()
        self.dead = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if server.hang.is_set():
                    server.release.wait(60)  # accept the connection, then say nothing
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                number = 0
                try:
                    while not server.dead.is_set():
                        if server.hang.is_set():
                            server.release.wait(60)  # keep the connection open, send nothing
                            return
                        _ok, buffer = cv2.imencode(".jpg", moving_picture(number, 320, 240))
                        data = buffer.tobytes()
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                        self.wfile.write(head + data + b"\r\n")
                        number += 1
                        time.sleep(1 / server.fps)
                except OSError:
                    pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def resume(self) -> None:
        self.hang.clear()
        self.release.set()

    def die(self) -> None:
        """Close every connection and refuse new ones, as a camera that lost power."""
        self.dead.set()
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def camera() -> Iterator[MjpegServer]:
    server = MjpegServer()
    yield server
    server.release.set()
    if not server.dead.is_set():
        server.die()


def start_on(daemon_factory: Callable[..., Daemon], notify: NotifySocket, source: str) -> Daemon:
    return daemon_factory(
        "--source", source, "--width", "320", "--height", "240", "--stall-timeout", "1", *FAST_WARMUP,
        env=notify.env(),
    )  # fmt: skip


def test_ready_status_watchdog_and_stopping(daemon_factory: Callable[..., Daemon], notify: NotifySocket) -> None:
    daemon = daemon_factory(
        "--source", "test", "--width", "320", "--height", "240", *FAST_WARMUP, env=notify.env()
    )  # fmt: skip
    notify.wait_for("READY", value="1")
    assert notify.count("READY") == 1
    ready_at = next(at for at, fields in notify.messages if "READY" in fields)
    assert not any("WATCHDOG" in fields for at, fields in notify.messages if at < ready_at)
    assert "serving on" in daemon.log  # READY=1 only once the server listens

    notify.wait_watchdogs(4)
    wait_until(lambda: any(v.startswith("live ") for v in notify.values("STATUS")), 20, what="STATUS=live ...")
    status = next(v for v in notify.values("STATUS") if v.startswith("live "))
    assert " fps" in status and "viewers" in status and "320x240" in status
    print("STATUS:", notify.values("STATUS"))

    assert daemon.stop(signal.SIGTERM) == 0
    stopping = [at for at, fields in notify.messages if fields.get("STOPPING") == "1"]
    assert len(stopping) == 1
    assert not any("WATCHDOG" in fields for at, fields in notify.messages if at > stopping[0])


def test_status_counts_viewers(daemon_factory: Callable[..., Daemon], notify: NotifySocket) -> None:
    daemon = daemon_factory("--source", "test", "--width", "320", "--height", "240", *FAST_WARMUP, env=notify.env())
    with daemon.get("/stream.mjpg", stream=True) as response:
        assert response.status_code == 200
        chunks = response.iter_content(1024)  # keep it: a dropped generator closes the connection
        next(chunks)
        wait_until(lambda: any(v.endswith(", 1 viewer") for v in notify.values("STATUS")), 15, what="1 viewer")
    wait_until(lambda: notify.values("STATUS")[-1].endswith(", 0 viewers"), 15, what="0 viewers again")


def test_watchdog_stops_while_a_read_hangs_and_resumes_when_frames_return(
    daemon_factory: Callable[..., Daemon], notify: NotifySocket, camera: MjpegServer
) -> None:
    daemon = start_on(daemon_factory, notify, camera.url)
    notify.wait_watchdogs(3)

    camera.hang.set()  # the connection stays open and no byte comes: the read blocks
    daemon.wait_for_log(r"camera lost: a read has hung")
    daemon.wait_for_log(r"not feeding the systemd watchdog: a camera read hung")
    quiet_from = time.monotonic() + 0.5  # a WATCHDOG=1 sent just before may still be on its way
    time.sleep(3)  # six watchdog periods with no WATCHDOG=1 (a systemd with WatchdogSec=2 would restart camd)
    assert notify.count("WATCHDOG", since=quiet_from) == 0
    assert daemon.health()[0] == 503
    assert daemon.proc is not None and daemon.proc.poll() is None  # the daemon itself still runs

    camera.resume()
    daemon.wait_healthy(40)
    notify.wait_watchdogs(2, timeout=20)
    assert "feeding the systemd watchdog again" in daemon.log


def test_watchdog_fed_while_reconnecting_to_a_camera_that_is_gone(
    daemon_factory: Callable[..., Daemon], notify: NotifySocket, camera: MjpegServer
) -> None:
    """Deliberate: a camera that is gone fails fast; capture keeps trying, viewers keep the offline frame.

    A restart cannot bring the camera back, so the watchdog keeps being fed while capture
    makes progress reopening it; /healthz says offline, STATUS says why.
    """
    daemon = start_on(daemon_factory, notify, camera.url)
    notify.wait_watchdogs(2)
    camera.die()
    wait_until(lambda: daemon.health() == (503, "offline"), 20, what="/healthz offline")
    daemon.wait_for_log(r"reopening the camera")
    notify.wait_watchdogs(6, timeout=20)
    assert any(v.startswith("offline") for v in notify.values("STATUS"))
    assert "a camera read hung" not in daemon.log  # (a moment of "no live frame" before "offline" is fine)


def test_without_watchdog_usec_there_is_no_watchdog(
    daemon_factory: Callable[..., Daemon], notify: NotifySocket
) -> None:
    daemon = daemon_factory("--source", "test", *FAST_WARMUP, env=notify.env(watchdog_usec=None))
    notify.wait_for("READY", value="1")
    daemon.wait_healthy()
    time.sleep(1)
    assert notify.count("WATCHDOG") == 0
    assert daemon.stop() == 0
    notify.wait_for("STOPPING", value="1", timeout=5)
