"""Response headers the whole app shares: no caching by default, and the security headers."""

from __future__ import annotations

import logging

from flask import Flask, Response, request

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
    log.debug("%s %s -> %s", request.method, request.path, response.status_code)
    return response


def init_app(app: Flask) -> None:
    app.after_request(_apply)
