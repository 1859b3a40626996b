"""GET /api/activity: a day's activity events and its level minute by minute."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request, url_for

from camd.activity_monitor import ActivityMonitor
from camd.stills_index import DAY_RE, day_of
from camd.web.context import current_parts

bp = Blueprint("activity", __name__)


def monitor() -> ActivityMonitor:
    monitor = current_parts().activity
    assert monitor is not None  # the blueprint is registered only with one
    return monitor


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _day() -> str:
    day = request.args.get("day") or day_of(time.time())
    if not DAY_RE.fullmatch(day):
        abort(400, description="day must look like YYYY-MM-DD")
    try:
        time.strptime(day, "%Y-%m-%d")
    except ValueError:
        abort(400, description="day must be a real date (YYYY-MM-DD)")
    return day


@bp.get("/api/activity")
def api() -> Response:
    """``{"day", "events", "levels"}`` (SPEC), plus the level now and when there last was activity."""
    parts = monitor()
    body = parts.day(_day())
    for event in body["events"]:
        still = event.get("still")  # "day/name", or None
        if still and "stills.still" in current_app.view_functions:
            day, name = still.split("/", 1)
            event["still"] = url_for("stills.still", day=day, name=name)  # under any URL prefix, as the gallery's
        else:
            event["still"] = None
    body["level"] = round(parts.level, 4)
    body["last_activity"] = parts.last_active
    body["now"] = time.time()
    return jsonify(body)
