"""Secrets taken out of source URLs before they are shown anywhere (log, status, metrics, probe).

A network camera's URL often carries its password, in the userinfo
(``rtsp://admin:secret@cam/``) or in the query (``?password=secret``). People
type passwords with ``@`` and ``/`` in them unencoded, so the userinfo is taken
to end at the last ``@`` that is followed by a host name: a URL with a stray
``@`` later on loses more than its password from view, never less.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
SECRET_PARAMETERS = frozenset(
    {"password", "pass", "pwd", "passwd", "token", "key", "auth", "secret", "api_key", "access_token"}
)
# What may follow the userinfo's "@": a host name or address literal, an optional port, then the path.
_HOST = re.compile(r"(?:\[[0-9A-Za-z:.%]+\]|[0-9A-Za-z._~%-]+)(?::\d*)?(?=[/?#]|$)")


def _without_userinfo(rest: str) -> str:
    """``rest`` (what follows ``scheme://``) with any userinfo replaced by ``***`` (all of it, if unsure)."""
    at = rest.rfind("@")
    if at == -1:
        return rest
    while at != -1:
        if _HOST.match(rest, at + 1):
            return f"{HIDDEN}@{rest[at + 1 :]}"
        at = rest.rfind("@", 0, at)
    return HIDDEN  # an "@" but no host after any: nothing can be shown safely


def _without_secret_parameters(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SECRET_PARAMETERS for name, _ in pairs):
        return query
    hidden = [(name, HIDDEN if name.lower() in SECRET_PARAMETERS else value) for name, value in pairs]
    return urlencode(hidden, safe="*/:,@")


def redact_url(url: str) -> str:
    """``url`` with its userinfo and the values of password-like query parameters replaced by ``***``.

    Anything that is not ``scheme://...`` (a device, a file path, ``auto``) comes back as it is.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return url
    rest = _without_userinfo(rest)
    try:
        parts = urlsplit(f"{scheme}://{rest}")
    except ValueError:  # e.g. an unbalanced "[" in the host: show nothing that could be a secret
        return f"{scheme}://{HIDDEN}"
    if not parts.query:
        return f"{scheme}://{rest}"
    return urlunsplit(parts._replace(query=_without_secret_parameters(parts.query)))
