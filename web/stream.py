"""The live stream and the snapshot, full size or as a smaller variant (``?width=``, ``?quality=``)."""

from __future__ import annotations

import math
import time

from flask import Blueprint, Response, abort, request

from camd.http import CONTENT_TYPE, StreamBody
from camd.variants import VariantError, VariantKey, Variants, parse_variant
from camd.web.context import current_parts
from camd.web.errors import error_response

bp = Blueprint("stream", __name__)

MIN_FPS = 0.01  # one frame every 100 s: slower than that is not a stream
MAX_FPS = 240.0


def requested_fps(low: float = MIN_FPS, high: float = MAX_FPS) -> float | None:
    """The viewer's ``?fps=N``, or None for every frame; 400 for a value that is not a rate from low to high."""
    raw = request.args.get("fps")
    if raw is None or raw == "":
        return None
    try:
        fps = float(raw)
    except ValueError:
        abort(400, description="fps must be a number")
    if not math.isfinite(fps) or not low <= fps <= high:
        abort(400, description=f"fps must be from {low:g} to {high:g}")
    return fps


def requested_variant(source_width: int) -> VariantKey:
    """The viewer's ``?width=`` and ``?quality=``, snapped to the ladder; 400 for values that are not allowed."""
    try:
        return parse_variant(
            request.args.get("width"), request.args.get("quality"),
            source_width=source_width, default_quality=current_parts().settings.jpeg_quality,
        )  # fmt: skip
    except VariantError as exc:
        abort(400, description=str(exc))  # answered by web.errors' error_response, like every 400


def variants() -> Variants | None:
    """The daemon's variant maker, when the app was given one."""
    return current_parts().variants


@bp.get("/stream.mjpg")
def mjpeg() -> Response:
    parts = current_parts()
    fps = requested_fps()
    latest = parts.hub.latest
    key = requested_variant(latest.width if latest is not None else parts.hub.camera.width)
    if latest is None:
        return error_response(503, "the camera is starting", retry_after=2)
    if not parts.fanout.reserve():
        return error_response(503, f"too many viewers (at most {parts.settings.max_clients})", retry_after=10)
    # The front hands this body, with the socket, to the fan-out; passed through as it is.
    body = StreamBody(parts.fanout, fps, key)
    response = Response(body, content_type=CONTENT_TYPE, direct_passthrough=True)
    response.headers["X-Accel-Buffering"] = "no"  # tell nginx not to buffer the stream
    return response


@bp.get("/snapshot.jpg")
def snapshot() -> Response:
    frame = current_parts().hub.latest_live
    key = requested_variant(frame.width if frame is not None else current_parts().hub.camera.width)
    if frame is None:
        return error_response(503, "no picture yet: the camera is warming up", retry_after=2)
    maker = variants()
    response = Response(frame.jpeg() if maker is None else maker.jpeg(frame, key), mimetype="image/jpeg")
    response.headers["X-Timestamp"] = f"{frame.timestamp:.6f}"
    if request.args.get("download"):
        name = time.strftime("snapshot-%Y%m%d-%H%M%S.jpg", time.localtime(frame.timestamp))
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
