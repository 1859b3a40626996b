"""Response headers the whole app shares: no caching by default, and the security headers."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, request

from camd.logsafe import clean

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _apply(response: Response) -> Response:
    # A route that knows its response can be cached says so; nothing else may be.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if response.location:
        response.location = relative(response.location)
    log.debug("%s %s -> %s", clean(request.method, 20), clean(request.path), response.status_code)
    return response


def relative(location: str) -> str:
    """``location`` without its scheme and host: camd never redirects elsewhere, and the Host header is the client's."""
    parts = urlsplit(location)
    if not parts.scheme and not parts.netloc and not location.startswith(("//", "/\\")):
        return location
    # One leading slash only: "//host/..." or "/\\host" would send a browser to another site.
    path = "/" + parts.path.lstrip("/\\")
    return urlunsplit(("", "", path, parts.query, parts.fragment))


def init_app(app: Flask) -> None:
    # Locations stay as the app wrote them (relative), never completed from the request's Host: Werkzeug's
    # Response no longer completes them (autocorrect_location_header is False since 2.1), and _apply makes
    # the redirects Werkzeug builds itself relative.
    app.after_request(_apply)
