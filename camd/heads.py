"""Hold each new connection until its request head has arrived, then give it to a worker thread.

cheroot hands a connection to a worker thread as soon as it is accepted (or, when
kept alive, as soon as it is readable). A client that sends half a request and
stalls then holds that thread until the socket times out, and a few hundred of
them starve every real viewer. Here one epoll thread watches such connections
instead: it peeks (``MSG_PEEK``, nothing is consumed) until the blank line that
ends the head is in the socket's buffer, and only then dispatches the
connection, so a worker never waits for a head. A connection whose head is not
complete within ``timeout`` seconds gets ``408`` and is closed; at most
``max_waiting`` wait at once (the oldest is closed to make room).

Under TLS (with :class:`DeferredHandshake` as cheroot's adapter) this thread
also does the handshake, without blocking, instead of cheroot's accept loop
(where one client that never finishes it stalls every new connection); the
decrypted bytes cannot be peeked, so the connection then waits only for its first
bytes, not its whole head.
"""

from __future__ import annotations

import collections
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger(__name__)

TIMEOUT = 10.0
MAX_WAITING = 1024
_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
_TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class DeferredHandshake(BuiltinSSLAdapter):
    """cheroot's TLS adapter, but the handshake is left to the head gate."""

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, Any]]:
        wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        # Filled in once the handshake is done; cheroot copies it into each request's environ.
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on", _PENDING: self}


_PENDING = "camd.tls_pending"


@dataclass(eq=False)
class _Waiting:
    conn: Any  # cheroot.server.HTTPConnection
    fd: int
    deadline: float


class HeadGate:
    """Dispatches connections whose request head is complete; times out the rest."""

    def __init__(
        self,
        dispatch: Callable[[Any], None],
        *,
        max_head_bytes: int,
        timeout: float = TIMEOUT,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.dispatch = dispatch
        self.max_head_bytes = max_head_bytes
        self.timeout = timeout
        self.max_waiting = max_waiting
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        self._waiting: collections.OrderedDict[int, _Waiting] = collections.OrderedDict()  # oldest first
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="http-heads", daemon=True)
        self.counts = collections.Counter[str]()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._thread.join(2)
        with self._lock:
            for waiting in list(self._waiting.values()):
                self._drop(waiting, "stopping")

    def add(self, conn: Any) -> None:
        """Watch ``conn`` (called from cheroot's accept thread) until its head is in."""
        sock = conn.socket
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            self.dispatch(conn)
            return
        try:
            fd = sock.fileno()
            with self._lock:
                while len(self._waiting) >= self.max_waiting:
                    self._drop(next(iter(self._waiting.values())), "too many waiting")
                self._waiting[fd] = _Waiting(conn, fd, time.monotonic() + self.timeout)
                # Registering a socket that is readable already reports it at once.
                self._epoll.register(fd, _EVENTS)
        except (OSError, ValueError):
            with self._lock:
                self._waiting.pop(fd, None)
            conn.close()

    def _run(self) -> None:
        try:
            while not self._stopping:
                for fd, _ in self._epoll.poll(0.25):
                    with self._lock:
                        waiting = self._waiting.get(fd)
                    if waiting is not None:
                        try:
                            self._check(waiting)
                        except Exception as exc:  # one odd connection must not stop the gate for all
                            log.debug("dropping a connection: %r", exc)
                            with self._lock:
                                self._drop(waiting, "error")
                self._expire(time.monotonic())
        except Exception:
            log.exception("the request head reader failed")
        finally:
            self._epoll.close()

    def _check(self, waiting: _Waiting) -> None:
        sock = waiting.conn.socket
        if isinstance(sock, ssl.SSLSocket):
            self._check_tls(waiting, sock)
            return
        try:
            data = sock.recv(self.max_head_bytes + 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            with self._lock:
                self._drop(waiting, "reset")
            return
        if not data:
            with self._lock:
                self._drop(waiting, "closed")
            return
        # A complete head (cheroot rejects bare-LF heads with 400 itself), or too much to be one (431).
        if b"\r\n\r\n" in data or b"\n\n" in data or len(data) > self.max_head_bytes:
            self._release(waiting, "dispatched")

    def _check_tls(self, waiting: _Waiting, sock: ssl.SSLSocket) -> None:
        timeout = sock.gettimeout()
        sock.settimeout(0.0)  # nothing here may block the gate
        outcome = "closed"
        try:
            outcome = self._tls_step(waiting, sock)
        finally:
            if outcome != "closed":
                sock.settimeout(timeout)
        if outcome == "closed":
            with self._lock:
                self._drop(waiting, "closed")
        elif outcome == "ready":
            self._release(waiting, "dispatched")

    def _tls_step(self, waiting: _Waiting, sock: ssl.SSLSocket) -> str:
        """Handshake, then the first bytes: 'ready' to dispatch, 'wait' for the next event, or 'closed'."""
        env = waiting.conn.ssl_env
        adapter = env.get(_PENDING) if isinstance(env, dict) else None
        if adapter is not None:
            try:
                sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return "wait"
            except (OSError, ValueError):
                return "closed"
            env.pop(_PENDING)
            env.update(adapter.get_environ(sock))
        if sock.pending():  # OpenSSL holds decrypted bytes of the request already
            return "ready"
        try:
            raw = socket.socket.recv(sock, 1, socket.MSG_PEEK)  # encrypted bytes, not consumed
        except (BlockingIOError, InterruptedError):
            return "wait"
        except OSError:
            return "closed"
        return "ready" if raw else "closed"

    def _release(self, waiting: _Waiting, outcome: str) -> None:
        with self._lock:
            if self._waiting.pop(waiting.fd, None) is None:
                return
            try:
                self._epoll.unregister(waiting.fd)
            except OSError:
                pass
        self.counts[outcome] += 1
        self.dispatch(waiting.conn)

    def _expire(self, now: float) -> None:
        with self._lock:
            while self._waiting:
                oldest = next(iter(self._waiting.values()))
                if oldest.deadline > now:
                    break
                self._drop(oldest, "timed out", answer=_TIMED_OUT)

    def _drop(self, waiting: _Waiting, outcome: str, answer: bytes = b"") -> None:
        """Close a waiting connection (the lock is held)."""
        self._waiting.pop(waiting.fd, None)
        try:
            self._epoll.unregister(waiting.fd)
        except (OSError, ValueError):
            pass
        sock = waiting.conn.socket
        if answer and not isinstance(sock, ssl.SSLSocket):
            try:
                sock.send(answer, socket.MSG_DONTWAIT)
            except OSError:
                pass
        try:
            waiting.conn.close()
        except OSError:
            pass
        self.counts[outcome] += 1
        log.debug("closed a connection before its request: %s", outcome)
