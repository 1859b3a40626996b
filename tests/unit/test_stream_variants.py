"""The routes' ``?width=`` and ``?quality=``: 400 for bad values, widths snapped to the ladder, smaller snapshots."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest
from flask.testing import FlaskClient

from camd.http import Fanout
from camd.hub import Hub
from camd.settings import Settings
from camd.users import Users
from camd.variants import Variants
from camd.web import create_app
from tests.unit.conftest import PASSWORD, USER

AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def picture(width: int, height: int) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    image = np.repeat(np.repeat(x[None, :, None], height, axis=0), 3, axis=2)
    cv2.circle(image, (width // 2, height // 2), height // 4, (255, 255, 255), -1)
    return image


@pytest.fixture
def app_parts(settings: Settings, hub: Hub, users: Users) -> tuple[FlaskClient, Hub, Variants]:
    variants = Variants(hub.counters)
    app = create_app(settings, hub, Fanout(hub, 4, variants=variants), users, None, variants=variants)
    return app.test_client(), hub, variants


def shape(data: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return int(image.shape[1]), int(image.shape[0])


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("width=abc", "width must be a number"),
        ("width=0", "width must be from 1"),
        ("width=-5", "width must be"),
        ("width=99999", "width must be from 1"),
        ("quality=0", "quality must be from 1 to 95"),
        ("quality=96", "quality must be from 1 to 95"),
        ("quality=best", "quality must be from 1 to 95"),
        ("width=320&quality=1.5", "quality must be"),
    ],
)
@pytest.mark.parametrize("path", ["/stream.mjpg", "/snapshot.jpg"])
def test_bad_values_get_a_400_that_says_what_is_allowed(
    app_parts: tuple[FlaskClient, Hub, Variants], path: str, query: str, words: str
) -> None:
    client, hub, _ = app_parts
    hub.publish(pixels=picture(1280, 720))
    response = client.get(f"{path}?{query}", headers=AUTH)
    assert response.status_code == 400
    assert words in response.get_json()["error"]


@pytest.mark.parametrize(
    ("query", "size"),
    [
        ("width=320", (320, 180)),
        ("width=500", (480, 270)),  # snapped down to the ladder
        ("width=100", (320, 180)),  # never below the smallest step
        ("width=960&quality=low", (960, 540)),
        ("width=1280", (1280, 720)),
        ("width=5000", (1280, 720)),  # never larger than the source
        ("width=full", (1280, 720)),
        ("", (1280, 720)),
    ],
)
def test_snapshot_width_snaps_to_the_ladder(
    app_parts: tuple[FlaskClient, Hub, Variants], query: str, size: tuple[int, int]
) -> None:
    client, hub, _ = app_parts
    hub.publish(pixels=picture(1280, 720))
    response = client.get(f"/snapshot.jpg?{query}", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert shape(response.data) == size
    assert response.headers["X-Timestamp"]


def test_snapshot_quality_lowers_the_size_and_the_full_default_is_the_frames_own_jpeg(
    app_parts: tuple[FlaskClient, Hub, Variants],
) -> None:
    client, hub, variants = app_parts
    frame = hub.publish(pixels=picture(1280, 720))
    full = client.get("/snapshot.jpg", headers=AUTH).data
    assert full == frame.jpeg()
    low = client.get("/snapshot.jpg?quality=low", headers=AUTH).data
    assert shape(low) == (1280, 720) and len(low) < len(full)
    assert client.get("/snapshot.jpg?quality=95", headers=AUTH).data == full  # quality only ever lowers
    made = {key.label: count for key, (count, _) in variants.counts().items()}
    assert made == {"full": 1}


def test_stream_refuses_a_bad_width_before_taking_a_viewer_slot(app_parts: tuple[FlaskClient, Hub, Variants]) -> None:
    client, hub, _ = app_parts
    hub.publish(pixels=picture(640, 360))
    for _ in range(6):  # more than max_clients: a refused request holds no slot
        assert client.get("/stream.mjpg?width=x", headers=AUTH).status_code == 400
    response = client.get("/stream.mjpg?width=320", headers=AUTH)
    assert response.status_code == 200
    response.close()
