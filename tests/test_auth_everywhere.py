"""Every route of the app, enumerated from its URL map, is private unless it is on the public list.

The app is built in-process only to read its routes; every request goes to a real daemon.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.exceptions import HTTPException

from camd import settings as settings_module
from camd.activity_log import ActivityLog
from camd.activity_monitor import ActivityMonitor
from camd.http import Fanout
from camd.hub import Hub
from camd.stills import StillsWriter
from camd.timelapse import Timelapses
from camd.users import Users, set_password
from camd.variants import Variants
from tests.support.daemon import Daemon

PUBLIC = {"pages.index", "api.healthz", "static"}
WRONG = [("admin", "wrong password"), ("nobody", "correct horse battery"), ("admin", "")]
# Candidate values for a URL variable, tried until the rule matches (custom converters included).
SAMPLES = ["2024-01-02", "20240102-030405", "1", "sample", "a/b"]
VARIABLE = re.compile(r"<(?:[a-zA-Z_]\w*(?:\(.*?\))?:)?([a-zA-Z_]\w*)>")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def build_app(tmp_path: Path) -> Flask:
    """The web app wired the way the daemon wires it (with every optional part the product ships)."""
    from camd.web import create_app

    tmp_path.mkdir(exist_ok=True)
    empty = tmp_path / "camd.toml"  # so that a machine's /etc/camd/camd.toml plays no part
    empty.write_text("")
    settings = settings_module.load({"state_dir": str(tmp_path), "source": "test"}, environ={}, config=empty)
    users_file = tmp_path / "users"
    set_password(users_file, "admin", "irrelevant password")
    hub = Hub(settings.jpeg_quality)
    # As camd/__main__.py passes them; a collaborator left out here would hide its routes.
    stills = StillsWriter(settings, hub)
    timelapses = Timelapses(tmp_path / "timelapse", stills.root, stills.index, settings.timelapse_fps)
    activity = ActivityMonitor(settings, hub, ActivityLog(tmp_path / "activity"), stills)
    return create_app(
        settings, hub, Fanout(hub, 4), Users(users_file), stills,
        timelapses=timelapses, activity=activity, variants=Variants(hub.counters),
    )  # fmt: skip


def concrete_paths(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) for every rule, variables filled in with values the rule accepts."""
    adapter = app.url_map.bind("127.0.0.1")
    found = []
    for rule in app.url_map.iter_rules():
        names = VARIABLE.findall(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for values in itertools.product(SAMPLES, repeat=len(names)):
                path = rule.rule
                for value in values:
                    path = VARIABLE.sub(value, path, count=1)
                try:
                    endpoint, _ = adapter.match(path, method)
                except HTTPException:
                    continue
                if endpoint == rule.endpoint:
                    found.append((rule.endpoint, method, path))
                    break
            else:
                raise AssertionError(f"no sample value fits {rule.rule} ({rule.endpoint}); add one to SAMPLES")
    return found


def assert_security_headers(response: requests.Response, dynamic: bool = True) -> None:
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (response.url, name, headers.get(name))
    policy = headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in policy, policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "*" not in policy, policy
    assert "frame-ancestors 'none'" in policy or headers.get("X-Frame-Options") == "DENY", headers
    if dynamic:
        assert headers.get("Cache-Control") == "no-store", (response.url, headers.get("Cache-Control"))


@pytest.fixture
def routes(tmp_path: Path) -> list[tuple[str, str, str]]:
    app = build_app(tmp_path / "app")
    paths = concrete_paths(app)
    endpoints = {endpoint for endpoint, _, _ in paths}
    # The routes the contract names must be among those enumerated, or the enumeration is broken.
    named = {"pages.live", "stream.mjpeg", "stream.snapshot", "api.status", "metrics.metrics", "stills.gallery"}
    assert named <= endpoints, endpoints
    assert endpoints >= PUBLIC
    return paths


def _request(daemon: Daemon, method: str, path: str, auth: tuple[str, str] | None) -> requests.Response:
    response = requests.request(method, daemon.url(path), auth=auth, timeout=10, stream=True)
    response.close()  # the stream's body never ends; the status and headers are all we need
    return response


def test_every_private_route_needs_credentials(daemon: Daemon, routes: list[tuple[str, str, str]]) -> None:
    private = [(endpoint, method, path) for endpoint, method, path in routes if endpoint not in PUBLIC]
    assert private
    for endpoint, method, path in private:
        response = _request(daemon, method, path, None)
        assert response.status_code == 401, (endpoint, method, path, response.status_code)
        assert response.headers.get("WWW-Authenticate") == 'Basic realm="camd"', (endpoint, path)
        assert_security_headers(response)
        for wrong in WRONG:
            response = _request(daemon, method, path, wrong)
            assert response.status_code == 401, (endpoint, method, path, wrong, response.status_code)
            assert response.headers.get("WWW-Authenticate") == 'Basic realm="camd"', (endpoint, path)
            # A good login clears the address's failures, so the throttle never answers 429 here.
            assert daemon.get("/api/status").status_code == 200


def test_unknown_urls_need_credentials_too(daemon: Daemon) -> None:
    for path in ("/nope", "/static/../stream.mjpg", "/api/", "/stills/../users"):
        response = requests.get(daemon.url(path), timeout=10)
        assert response.status_code == 401, (path, response.status_code)
        assert_security_headers(response)
    response = daemon.get("/nope")
    assert response.status_code == 404
    assert_security_headers(response)


def test_public_routes_answer_without_credentials(daemon: Daemon, routes: list[tuple[str, str, str]]) -> None:
    public = [(endpoint, path) for endpoint, method, path in routes if endpoint in PUBLIC and method == "GET"]
    for endpoint, path in public:
        if endpoint == "static":
            continue
        response = requests.get(daemon.url(path), timeout=10)
        assert response.status_code == 200, (path, response.status_code)
        assert "WWW-Authenticate" not in response.headers
        assert_security_headers(response)
    assert requests.get(daemon.url("/healthz"), timeout=10).json() == {"status": "ok"}
    static = sorted(p.name for p in (Path(__file__).parent.parent / "web" / "static").iterdir())
    assert "live.js" in static
    for name in static:
        response = requests.get(daemon.url(f"/static/{name}"), timeout=10)
        assert response.status_code == 200, (name, response.status_code)
        assert_security_headers(response, dynamic=False)
        assert "no-store" in response.headers.get("Cache-Control", "") or response.headers.get("ETag")


def test_private_routes_with_credentials_carry_the_headers(daemon: Daemon) -> None:
    for path in ("/live", "/api/status", "/snapshot.jpg", "/stream.mjpg"):
        response = _request(daemon, "GET", path, daemon.auth)
        assert response.status_code == 200, (path, response.status_code)
        assert_security_headers(response)
    snapshot = daemon.get("/snapshot.jpg")
    assert snapshot.headers["Content-Type"] == "image/jpeg"
