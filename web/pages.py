"""The HTML pages: the public landing page and the live view."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from camd.settings import format_duration
from camd.web.context import current_parts

bp = Blueprint("pages", __name__)

# What the landing page may say about the camera: only what /healthz already tells anyone.
HEALTH_WORDS = {
    "ok": "The camera is live.",
    "warming_up": "The camera is starting.",
    "offline": "The camera is offline.",
}


@bp.app_context_processor
def _helpers() -> dict[str, object]:
    return {"has_endpoint": lambda name: name in current_app.view_functions, "duration": format_duration}


@bp.get("/")
def index() -> str:
    parts = current_parts()
    settings = parts.settings
    state = parts.hub.health(settings.stall_timeout)
    return render_template(
        "index.html", title=settings.title, description=settings.description, health=state,
        health_text=HEALTH_WORDS[state],
    )  # fmt: skip


@bp.get("/live")
def live() -> str:
    return render_template("live.html", title=current_parts().settings.title)
