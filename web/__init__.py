"""camd's web app: pages, the stream, the API, behind basic auth."""

from __future__ import annotations

from typing import Any

from flask import Flask

from camd.http import Fanout
from camd.hub import Hub
from camd.settings import Settings
from camd.users import Users


def create_app(settings: Settings, hub: Hub, fanout: Fanout, users: Users, **extra: Any) -> Flask:
    """The Flask app for one daemon; collaborators live in ``app.extensions['camd']``.

    ``extra`` carries optional collaborators (``stills``, ...) that blueprints look up by name.
    """
    from web import api, auth, errors, headers, metrics, pages, stream
    from web.context import Camd

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, JSON_SORT_KEYS=False)
    app.extensions["camd"] = Camd(settings=settings, hub=hub, fanout=fanout, users=users, extra=extra)
    errors.init_app(app)
    auth.init_app(app)
    headers.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(stream.bp)
    app.register_blueprint(api.bp)
    metrics.init_app(app)
    if extra.get("stills") is not None:
        from web import stills

        stills.init_app(app)
    if extra.get("timelapses") is not None:
        from web import timelapse

        timelapse.init_app(app)
    if extra.get("activity") is not None:
        from web import activity

        activity.init_app(app)
    return app
