"""Health and status as JSON."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from flask import Blueprint, Response, jsonify

from camd import __version__
from camd.web.context import current_parts
from camd.web.stills import status_view as stills_status

bp = Blueprint("api", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    parts = current_parts()
    status = parts.hub.health(parts.settings.stall_timeout)
    return jsonify(status=status), 200 if status == "ok" else 503


@bp.get("/api/status")
def status() -> Response:
    parts = current_parts()
    hub, counters = parts.hub, parts.hub.counters
    camera = dataclasses.asdict(hub.camera)
    body: dict[str, Any] = {
        "health": hub.health(parts.settings.stall_timeout),
        "camera": camera,
        "source": camera["source"],
        "resolution": f"{camera['width']}x{camera['height']}",
        "capture_fps": round(hub.fps(), 2),
        "viewers": parts.fanout.viewers,
        "max_clients": parts.settings.max_clients,
        "warmup": {
            "frames": camera["warmup_frames"],
            "seconds": camera["warmup_seconds"],
            "settled": camera["warmup_settled"],
        },
        "dropped": counters.snapshot("dropped_"),
        "reconnects": counters.get("reconnects"),
        "frames_captured": counters.get("frames_captured"),
        "jpeg_encodes": counters.get("jpeg_encodes"),
        "stream_frames_sent": counters.get("stream_frames_sent"),
        "stream_bytes_sent": counters.get("stream_bytes_sent"),
        "uptime": round(time.time() - hub.started, 1),
        "version": __version__,
    }
    if parts.stills is not None:
        body["stills"] = stills_status(parts.stills.status())  # with the URLs of the last still
    if parts.timelapses is not None:
        body["timelapses"] = parts.timelapses.status()
    if parts.activity is not None:
        body["activity"] = parts.activity.status()
    if parts.variants is not None:
        body["variants"] = parts.variants.status()
    return jsonify(body)
