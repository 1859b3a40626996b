"""The fast layer's fixtures, chained as the app is wired: ``settings(tmp_path) -> hub -> app -> client``.

Everything here is a real component built in-process on a temp dir: no daemon,
no sockets but the ones a test makes itself.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from camd import settings as settings_module
from camd.frames import Frame
from camd.http import Fanout
from camd.hub import LIVE, Hub
from camd.settings import Settings
from camd.stills import StillsWriter
from camd.users import Users, write_users

USER = "admin"
PASSWORD = "correct horse battery"
# A real scrypt hash at a low cost: the default cost (~0.2 s a check) would dominate a layer meant to be quick.
CHEAP_HASH = "scrypt:1024:8:1"


def _textured(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """A BGR picture with detail everywhere, so no gate mistakes it for a flat frame."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings loaded the way the daemon loads them, from flags on top of an empty config in ``tmp_path``."""

    def make(**flags: Any) -> Settings:
        config = tmp_path / "camd.toml"
        if not config.exists():
            config.write_text("")  # so that a machine's /etc/camd/camd.toml plays no part
        base = {"state_dir": str(tmp_path), "source": "test"}
        return settings_module.load({**base, **flags}, environ={}, config=config)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def hub(settings: Settings) -> Hub:
    return Hub(settings.jpeg_quality)


@pytest.fixture
def live(hub: Hub) -> Callable[..., Frame]:
    """Publish a live frame into the hub as capture would, once the camera is live."""

    def publish(width: int = 64, height: int = 48, seed: int = 0) -> Frame:
        hub.set_camera(state=LIVE, source="test", backend="test", width=width, height=height, fps=30.0)
        return hub.publish(pixels=_textured(width, height, seed))

    return publish


@pytest.fixture
def users(settings: Settings) -> Users:
    write_users(settings.users_path, {USER: generate_password_hash(PASSWORD, method=CHEAP_HASH)})
    return Users(settings.users_path)


@pytest.fixture
def fanout(hub: Hub, settings: Settings) -> Iterator[Fanout]:
    fanout = Fanout(hub, settings.max_clients)
    fanout.start()
    yield fanout
    fanout.stop()


@pytest.fixture
def stills(settings: Settings, hub: Hub) -> StillsWriter:
    """The stills writer with its schedule not started: a test takes the stills it needs with ``take()``."""
    return StillsWriter(settings, hub)


@pytest.fixture
def app(settings: Settings, hub: Hub, fanout: Fanout, users: Users, stills: StillsWriter) -> Flask:
    """The web app wired as camd/__main__.py wires it."""
    from camd.web import create_app

    app = create_app(settings, hub, fanout, users, stills)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth() -> dict[str, str]:
    """The Authorization header of the fixture's user."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
