"""The daemon's parts that the web app is given, and how a view reaches them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from camd.http import Fanout
from camd.hub import Hub
from camd.settings import Settings
from camd.users import Users


@dataclass(frozen=True)
class Camd:
    settings: Settings
    hub: Hub
    fanout: Fanout
    users: Users
    extra: dict[str, Any] = field(default_factory=dict)


def camd() -> Camd:
    """The collaborators of the app handling the current request."""
    return current_app.extensions["camd"]
