"""The live stream and the snapshot."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from camd.fanout import Fanout
from camd.frames import BOUNDARY, Frame
from camd.hub import Hub
from web.context import camd

bp = Blueprint("stream", __name__)

MIN_FPS = 0.01  # one frame every 100 s: slower than that is not a stream
MAX_FPS = 240.0


def requested_fps() -> float | None:
    """The viewer's ``?fps=N``, or None for every frame; 400 for a value that is not a rate."""
    raw = request.args.get("fps")
    if raw is None or raw == "":
        return None
    try:
        fps = float(raw)
    except ValueError:
        abort(400, description="fps must be a number")
    if not math.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
        abort(400, description=f"fps must be from {MIN_FPS:g} to {MAX_FPS:g}")
    return fps


class StreamBody:
    """The body of one viewer's multipart response.

    The first part goes out through the WSGI server, which sends the headers with
    it. Under camd's server the socket is then lent to the fan-out thread until
    the viewer leaves; under any other WSGI server this thread sends the frames.
    """

    def __init__(self, environ: dict[str, Any], hub: Hub, fanout: Fanout, first: Frame, fps: float | None):
        self.environ, self.hub, self.fanout, self.first, self.fps = environ, hub, fanout, first, fps

    def __iter__(self) -> Iterator[bytes]:
        yield self.first.part()
        handoff = self.environ.get("camd.handoff")
        if handoff is not None:
            sock, chunked = handoff()
            self.fanout.attach(sock, chunked=chunked, fps=self.fps, last_seq=self.first.seq).wait()
            return
        yield from self._paced()

    def _paced(self) -> Iterator[bytes]:
        interval = 1.0 / self.fps if self.fps else 0.0
        last, due = self.first.seq, time.monotonic() + interval
        while not self.fanout.stopping:
            frame = self.hub.wait_newer(last, 1.0)
            if frame is None or time.monotonic() < due - 0.005:
                continue
            due = max(due + interval, time.monotonic())
            last = frame.seq
            yield frame.part()


@bp.get("/stream.mjpg")
def mjpeg() -> Response:
    parts = camd()
    fps = requested_fps()
    first = parts.hub.latest
    if first is None:
        return _busy("the camera is starting", 2)
    if not parts.fanout.reserve():
        return _busy(f"too many viewers (at most {parts.settings.max_clients})", 10)
    body = StreamBody(request.environ, parts.hub, parts.fanout, first, fps)
    response = Response(body, mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    response.call_on_close(parts.fanout.release)
    response.headers["X-Accel-Buffering"] = "no"  # tell nginx not to buffer the stream
    return response


@bp.get("/snapshot.jpg")
def snapshot() -> Response:
    frame = camd().hub.latest_live
    if frame is None:
        return _busy("no picture yet: the camera is warming up", 2)
    response = Response(frame.jpeg(), mimetype="image/jpeg")
    response.headers["X-Timestamp"] = f"{frame.timestamp:.6f}"
    if request.args.get("download"):
        name = time.strftime("snapshot-%Y%m%d-%H%M%S.jpg", time.localtime(frame.timestamp))
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _busy(message: str, retry_after: int) -> Response:
    response = jsonify(error=message)
    response.status_code = 503
    response.headers["Retry-After"] = str(retry_after)
    return response
