"""The classic Flask MJPEG pattern, as a baseline: a camera thread and one generator per viewer.

This is the design most Flask camera tutorials teach (written here from the
pattern, not copied): a camera thread produces one JPEG per frame (decoding the
source and encoding the result), keeps the newest one, and sets one Event per
viewer thread; each viewer's request runs a generator that waits on its Event
and yields the part, built for that viewer. Run it the way such apps are
deployed, under gunicorn with threads:

    BENCH_PASSWORD=secret gunicorn -k gthread -w 1 --threads 256 -b 127.0.0.1:8082 bench.classic_server:app

Settings come from the environment: BENCH_SOURCE (test, or file:PATH), BENCH_WIDTH,
BENCH_HEIGHT, BENCH_FPS, BENCH_QUALITY, BENCH_USER, BENCH_PASSWORD. Unlike the
tutorials the event table is locked, so a storm of new viewers cannot kill the
camera thread (unlocked, a viewer joining while the camera thread walks the
table makes it fail with "dictionary changed size during iteration"), and the camera runs whether anyone watches or
not, as camd's must (stills).
"""

from __future__ import annotations

import base64
import hmac
import os
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
from flask import Flask, Response, request

from camd.sources import Pacer, TestPatternSource

BOUNDARY = "camdframe"


class Camera:
    """The camera thread and the newest JPEG, handed to viewers through per-thread Events."""

    def __init__(self, source: str, width: int, height: int, fps: float, quality: int) -> None:
        self.source, self.width, self.height, self.fps, self.quality = source, width, height, fps, quality
        self.frame: tuple[bytes, float] | None = None
        self._events: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def wait_frame(self, timeout: float = 5.0) -> tuple[bytes, float] | None:
        """Block the calling viewer's thread until the camera has a new frame."""
        ident = threading.get_ident()
        with self._lock:
            event = self._events.get(ident)
            if event is None:
                event = self._events[ident] = threading.Event()
        if not event.wait(timeout):
            return None
        event.clear()
        return self.frame

    def forget(self) -> None:
        with self._lock:
            self._events.pop(threading.get_ident(), None)

    def _publish(self, pixels: np.ndarray, timestamp: float) -> None:
        ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            return
        self.frame = (jpeg.tobytes(), timestamp)
        with self._lock:
            events = list(self._events.values())
        for event in events:
            event.set()

    def _run(self) -> None:
        if self.source == "test":
            pattern = TestPatternSource(self.width, self.height, self.fps)
            pattern.open()
            while True:
                frame = pattern.read()
                assert frame.pixels is not None
                self._publish(frame.pixels, frame.timestamp)
        path = self.source.removeprefix("file:")
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        pacer = Pacer(cap.get(cv2.CAP_PROP_FPS) or self.fps)
        while True:
            pacer.wait()
            ok, pixels = cap.read()  # decodes the recording's JPEG
            if not ok:
                cap.release()
                cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
                continue
            self._publish(pixels, time.time())


def create_app() -> Flask:
    env = os.environ
    camera = Camera(
        env.get("BENCH_SOURCE", "test"),
        int(env.get("BENCH_WIDTH", "640")),
        int(env.get("BENCH_HEIGHT", "480")),
        float(env.get("BENCH_FPS", "30")),
        int(env.get("BENCH_QUALITY", "80")),
    )
    credentials = f"{env.get('BENCH_USER', 'admin')}:{env.get('BENCH_PASSWORD', '')}"
    expected = "Basic " + base64.b64encode(credentials.encode()).decode()
    app = Flask(__name__)

    @app.before_request
    def require_login() -> Response | None:
        if hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return None
        return Response(status=401, headers={"WWW-Authenticate": 'Basic realm="camd"'})

    def frames() -> Iterator[bytes]:
        try:
            while True:
                frame = camera.wait_frame()
                if frame is None:
                    continue
                jpeg, timestamp = frame
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                    f"X-Timestamp: {timestamp:.6f}\r\n\r\n"
                )
                yield head.encode() + jpeg + b"\r\n"
        finally:
            camera.forget()

    @app.route("/stream.mjpg")
    def video_feed() -> Response:
        response = Response(frames(), mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


app = create_app()
