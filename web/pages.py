"""The HTML pages: the public landing page and the live view."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from web.context import camd

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def _helpers() -> dict[str, object]:
    return {"has_endpoint": lambda name: name in current_app.view_functions}


@bp.get("/")
def index() -> str:
    settings = camd().settings
    return render_template("index.html", title=settings.title, description=settings.description)


@bp.get("/live")
def live() -> str:
    return render_template("live.html", title=camd().settings.title)
