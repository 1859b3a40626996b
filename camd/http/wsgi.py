"""Runs the WSGI app for one complete request and turns its answer into bytes, with h11.

An :class:`Exchange` lives on a worker thread only while it produces bytes: the
app is called, and its body iterated until ``room`` bytes are ready; the front
writes them and asks for more (``pull``) when the connection has drained. The
h11 connection is the worker's to use while a job of this exchange runs, and the
front's otherwise, so the two never touch it at once.
"""

from __future__ import annotations

import email.utils
import io
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import h11

from camd import logsafe
from camd.http.fanout import StreamBody

log = logging.getLogger(__name__)

SERVER = "camd"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# What the front does with a connection once the bytes of an outcome are written.
MORE = "more"  # the body goes on: pull again when the connection has drained
DONE = "done"  # the response is complete; h11 says whether the connection is kept
STREAM = "stream"  # hand the socket to the fan-out
ABORT = "abort"  # the response cannot be completed: close the connection


@dataclass(frozen=True)
class Pause:
    """Yielded by a response body instead of bytes: go on after ``seconds``.

    A paced body (stills played at a few a second, say) holds no worker while it
    waits: the front writes what came before, and asks for more once the time is up.
    """

    seconds: float


def plain_response(
    conn: h11.Connection, code: int, reason: str, text: str, *, head_only: bool = False, retry_after: int = 0
) -> bytes:
    """A short plain-text response that closes the connection, whole; h11 raises LocalProtocolError if it cannot."""
    body = text.encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Server", SERVER),
    ]
    if retry_after:
        headers.append(("Retry-After", str(retry_after)))
    return b"".join(
        (
            conn.send(h11.Response(status_code=code, headers=headers, reason=reason.encode())) or b"",
            b"" if head_only else conn.send(h11.Data(data=body)) or b"",
            conn.send(h11.EndOfMessage()) or b"",
        )
    )


@dataclass(frozen=True)
class Peer:
    """Both ends of a connection, as the environ tells them to the app."""

    remote_addr: str
    remote_port: int
    server_name: str
    server_port: int
    scheme: str


@dataclass
class Outcome:
    """Bytes for the front to write, and what to do after them."""

    data: bytes
    then: str
    stream: StreamBody | None = None
    resume_at: float = 0.0  # MORE: not before this time (time.monotonic()), the body asked for a pause


def environ_for(request: h11.Request, body: bytes, peer: Peer) -> dict[str, Any]:
    """The PEP 3333 environ of a complete request."""
    target = request.target
    if target.startswith(b"/") or target == b"*":
        path, _, query = target.partition(b"?")
    else:  # absolute-form: the app sees only its path and query
        split = urlsplit(target)
        path, query = split.path or b"/", split.query
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method.decode("ascii"),
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": target.decode("latin-1"),
        "REQUEST_URI": target.decode("latin-1"),
        "SERVER_NAME": peer.server_name,
        "SERVER_PORT": str(peer.server_port),
        "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
        "SERVER_SOFTWARE": SERVER,
        "REMOTE_ADDR": peer.remote_addr,
        "REMOTE_PORT": str(peer.remote_port),
        "CONTENT_LENGTH": str(len(body)) if body or request.method in (b"POST", b"PUT", b"PATCH") else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": peer.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if peer.scheme == "https":
        environ["HTTPS"] = "on"
    for raw_name, raw_value in request.headers:
        if b"_" in raw_name:
            continue  # X_Forwarded_For would pass for X-Forwarded-For in the environ: drop it, as nginx does
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            continue  # the body is complete and its length is above
        key = name if name == "CONTENT_TYPE" else "HTTP_" + name
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    return environ


