"""TLS for the front: the server context, and the answer to plain HTTP sent to the TLS port."""

from __future__ import annotations

import ssl
from pathlib import Path

import h11

from camd.http.wsgi import plain_response

TLS_HANDSHAKE = 0x16  # the first byte of every TLS record that opens a connection


class TlsError(Exception):
    """The certificate or key cannot be used; the message names the file and why."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 at least, no client-initiated renegotiation."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise TlsError(f"{exc.filename or cert} does not exist") from None
    except ssl.SSLError as exc:
        raise TlsError(f"{cert} and {key} are not a usable certificate and key ({exc.reason or exc})") from None
    except OSError as exc:
        raise TlsError(f"cannot read {exc.filename or cert}: {exc.strerror or exc}") from None
    return context


def looks_like_tls(first: bytes) -> bool:
    """Whether a connection's first byte opens a TLS handshake (anything else is not TLS)."""
    return bool(first) and first[0] == TLS_HANDSHAKE


def plain_http_answer() -> bytes:
    """A short, readable 400 for a client that spoke plain HTTP to the TLS port."""
    text = "This port speaks https: use an https:// URL.\n"
    return plain_response(h11.Connection(h11.SERVER), 400, "Bad Request", text)
