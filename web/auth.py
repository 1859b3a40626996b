"""Basic auth on every route except the public ones, checked in one place."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from flask_httpauth import HTTPBasicAuth

from web import throttle
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
    # An address that failed too often is refused before its credentials cost a hash.
    guard = throttle.current()
    if wait := guard.retry_after(request.remote_addr):
        return throttle.too_many(wait)
    denied = basic.login_required(lambda: None)()
    if "Authorization" in request.headers:  # a browser's first, credential-less request is no failure
        if denied is None:
            guard.succeeded(request.remote_addr)
        elif wait := guard.failed(request.remote_addr):
            return throttle.too_many(wait)
    return denied


def init_app(app: Flask) -> None:
    throttle.init_app(app)
    app.before_request(_require_login)
