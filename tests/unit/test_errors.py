"""Errors for people and for scripts: HTML pages in the site's style when a browser asks, JSON otherwise."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from camd.http import Fanout
from camd.hub import Hub
from camd.settings import Settings
from camd.stills import StillsWriter
from camd.users import Users
from camd.web import create_app, throttle
from tests.unit.conftest import PASSWORD, USER

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"}
CURL = {"Accept": "*/*"}
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@pytest.fixture
def app(make_settings: Callable[..., Settings], hub: Hub, users: Users) -> Iterator[Flask]:
    settings = make_settings(title="Puppy cam")
    application = create_app(settings, hub, Fanout(hub, 4), users, StillsWriter(settings, hub))

    @application.get("/boom")
    def boom() -> str:
        raise RuntimeError("a bug")

    yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _is_page(response: object, status: int) -> str:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.mimetype == "text/html"  # type: ignore[attr-defined]
    html = response.get_data(as_text=True)  # type: ignore[attr-defined]
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "style.css" in html and "Puppy cam" in html  # the site's own look and title
    return html


def test_401_page_says_log_in_and_still_asks_for_credentials(client: FlaskClient) -> None:
    response = client.get("/live", headers=BROWSER)
    html = _is_page(response, 401)
    assert response.headers["WWW-Authenticate"] == 'Basic realm="camd"'
    assert ">Log in</a>" in html and 'href="/live"' in html


def test_401_for_scripts_is_json(client: FlaskClient) -> None:
    for path, headers in (("/live", CURL), ("/api/status", BROWSER), ("/metrics", BROWSER)):
        response = client.get(path, headers=headers)
        assert response.status_code == 401 and response.is_json, path
        assert response.headers["WWW-Authenticate"] == 'Basic realm="camd"'
        assert "log in" in response.json["error"].lower()


def test_404_page_and_json(client: FlaskClient) -> None:
    html = _is_page(client.get("/no/such/page", headers={**BROWSER, "Authorization": AUTH["Authorization"]}), 404)
    assert "Not found" in html and "Start page" in html
    missing = client.get("/stills/2026-05-01.zip", headers={**CURL, "Authorization": AUTH["Authorization"]})
    assert missing.status_code == 404 and missing.is_json  # curl -f fails; -OJ saves no HTML as a zip
    assert "Content-Disposition" not in missing.headers
    # Even a browser that asks for HTML gets no page where a file was expected.
    zip_from_browser = client.get("/stills/2026-05-01.zip", headers={**BROWSER, "Authorization": AUTH["Authorization"]})
    assert zip_from_browser.status_code == 404 and zip_from_browser.is_json


def test_405_keeps_allow(client: FlaskClient) -> None:
    response = client.delete("/live", headers={**BROWSER, "Authorization": AUTH["Authorization"]})
    _is_page(response, 405)
    assert "GET" in response.headers["Allow"]
    api = client.delete("/api/status", headers={"Authorization": AUTH["Authorization"]})
    assert api.status_code == 405 and api.is_json


def test_400_keeps_the_route_s_words(client: FlaskClient) -> None:
    response = client.get("/api/stills?page=x", headers={"Authorization": AUTH["Authorization"]})
    assert response.status_code == 400 and response.json == {"error": "page and per_page must be whole numbers"}


def test_403_cross_site_post(client: FlaskClient) -> None:
    headers = {**BROWSER, "Authorization": AUTH["Authorization"], "Sec-Fetch-Site": "cross-site"}
    response = client.post("/api/stills", headers=headers)
    assert response.status_code == 403 and response.is_json and "another web site" in response.json["error"]


def test_429_page_says_when_to_try_again(app: Flask, client: FlaskClient) -> None:
    guard = app.extensions[throttle.EXTENSION]
    for _ in range(throttle.ALLOWED_FAILURES + 1):
        guard.failed("127.0.0.1")
    response = client.get("/live", headers=BROWSER)
    html = _is_page(response, 429)
    assert response.headers["Retry-After"] == "60"
    assert "Try again in 60 s" in html and ">Try again</a>" in html
    scripted = client.get("/api/status", headers=CURL)
    assert scripted.status_code == 429 and scripted.is_json and scripted.headers["Retry-After"] == "60"


def test_500_page_and_json(app: Flask, client: FlaskClient) -> None:
    app.testing = False  # let the handler answer instead of raising into the test
    html = _is_page(client.get("/boom", headers={**BROWSER, "Authorization": AUTH["Authorization"]}), 500)
    assert "a bug" not in html and "Traceback" not in html
    scripted = client.get("/boom", headers={**CURL, "Authorization": AUTH["Authorization"]})
    assert scripted.status_code == 500 and scripted.json == {
        "error": "camd hit an error answering this. The log says more."
    }


def test_no_still_wording(client: FlaskClient) -> None:
    response = client.post("/api/stills", headers={"Authorization": AUTH["Authorization"]})
    assert response.status_code == 503 and response.headers["Retry-After"] == "2"
    assert response.json == {"error": "the camera is starting"}  # the page prefixes "Could not take a still: "


def test_landing_page_says_what_healthz_says_and_offers_a_login(client: FlaskClient) -> None:
    html = _is_page_ok(client.get("/", headers=BROWSER))
    assert "The camera is starting." in html and "Log in and watch live" in html and 'href="/live"' in html


def _is_page_ok(response: object) -> str:
    assert response.status_code == 200  # type: ignore[attr-defined]
    return response.get_data(as_text=True)  # type: ignore[attr-defined]
