"""Every error the app answers, in one shape: an HTML page for a person, JSON for scripts and the API.

A browser that navigates to a page asks for ``text/html`` and gets a page in the
site's style that says what to do next; ``curl``, ``fetch`` and anything under
``/api/`` get ``{"error": "..."}``. Routes, auth and the throttle all answer
through :func:`error_response`; the ``HTTPException`` handler sends Flask's own
errors (``abort(404)``, a 405, an unhandled exception's 500) the same way.
"""

from __future__ import annotations

import logging
import math

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from camd.web.context import current_parts

log = logging.getLogger(__name__)

# Routes whose callers are programs, whatever they accept.
MACHINE_PREFIXES = ("/api/", "/metrics", "/healthz", "/stream.mjpg", "/snapshot.jpg")
MACHINE_SUFFIXES = (".zip", ".webm", ".mjpg", ".jpg")

# status -> (page title, what happened, in words for a person)
WORDS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The address has a value camd cannot use."),
    401: ("Please log in", "This page is private. Log in with your camd user name and password."),
    403: ("Not allowed", "This request was refused."),
    404: ("Not found", "There is nothing at this address. It may have been deleted, or the link is wrong."),
    405: ("Not allowed here", "This address does not take that kind of request."),
    408: ("Too slow", "The request took too long to arrive."),
    413: ("Too large", "The request is larger than camd accepts."),
    414: ("Address too long", "The address is longer than camd accepts."),
    429: ("Too many failed logins", "Too many wrong passwords came from your address."),
    500: ("Something went wrong", "camd hit an error answering this. The log says more."),
    503: ("Not available right now", "camd cannot answer this right now."),
    507: ("Disk full", "camd could not save to its disk."),
}


def wait_text(seconds: int) -> str:
    """``60 s`` or ``15 min``: how long to wait, as a person reads it."""
    return f"{seconds} s" if seconds < 120 else f"{math.ceil(seconds / 60)} min"


def wants_html() -> bool:
    """True for a person's browser on a page; False for scripts, fetch() and the machine routes."""
    path = request.path
    if path.startswith(MACHINE_PREFIXES) or path.endswith(MACHINE_SUFFIXES):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def error_response(status: int, message: str | None = None, retry_after: int | None = None) -> Response:
    """The error as a page or as JSON (see :func:`wants_html`); ``retry_after`` adds the header and says when."""
    title, words = WORDS.get(status, ("Error", "camd could not answer this."))
    text = message or words
    if wants_html():
        page = render_template(
            "error.html", title=current_parts().settings.title, status=status, heading=title,
            message=text, wait=wait_text(retry_after) if retry_after else None,
            again=request.full_path.rstrip("?") if request.method == "GET" else None,
        )  # fmt: skip
        response = Response(page, status=status, mimetype="text/html")
    else:
        response = jsonify(error=text)
        response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, retry_after))
    return response


def _handle(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, InternalServerError) and error.original_exception is not None:
        log.error("%s %s failed", request.method, request.path, exc_info=error.original_exception)
    # abort(400, description="...") carries words for the user; Flask's stock descriptions do not.
    custom = error.description if error.description != type(error).description else None
    response = error_response(status, custom)
    headers = dict(error.get_headers())
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in headers:
            response.headers[name] = headers[name]
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _handle)
