"""Basic auth on every route except the public ones, checked in one place."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask_httpauth import HTTPBasicAuth

from web import throttle
from web.context import camd
from web.errors import error_response

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
    return error_response(status)


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


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _same_site(url: str) -> bool:
    """True when ``url``'s host and port are the ones this request was sent to."""
    try:
        return urlsplit(url).netloc.lower() == request.host.lower()
    except ValueError:
        return False


def _refuse_cross_site() -> Response | None:
    """403 for a state-changing request a browser sends from another site (CSRF).

    Sec-Fetch-Site decides when present; else Origin, else Referer must name this host.
    A client that sends none of them (curl) needs only its credentials.
    """
    if request.method in SAFE_METHODS:
        return None
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        allowed = fetch_site in ("same-origin", "none")
    elif (origin := request.headers.get("Origin")) is not None:
        allowed = _same_site(origin)
    elif (referer := request.headers.get("Referer")) is not None:
        allowed = _same_site(referer)
    else:
        allowed = True
    if allowed:
        return None
    return error_response(403, "This request came from another web site, so camd refused it.")


def init_app(app: Flask) -> None:
    throttle.init_app(app)
    app.before_request(_require_login)
    app.before_request(_refuse_cross_site)
