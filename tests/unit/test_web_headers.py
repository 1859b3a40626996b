"""camd.web.headers: every response, whatever its route or status, has the security headers and no-store by default."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from camd.frames import Frame
from camd.stills import StillsWriter

# (method, path, needs credentials, expected status)
DYNAMIC = [
    ("GET", "/", False, 200),
    ("GET", "/healthz", False, 200),
    ("GET", "/live", True, 200),
    ("GET", "/api/status", True, 200),
    ("GET", "/snapshot.jpg", True, 200),
    ("GET", "/metrics", True, 200),
    ("GET", "/stills/", True, 200),
    ("GET", "/api/stills", True, 200),
    ("GET", "/live", False, 401),
    ("GET", "/snapshot.jpg", False, 401),
    ("GET", "/nope", True, 404),
    ("GET", "/nope", False, 401),
    ("POST", "/healthz", True, 405),
    ("POST", "/healthz", False, 401),  # a method the route lacks is an unknown URL: private
    ("GET", "/stream.mjpg?fps=fast", True, 400),
]


def security_headers(response: TestResponse) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    policy = dict(item.strip().partition(" ")[::2] for item in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    for sources in policy.values():
        assert sources in ("'self'", "'none'"), policy  # no inline code, no eval, no other site


@pytest.fixture
def request_as(client: FlaskClient, auth: dict[str, str], live: Callable[..., Frame]) -> Callable[..., TestResponse]:
    live()  # a live camera, so that every route has something to answer with

    def send(method: str, path: str, credentials: bool) -> TestResponse:
        return client.open(path, method=method, headers=auth if credentials else {})

    return send


@pytest.mark.parametrize(("method", "path", "credentials", "status"), DYNAMIC)
def test_dynamic_responses_are_never_stored_and_carry_the_security_headers(
    request_as: Callable[..., TestResponse], method: str, path: str, credentials: bool, status: int
) -> None:
    response = request_as(method, path, credentials)
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    security_headers(response)


def test_a_route_that_sets_its_own_caching_keeps_it(
    request_as: Callable[..., TestResponse], stills: StillsWriter
) -> None:
    taken = stills.take()
    response = request_as("GET", f"/stills/{taken.day}/{taken.name}", True)
    assert response.status_code == 200
    assert "immutable" in response.headers["Cache-Control"]
    assert "no-store" not in response.headers["Cache-Control"]
    assert response.headers["ETag"]
    security_headers(response)


def test_static_files_carry_the_security_headers(request_as: Callable[..., TestResponse]) -> None:
    response = request_as("GET", "/static/style.css", False)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] != "no-store" or response.headers.get("ETag")
    security_headers(response)


def test_a_throttled_address_is_answered_with_the_headers_too(
    request_as: Callable[..., TestResponse], client: FlaskClient
) -> None:
    wrong = {"Authorization": "Basic " + "YWRtaW46d3Jvbmc="}  # admin:wrong
    statuses = [client.get("/live", headers=wrong).status_code for _ in range(8)]
    assert statuses[-1] == 429, statuses
    response = client.get("/live", headers=wrong)
    assert response.status_code == 429
    assert response.headers["Cache-Control"] == "no-store"
    security_headers(response)
