"""Basic auth on every route except the public ones, checked in one place."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from flask_httpauth import HTTPBasicAuth

from web.context import camd

REALM = "camd"
# Everything else needs a login, including routes added later and unknown URLs.
PUBLIC_ENDPOINTS = frozenset({"pages.index", "api.healthz", "static"})

basic = HTTPBasicAuth(realm=REALM)


@basic.verify_password
def _verify(username: str, password: str) -> str | None:
    if not username or not password:
        return None
    return username if camd().users.verify(username, password) else None


@basic.error_handler
def _denied(status: int) -> Response:
    response = jsonify(error="authentication required" if status == 401 else "forbidden")
    response.status_code = status
    return response


def _require_login() -> Response | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    return basic.login_required(lambda: None)()


def init_app(app: Flask) -> None:
    app.before_request(_require_login)
