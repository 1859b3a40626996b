"""Health and status as JSON."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

import camd as camd_package
from camd.hub import LIVE, OFFLINE
from web.context import camd

bp = Blueprint("api", __name__)


def health() -> str:
    """``ok`` while a valid frame is fresher than ``stall_timeout``; else why not."""
    parts = camd()
    state = parts.hub.camera.state
    if state == LIVE and parts.hub.live_age() < parts.settings.stall_timeout:
        return "ok"
    return "offline" if state in (OFFLINE, LIVE) else "warming_up"


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    status = health()
    return jsonify(status=status), 200 if status == "ok" else 503


@bp.get("/api/status")
def status() -> Response:
    parts = camd()
    hub, counters = parts.hub, parts.hub.counters
    camera = dataclasses.asdict(hub.camera)
    body: dict[str, Any] = {
        "health": health(),
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
        "version": camd_package.__version__,
    }
    # A part's status is plain values; the web side may add to it (a blueprint's URLs, say).
    views: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = current_app.extensions.get("camd.status_views", {})
    for name, part in parts.extra.items():
        describe = getattr(part, "status", None)
        if callable(describe):
            view = views.get(name)
            body[name] = view(describe()) if view is not None else describe()
    return jsonify(body)