class Exchange:
    """One request's trip through the app, produced in pieces of bounded size."""

    def __init__(self, app: WsgiApp, conn: h11.Connection, request: h11.Request, body: bytes, peer: Peer) -> None:
        self.app = app
        self.conn = conn
        self.request = request
        self.body = body
        self.peer = peer
        self.status = 0
        self._reason = b""
        self._headers: list[tuple[str, str]] | None = None
        self._head_sent = False
        self._iterable: Iterable[bytes | Pause] | None = None
        self._iterator: Iterator[bytes | Pause] | None = None
        self._written: list[bytes] = []  # from the legacy write() callable
        self._bodyless = request.method == b"HEAD"

    # --- jobs (each runs on a worker) ------------------------------------------------

    def start(self, room: int) -> Outcome:
        """Call the app and produce up to about ``room`` bytes of its response."""
        environ = environ_for(self.request, self.body, self.peer)
        self.body = b""
        try:
            iterable = self.app(environ, self._start_response)
        except Exception:
            log.exception("the app failed on %s %s", self.request.method.decode("ascii"), self._path)
            return self._failed()
        self._iterable = iterable
        if isinstance(iterable, StreamBody):
            return self._hand_over(iterable)
        try:
            self._iterator = iter(iterable)
        except Exception:
            log.exception("the app's body failed on %s", self._path)
            return self._failed()
        return self.pull(room)

    def pull(self, room: int) -> Outcome:
        """Produce up to about ``room`` more bytes of the body (at least one piece of it)."""
        out: list[bytes] = []
        size = 0
        try:
            if self._written:
                pieces, self._written = self._written, []
                for written in pieces:
                    size += self._emit(written, out)
            assert self._iterator is not None
            if self._bodyless or self.status in (204, 304):
                self._iterator = iter(())
            while size < room:
                try:
                    piece = next(self._iterator)
                except StopIteration:
                    break
                if isinstance(piece, Pause):
                    if self._headers is not None:
                        self._send_head(out)  # the client knows its answer has begun
                    return Outcome(b"".join(out), MORE, resume_at=time.monotonic() + max(0.0, piece.seconds))
                size += self._emit(piece, out)
            else:
                return Outcome(b"".join(out), MORE)
            if self._headers is None:
                raise RuntimeError("the app returned without calling start_response")
            self._send_head(out)
            out.append(self.conn.send(h11.EndOfMessage()) or b"")
        except Exception:
            log.exception("the app's response failed on %s", self._path)
            if self._head_sent:
                self.close()
                return Outcome(b"".join(out), ABORT)
            return self._failed()
        self.close()
        return Outcome(b"".join(out), DONE)

    def close(self) -> None:
        """The WSGI close() of the app's body: always called, once."""
        iterable, self._iterable, self._iterator = self._iterable, None, None
        closer = getattr(iterable, "close", None)
        if callable(closer):
            try:
                closer()
            except Exception:
                log.exception("closing the app's body failed on %s", self._path)

    # --- helpers ----------------------------------------------------------------------

    @property
    def _path(self) -> str:
        """The request's path for the log, quoted, escaped and bounded (logsafe); no query: it may carry a secret."""
        return logsafe.quoted(self.request.target.partition(b"?")[0].decode("latin-1"))

    def _start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        if exc_info is not None:
            try:
                if self._head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._headers is not None:
            raise RuntimeError("start_response called twice without exc_info")
        code, _, reason = status.partition(" ")
        self.status = int(code)
        self._reason = reason.encode("latin-1")
        self._headers = list(headers)
        return self._written.append

    def _send_head(self, out: list[bytes]) -> None:
        if self._head_sent:
            return
        assert self._headers is not None
        headers = self._headers
        names = {name.lower() for name, _ in headers}
        if "date" not in names:
            headers.append(("Date", email.utils.formatdate(usegmt=True)))
        if "server" not in names:
            headers.append(("Server", SERVER))
        response = h11.Response(status_code=self.status, headers=headers, reason=self._reason)
        out.append(self.conn.send(response) or b"")
        self._head_sent = True
        log.debug("%s %s %d", self.request.method.decode("ascii"), self._path, self.status)

    def _emit(self, piece: bytes, out: list[bytes]) -> int:
        if not piece:
            return 0
        self._send_head(out)
        if self._bodyless:
            return 0
        out.append(self.conn.send(h11.Data(data=piece)) or b"")
        return len(piece)

    def _hand_over(self, body: StreamBody) -> Outcome:
        """A stream: its head, for the front to give to the fan-out with the socket."""
        try:
            if self._headers is None:
                raise RuntimeError("the app returned without calling start_response")
            if self.request.http_version == b"1.1":
                # Said outright so the fan-out's chunk framing and h11's agree.
                self._headers.append(("Transfer-Encoding", "chunked"))
            out: list[bytes] = []
            self._send_head(out)
        except Exception:
            log.exception("the stream's head failed on %s", self._path)
            return self._failed()
        if self._bodyless or self.status != 200:
            self.close()
            return Outcome(b"".join(out) + (self.conn.send(h11.EndOfMessage()) or b""), DONE)
        self._iterable = None  # the body is the fan-out's now; the front closes it if the hand-over fails
        return Outcome(b"".join(out), STREAM, stream=body)

    def _failed(self) -> Outcome:
        """A 500 in place of a response that had not begun; the connection is closed after it."""
        self.close()
        self.status = 500
        try:
            data = plain_response(
                self.conn, 500, "Internal Server Error", "internal server error\n", head_only=self._bodyless
            )
        except h11.LocalProtocolError:
            return Outcome(b"", ABORT)
        return Outcome(data, DONE)
