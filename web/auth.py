"""Basic auth on every route except the public ones, checked in one place."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Flask, Response, request

from camd.logsafe import clean, quoted
from camd.users import Busy
from camd.web import throttle
from camd.web.context import current_parts
from camd.web.errors import error_response

log = logging.getLogger(__name__)

REALM = "camd"
# Everything else needs a login, including routes added later and unknown URLs.
PUBLIC_ENDPOINTS = frozenset({"pages.index", "api.healthz", "static"})
BUSY_RETRY = 2


def _challenge() -> Response:
    response = error_response(401)
    response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return response


def _busy() -> Response:
    return error_response(503, "too many logins are being checked; try again in a moment", retry_after=BUSY_RETRY)


def _credentials() -> tuple[str, str]:
    """The basic-auth user and password (werkzeug parses the header); empty strings for anything else."""
    try:
        given = request.authorization
    except ValueError:  # werkzeug's base64 decoding refuses non-ASCII bytes: a malformed header is no login
        return "", ""
    if given is None or given.type != "basic":
        return "", ""
    return given.username or "", given.password or ""


def _record_failure(name: str, address: str | None, failure: throttle.Failure | None) -> int:
    """Log and count a failed login (never the password); returns the block it started, in seconds."""
    counters = current_parts().hub.counters
    counters.incr("login_failures")
    shown = clean(address)
    log.warning("login failed for user %s from %s", quoted(name), shown)
    if failure is None or not failure.blocked_for:
        return 0
    counters.incr("login_lockouts")
    if failure.key == throttle.OVERFLOW:
        log.warning(
            "login lockout for every address without a place in the full throttle table for %d s after %d failures",
            failure.blocked_for, failure.failures,
        )  # fmt: skip
    else:
        log.warning("login lockout for %s for %d s after %d failures", shown, failure.blocked_for, failure.failures)
    return failure.blocked_for


def _require_login() -> Response | None:
    """Every method to every private route (OPTIONS too) needs a valid login; failures are throttled."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    guard = throttle.current()
    address = request.remote_addr
    # An address that failed too often is refused before its credentials cost anything.
    if wait := guard.retry_after(address):
        return throttle.too_many(wait)
    if "Authorization" not in request.headers:
        return _challenge()  # a browser's first, credential-less request is no failure
    name, password = _credentials()
    users = current_parts().users
    if name and password and users.remembered(name, password):
        guard.succeeded(address)
        return None
    # Counted before the slow hash: a burst of guesses from one address meets 429 at once.
    if wait := guard.begin(address):
        return throttle.too_many(wait)
    ok: bool | None = None
    try:
        ok = bool(name and password) and users.verify(name, password)
    except Busy:
        return _busy()
    finally:
        failure = guard.finish(address, ok)
    if ok:
        return None
    # Without a password, what came as the user name may be a password sent on its own: not logged.
    if blocked_for := _record_failure(name if password else "", address, failure):
        return throttle.too_many(blocked_for)
    return _challenge()


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
