"""The daemon's parts that the web app is given, and how a view reaches them."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from camd.activity_monitor import ActivityMonitor
from camd.http import Fanout
from camd.hub import Hub
from camd.settings import Settings
from camd.stills import StillsWriter
from camd.timelapse import Timelapses
from camd.users import Users
from camd.variants import Variants

EXTENSION = "camd"


@dataclass(frozen=True)
class Parts:
    """What ``create_app`` was given; ``None`` for a part this daemon runs without (its routes are not registered)."""

    settings: Settings
    hub: Hub
    fanout: Fanout
    users: Users
    stills: StillsWriter | None = None
    timelapses: Timelapses | None = None
    activity: ActivityMonitor | None = None
    variants: Variants | None = None


def current_parts() -> Parts:
    """The parts of the app handling the current request."""
    parts: Parts = current_app.extensions[EXTENSION]
    return parts
