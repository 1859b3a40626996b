"""A day's stills played back: a VP8 WebM built in the background, or at once as an MJPEG stream of the files."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from werkzeug.wsgi import wrap_file

from camd.http import Pause
from camd.http.parts import BOUNDARY, CONTENT_TYPE, part
from camd.stills_index import DAY_RE, Still
from camd.timelapse import TimelapseError, Timelapses
from camd.web.context import current_parts
from camd.web.errors import error_response
from camd.web.stream import requested_fps

bp = Blueprint("timelapse", __name__)

MIN_FPS = 0.2
MAX_FPS = 60.0
BUILD_RETRY_AFTER = 3  # seconds a browser waits before asking for a timelapse being built again
# A playback holds no worker between stills (its pauses are the front's), but each still is read from disk
# and sent: what all playbacks together cost is bounded, in stills a second, and so is their number.
MAX_PLAYBACKS = 16
MAX_TOTAL_FPS = MAX_FPS
PLAYBACKS = "camd.timelapse_playbacks"


class Playbacks:
    """The timelapse streams playing now, and their stills a second; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.fps = 0.0

    def start(self, fps: float) -> bool:
        """Count a new playback in, unless it would take the total past either bound."""
        with self._lock:
            if self.count >= MAX_PLAYBACKS or self.fps + fps > MAX_TOTAL_FPS + 1e-9:
                return False
            self.count += 1
            self.fps += fps
            return True

    def end(self, fps: float) -> None:
        with self._lock:
            self.count -= 1
            self.fps = max(0.0, self.fps - fps)


def timelapses() -> Timelapses:
    made = current_parts().timelapses
    assert made is not None  # the blueprint is registered only with them
    return made


def init_app(app: Flask) -> None:
    app.extensions[PLAYBACKS] = Playbacks()
    app.register_blueprint(bp)


def _checked_day(day: str) -> str:
    if not DAY_RE.fullmatch(day):
        abort(404)
    return day


@bp.route("/stills/<day>.webm", methods=["GET", "HEAD"])
def webm(day: str) -> Response:
    """The day's timelapse: 200 (ranged) once built and current, 202 with Retry-After while it is built."""
    try:
        path = timelapses().get(_checked_day(day))
    except LookupError:
        abort(404)
    except TimelapseError as exc:
        return error_response(500, f"no timelapse of {day}: {exc}")
    if path is None:
        return _building(day, BUILD_RETRY_AFTER)
    try:
        handle = path.open("rb")
    except FileNotFoundError:  # replaced by a newer build just now
        return _building(day, 1)
    info = os.fstat(handle.fileno())
    response = Response(wrap_file(request.environ, handle), mimetype="video/webm", direct_passthrough=True)
    response.content_length = info.st_size
    response.last_modified = info.st_mtime  # type: ignore[assignment]
    response.set_etag(path.stem.rsplit(".", 1)[-1])
    # The URL stays while the day's stills change: the browser must ask again, an ETag makes that cheap.
    response.headers["Cache-Control"] = "private, no-cache"
    response.make_conditional(request.environ, accept_ranges=True, complete_length=info.st_size)
    return response


def _fps() -> float:
    fps = requested_fps(MIN_FPS, MAX_FPS)
    return timelapses().fps if fps is None else fps


def play(root: Path, stills: list[Still], fps: float) -> Iterator[bytes | Pause]:
    """The stills' own bytes as multipart parts, one every 1/fps seconds; ends after the last one.

    Runs outside the request context, so it gets what it needs. Between stills it
    yields a Pause: the front waits, not a worker, and a shutdown simply closes it.
    """
    interval = 1.0 / fps
    due = time.monotonic()
    for still in stills:
        try:
            data = (root / still.day / still.name).read_bytes()
        except OSError:
            continue  # deleted since the list was made
        wait = due - time.monotonic()
        if wait > 0:
            yield Pause(wait)
        due = max(due + interval, time.monotonic())
        yield part(data, still.time)
    yield f"--{BOUNDARY}--\r\n".encode()


@bp.get("/stills/<day>/timelapse.mjpg")
def mjpeg(day: str) -> Response:
    fps = _fps()
    made = timelapses()
    stills = made.index.of_day(_checked_day(day))
    if not stills:
        abort(404)
    playbacks: Playbacks = current_app.extensions[PLAYBACKS]
    if not playbacks.start(fps):
        return error_response(503, "too many timelapses are playing already; try again later", retry_after=10)
    # Werkzeug passes the Pause items through untouched; camd's front (camd.http.wsgi) acts on them.
    response = Response(play(made.stills_root, stills, fps), mimetype=CONTENT_TYPE)  # type: ignore[arg-type]
    response.call_on_close(lambda: playbacks.end(fps))  # the front closes every response body, finished or not
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _building(day: str, retry_after: int) -> Response:
    """202: the timelapse is being built; ask again after ``retry_after`` seconds."""
    response = jsonify(status="building", day=day)
    response.status_code = 202
    response.headers["Retry-After"] = str(retry_after)
    return response
