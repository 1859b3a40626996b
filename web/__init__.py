"""camd's web app: pages, the stream, the API, behind basic auth."""

from __future__ import annotations

from flask import Flask

from camd.activity_monitor import ActivityMonitor
from camd.http import Fanout
from camd.hub import Hub
from camd.settings import Settings
from camd.stills import StillsWriter
from camd.timelapse import Timelapses
from camd.users import Users
from camd.variants import Variants
from camd.web import activity as activity_routes
from camd.web import api, auth, errors, headers, metrics, pages, stream, timelapse
from camd.web import stills as stills_routes
from camd.web.context import EXTENSION, Parts


def create_app(
    settings: Settings,
    hub: Hub,
    fanout: Fanout,
    users: Users,
    stills: StillsWriter | None,
    *,
    timelapses: Timelapses | None = None,
    activity: ActivityMonitor | None = None,
    variants: Variants | None = None,
) -> Flask:
    """The Flask app for one daemon; its parts live in ``app.extensions`` (``web.context.current_parts``).

    A part left out (``None``) has no routes: the stills pages, timelapses and activity exist only with theirs.
    """
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, JSON_SORT_KEYS=False)
    app.extensions[EXTENSION] = Parts(settings, hub, fanout, users, stills, timelapses, activity, variants)
    errors.init_app(app)
    auth.init_app(app)
    headers.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(stream.bp)
    app.register_blueprint(api.bp)
    metrics.init_app(app)
    if stills is not None:
        stills_routes.init_app(app)
    if timelapses is not None:
        timelapse.init_app(app)
    if activity is not None:
        activity_routes.init_app(app)
    return app
