"""camd.web.api: /healthz in each camera state, and the fields of /api/status."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

import camd
from camd.frames import Frame
from camd.http import Fanout
from camd.hub import LIVE, OFFLINE, STARTING, WARMING_UP, Hub
from camd.settings import Settings
from camd.stills import StillsWriter
from camd.users import Users


@pytest.mark.parametrize(
    ("state", "frame", "code", "status"),
    [
        (STARTING, False, 503, "warming_up"),
        (WARMING_UP, False, 503, "warming_up"),
        (WARMING_UP, True, 503, "warming_up"),  # a live frame from before the reopen does not count
        (LIVE, True, 200, "ok"),
        (LIVE, False, 503, "offline"),  # live, but not one frame yet
        (OFFLINE, True, 503, "offline"),
        (OFFLINE, False, 503, "offline"),
    ],
)
def test_healthz(
    client: FlaskClient, hub: Hub, live: Callable[..., Frame], state: str, frame: bool, code: int, status: str
) -> None:
    if frame:
        live()
    hub.set_camera(state=state)
    response = client.get("/healthz")  # public: no credentials
    assert response.status_code == code
    assert response.get_json() == {"status": status}  # and nothing else


def test_healthz_turns_offline_when_the_newest_live_frame_is_stale(
    settings: Settings, hub: Hub, fanout: Fanout, users: Users, live: Callable[..., Frame]
) -> None:
    from camd.web import create_app

    # Below stall_timeout's own floor (0.5 s) so that the test waits for it in a fraction of a second.
    client = create_app(dataclasses.replace(settings, stall_timeout=0.3), hub, fanout, users, None).test_client()
    assert client.get("/healthz").status_code == 503  # the app's first request pays its set-up here
    live()
    assert client.get("/healthz").status_code == 200
    time.sleep(0.35)
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (503, {"status": "offline"})
    live()
    assert client.get("/healthz").status_code == 200


def test_status_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/api/status")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="camd"'
    assert "camera" not in (response.get_json() or {})


def test_status_before_the_camera_opens(client: FlaskClient, auth: dict[str, str]) -> None:
    body = client.get("/api/status", headers=auth).get_json()
    assert body["health"] == "warming_up"
    assert body["camera"]["state"] == STARTING
    assert body["resolution"] == "0x0"
    assert body["capture_fps"] == 0
    assert body["dropped"] == {}
    assert body["stills"]["count"] == 0 and body["stills"]["last"] is None


def test_status_tells_the_camera_counters_viewers_and_version(
    client: FlaskClient, auth: dict[str, str], hub: Hub, fanout: Fanout, live: Callable[..., Frame]
) -> None:
    hub.set_camera(source="/dev/video0", backend="V4L2", warmup_frames=17, warmup_seconds=2.5, warmup_settled=True)
    live(width=64, height=48)
    live(width=64, height=48).jpeg()
    hub.counters.incr("dropped_flat", 3)
    hub.counters.incr("dropped_bad_jpeg")
    hub.counters.incr("reconnects", 2)
    assert fanout.reserve()
    body = client.get("/api/status", headers=auth).get_json()
    assert body["health"] == "ok"
    assert body["camera"]["state"] == LIVE
    assert body["source"] == "test"  # live() reports the test source
    assert body["resolution"] == "64x48"
    assert body["capture_fps"] > 0
    assert body["viewers"] == 1 and body["max_clients"] == 64
    assert body["warmup"] == {"frames": 17, "seconds": 2.5, "settled": True}
    assert body["dropped"] == {"bad_jpeg": 1, "flat": 3}
    assert body["reconnects"] == 2
    assert body["jpeg_encodes"] == 1
    assert 0 <= body["uptime"] < 60
    assert body["version"] == camd.__version__


def test_status_counts_the_stills_and_their_disk_use(
    client: FlaskClient, auth: dict[str, str], stills: StillsWriter, live: Callable[..., Frame]
) -> None:
    live(width=320, height=240)
    taken = stills.take()
    body = client.get("/api/status", headers=auth).get_json()
    assert body["stills"]["count"] == 1
    assert body["stills"]["disk_bytes"] == taken.size > 0
    assert body["stills"]["last"]["url"] == f"/stills/{taken.day}/{taken.name}"


def test_status_says_nothing_of_stills_without_a_writer(
    settings: Settings, hub: Hub, fanout: Fanout, users: Users, auth: dict[str, str]
) -> None:
    from camd.web import create_app

    app: Flask = create_app(settings, hub, fanout, users, None)
    body = app.test_client().get("/api/status", headers=auth).get_json()
    assert "stills" not in body
    assert body["camera"]["state"] == STARTING
