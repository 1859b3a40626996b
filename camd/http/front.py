"""The front: one thread that accepts, reads, parses (h11), times out and writes every connection.

A connection belongs to this thread until a complete, bounded request exists
(head and body, within one deadline); only then is it given to the worker pool,
which runs the app and hands bytes back. The front writes them, keeps at most
``MAX_UNSENT`` bytes per connection (a worker pulls more of a large body when it
has drained, and none while a paced body pauses), and takes the connection back
for its next request. A stream viewer's socket goes from here to the fan-out. No
thread ever waits on a client, or on a body's pause.
"""

from __future__ import annotations

import collections
import errno
import heapq
import itertools
import logging
import os
import resource
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11

from camd.http import tls
from camd.http.pool import MAX_QUEUED, WORKERS, Pool
from camd.http.wsgi import ABORT, MORE, STREAM, Exchange, Outcome, Peer, WsgiApp, plain_response

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
REQUEST_TIMEOUT = 10.0  # head and body of a request, counted from when the connection became ready for it
WRITE_TIMEOUT = 20.0  # a response that makes no progress for this long is given up
MAX_WAITING = 1024  # connections waiting for a request; past this the oldest is closed
MAX_UNSENT = 256 * 1024  # bytes of a response held per connection
LOW_WATER = 64 * 1024  # pull more of a body once the unsent bytes drop below this
NOTSENT_LOWAT = 128 * 1024  # unsent bytes the kernel may hold for a connection (TCP_NOTSENT_LOWAT)
STOP_GRACE = 2.0
LINGER = 2.0  # after a refusal, how long unread bytes are drained so the client can read the answer
FD_PAUSE = 0.5
FD_QUIET = 5.0  # an out-of-descriptors episode ends after this long without one more refused accept
PRESSURE_GRACE = 1.0  # out of descriptors, connections waiting longer than this for their request are closed
OPEN_FILES = 8192
RECV_BYTES = 64 * 1024
SEND_BYTES = 64 * 1024
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_WANT = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

# Connection states.
PEEKING = "peeking"  # TLS port: waiting for the first byte, to tell TLS from plain HTTP
HANDSHAKE = "handshake"
READING = "reading"  # waiting for (the rest of) a request
WORKING = "working"  # a worker has the request or is producing more of the response
WRITING = "writing"  # bytes of a response are going out
LINGERING = "lingering"  # refused: our answer is out, the client's remaining bytes are drained
CLOSED = "closed"
_LINGER = "linger"  # after a refusal is written: close gently


@dataclass(eq=False)
class Conn:
    """One client connection, as the front sees it."""

    sock: socket.socket
    fd: int
    peer: Peer
    state: str
    deadline: float
    parser: h11.Connection = field(
        default_factory=lambda: h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    )
    raw: bytearray = field(default_factory=bytearray)  # this request's bytes as fed to h11, capped
    request: h11.Request | None = None
    body: bytearray = field(default_factory=bytearray)
    received: bool = False  # any byte of this request arrived
    out: bytearray = field(default_factory=bytearray)
    retry: int = 0  # a TLS write that must be repeated with the same length
    progress_at: float = 0.0
    exchange: Exchange | None = None
    then: str = ""  # what follows once ``out`` is written: MORE, DONE or ABORT
    busy: bool = False  # a job of this connection is queued or running
    resume_at: float = 0.0  # the body asked for a pause: pull no more before this (monotonic)
    paused: bool = False  # waiting in the front's list of paused bodies
    events: int = 0


class HttpServer:
    """Serves a WSGI app on a bound listener from one front thread and a fixed pool of workers."""

    def __init__(
        self,
        app: WsgiApp,
        listener: socket.socket,
        *,
        tls_context: ssl.SSLContext | None = None,
        workers: int = WORKERS,
        max_queued: int = MAX_QUEUED,
        request_timeout: float = REQUEST_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.app = app
        self.listener = listener
        self.listener.setblocking(False)
        self.tls_context = tls_context
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.max_waiting = max_waiting
        self.pool = Pool(workers, max_queued)
        self._selector = selectors.DefaultSelector()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._results: collections.deque[tuple[Conn, Outcome]] = collections.deque()
        self._conns: dict[int, Conn] = {}
        self._waiting: collections.OrderedDict[int, Conn] = collections.OrderedDict()  # oldest deadline first
        self._lingering: collections.OrderedDict[int, Conn] = collections.OrderedDict()
        self._pacing: list[tuple[float, int, Conn]] = []  # a heap: paced bodies by when they go on
        self._order = itertools.count()  # ties in that heap, so connections are never compared
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._paused_until = 0.0  # accepting stopped (out of file descriptors) until then
        self._fd_episode = False
        self._fd_refused_at = 0.0  # when accept() last failed for want of a descriptor
        self._accepting = False
        self._last_sweep = 0.0
        host, port = listener.getsockname()[:2]
        self._server_name = str(host)
        self._server_port = int(port)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server_port

    @property
    def tls(self) -> bool:
        return self.tls_context is not None

    def url(self, host: str) -> str:
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"{'https' if self.tls else 'http'}://{shown}:{self.port}/"

    def start(self) -> None:
        _raise_open_files_limit()
        self.pool.start()
        self._selector.register(self._wake_fd, selectors.EVENT_READ, None)
        self._watch_listener(True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, let requests under way finish (up to about 2 s), close everything, end the threads."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake()
        if self._thread.ident is not None:
            self._thread.join(STOP_GRACE + 1.0)
        else:
            self.listener.close()
        workers_ended = self.pool.stop(timeout=0.5)
        # Outcomes nobody will write: their bodies (a stream's viewer slot, say) are closed all the same.
        while self._results:
            conn, outcome = self._results.popleft()
            if outcome.stream is not None:
                outcome.stream.close()
            if conn.exchange is not None:
                conn.exchange.close()
        if workers_ended:  # a worker still in the app would wake a descriptor that may be reused by then
            os.close(self._wake_fd)

    @property
    def connections(self) -> int:
        return len(self._conns)

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("the HTTP front failed")
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._watch_listener(False)
            self.listener.close()
            self._selector.close()

    def _loop(self) -> None:
        stop_by = 0.0
        while True:
            now = time.monotonic()
            if self._stop.is_set():
                if not stop_by:
                    stop_by = now + STOP_GRACE
                    self._watch_listener(False)
                # Each pass: a connection whose last response has just gone out is idle now, and done with;
                # so is a paced body in a pause (stills played at 1 a second would hold the stop up).
                for idle in list(self._conns.values()):
                    if idle.state in (PEEKING, HANDSHAKE, READING, LINGERING) or (idle.paused and not idle.out):
                        self._close(idle)
                if not self._conns or now >= stop_by:
                    return
            for key, mask in self._selector.select(self._timeout(now)):
                if key.data is None:
                    self._drain_wake()
                elif key.data == "listener":
                    self._accept()
                else:
                    self._on_event(key.data, mask)
            self._drain_results()
            self._expire(time.monotonic())

    def _on_event(self, conn: Conn, mask: int) -> None:
        if conn.state == CLOSED:
            return
        try:
            if mask & selectors.EVENT_READ or conn.state == HANDSHAKE:
                self._on_ready(conn)
            elif mask & selectors.EVENT_WRITE and conn.state == WRITING:
                self._write(conn)
        except Exception:  # one odd connection must not stop the front for everyone
            log.exception("closing a connection after an unexpected error")
            self._close(conn)

    def _timeout(self, now: float) -> float:
        soonest = now + 0.5
        for pool in (self._waiting, self._lingering):
            if pool:
                soonest = min(soonest, next(iter(pool.values())).deadline)
        if self._paused_until:
            soonest = min(soonest, self._paused_until)
        if self._pacing:
            soonest = min(soonest, self._pacing[0][0])
        return max(0.0, soonest - now)

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._wake_fd, 1)
        except (BlockingIOError, OSError):
            pass

    def _drain_wake(self) -> None:
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass

    # --- accepting ----------------------------------------------------------------------

    def _watch_listener(self, on: bool) -> None:
        if on == self._accepting:
            return
        try:
            if on:
                self._selector.register(self.listener, selectors.EVENT_READ, "listener")
            else:
                self._selector.unregister(self.listener)
        except (KeyError, ValueError, OSError):
            return
        self._accepting = on

    def _accept(self) -> None:
        for _ in range(64):  # a burst at a time, then the other connections get their turn
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                # Every waiting client taken, and none refused for a while: the shortage is over. (Ending
                # it at the first empty backlog would log an episode per burst of a slow attacker.)
                if self._fd_episode and time.monotonic() - self._fd_refused_at > FD_QUIET:
                    self._fd_episode = False
                    log.info("file descriptors available again: accepting new connections")
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    self._out_of_fds()
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    log.warning("cannot accept a connection: %s", exc.strerror or exc)
                return
            self._add(sock, address)

    def _out_of_fds(self) -> None:
        """No descriptor for a new connection: stop accepting for a moment and make room."""
        now = time.monotonic()
        self._fd_refused_at = now
        if not self._fd_episode:
            self._fd_episode = True
            log.warning("out of file descriptors: pausing new connections")
        self._watch_listener(False)
        self._paused_until = now + FD_PAUSE
        # Make room: the oldest waiting connection, and every other one that has had PRESSURE_GRACE
        # seconds to send its request and has not (a real client sends it as soon as it connects).
        started_before = now - PRESSURE_GRACE
        if self._waiting:
            self._close(next(iter(self._waiting.values())))
        while self._waiting:
            oldest = next(iter(self._waiting.values()))
            if oldest.deadline - self.request_timeout > started_before:
                break
            self._close(oldest)

    def _add(self, sock: socket.socket, address: Any) -> None:
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Without it Linux lets a reader that stalls tie up megabytes of unsent response in the kernel.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
        except OSError:
            sock.close()
            return
        remote = (str(address[0]), int(address[1])) if isinstance(address, tuple) else ("", 0)
        peer = Peer(remote[0], remote[1], self._server_name, self._server_port, "https" if self.tls else "http")
        conn = Conn(sock, sock.fileno(), peer, PEEKING if self.tls else READING, 0.0)
        self._conns[conn.fd] = conn
        self._ready_for_request(conn, selectors.EVENT_READ)

    def _ready_for_request(self, conn: Conn, events: int) -> None:
        """The connection now waits for a request (or its TLS start): its one deadline starts here."""
        conn.deadline = time.monotonic() + self.request_timeout
        while len(self._waiting) >= self.max_waiting:
            oldest = next(iter(self._waiting.values()))
            log.debug("too many connections waiting for a request: closing the oldest")
            self._close(oldest)
        self._waiting[conn.fd] = conn
        self._watch(conn, events)

    def _watch(self, conn: Conn, events: int) -> None:
        if events == conn.events:
            return
        try:
            if not conn.events:
                self._selector.register(conn.fd, events, conn)
            elif not events:
                self._selector.unregister(conn.fd)
            else:
                self._selector.modify(conn.fd, events, conn)
            conn.events = events
        except (KeyError, ValueError, OSError):
            conn.events = 0
            if conn.state != CLOSED:
                self._close(conn)

    # --- reading ------------------------------------------------------------------------

    def _on_ready(self, conn: Conn) -> None:
        if conn.state == WRITING and conn.paused and not conn.out:
            self._check_gone(conn)
        elif conn.state == WRITING:  # a TLS write that wanted to read first
            self._write(conn)
        elif conn.state == PEEKING:
            self._peek(conn)
        elif conn.state == HANDSHAKE:
            self._handshake(conn)
        elif conn.state == READING:
            self._read(conn)
        elif conn.state == LINGERING:
            self._drain_linger(conn)

    def _check_gone(self, conn: Conn) -> None:
        """During a paced body's pause: close at once if the client has gone, so its body ends now."""
        try:
            # The raw socket under TLS too: only its end matters here, and nothing is consumed.
            data = socket.socket.recv(conn.sock, 1, socket.MSG_PEEK)
        except _WANT:
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
        else:
            self._watch(conn, 0)  # a pipelined request (or a TLS record): read after the body, as ever

    def _peek(self, conn: Conn) -> None:
        try:
            first = conn.sock.recv(1, socket.MSG_PEEK)
        except _WANT:
            return
        except OSError:
            self._close(conn)
            return
        if not first:
            self._close(conn)
            return
        if not tls.looks_like_tls(first):
            self._refuse_bytes(conn, tls.plain_http_answer())
            return
        assert self.tls_context is not None
        self._watch(conn, 0)  # the wrapped socket is a new object on the same descriptor
        try:
            conn.sock = self.tls_context.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError):
            self._close(conn)
            return
        conn.state = HANDSHAKE
        self._handshake(conn)

    def _handshake(self, conn: Conn) -> None:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE | selectors.EVENT_READ)
            return
        except (OSError, ValueError) as exc:
            log.debug("TLS handshake with %s failed: %s", conn.peer.remote_addr, exc)
            self._close(conn)
            return
        conn.state = READING
        self._watch(conn, selectors.EVENT_READ)
        self._read(conn)

    def _read(self, conn: Conn) -> None:
        while True:
            try:
                data = conn.sock.recv(RECV_BYTES)
            except _WANT:
                return
            except (OSError, ValueError):
                self._close(conn)
                return
            self._feed(conn, data)
            if conn.state != READING or not data:
                return
            if not (isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending()):
                return  # level-triggered: a plain socket with more to read is reported again

    def _feed(self, conn: Conn, data: bytes) -> None:
        if data:
            conn.received = True
            room = MAX_HEAD_BYTES + 1024 - len(conn.raw)
            if room > 0:
                conn.raw += data[:room]
        try:
            conn.parser.receive_data(data)
        except RuntimeError:  # data after the peer's EOF: nothing more to parse
            self._close(conn)
            return
        self._parse(conn)

    def _parse(self, conn: Conn) -> None:
        """Act on h11's events until it needs more bytes or a request is complete."""
        while conn.state == READING:
            try:
                event = conn.parser.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(conn, exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA:
                self._watch(conn, selectors.EVENT_READ)
                return
            if isinstance(event, h11.Request):
                if not self._on_request(conn, event):
                    return
            elif isinstance(event, h11.Data):
                conn.body += event.data
                if len(conn.body) > MAX_BODY_BYTES:
                    self._refuse(conn, 413, "request body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch(conn)
                return
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                self._close(conn)
                return

    def _on_request(self, conn: Conn, request: h11.Request) -> bool:
        """Checks h11 leaves to us, made as soon as the head is in; False when the request was refused."""
        conn.request = request
        if request.http_version not in (b"1.0", b"1.1"):
            self._refuse(conn, 505, "only HTTP/1.0 and HTTP/1.1 are spoken here")
            return False
        problem = head_problem(bytes(conn.raw), request)
        if problem is not None:
            code, reason = problem
            self._refuse(conn, code, reason)
            return False
        length = _content_length(request)
        if length is not None and length > MAX_BODY_BYTES:
            self._refuse(conn, 413, "request body too large")
            return False
        if conn.parser.they_are_waiting_for_100_continue:
            self._send_now(conn, conn.parser.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
        return True

    # --- dispatching --------------------------------------------------------------------

    def _dispatch(self, conn: Conn) -> None:
        """The request is complete: no deadline now, no reading; a worker runs the app."""
        self._waiting.pop(conn.fd, None)
        self._watch(conn, 0)
        request = conn.request
        assert request is not None
        exchange = Exchange(self.app, conn.parser, request, bytes(conn.body), conn.peer)
        conn.body = bytearray()
        conn.exchange = exchange
        conn.state = WORKING
        conn.busy = True
        if not self.pool.submit(lambda: self._job(conn, lambda: exchange.start(MAX_UNSENT))):
            conn.busy = False
            conn.exchange = None
            log.debug("every worker is busy and %d requests wait: answering 503", self.pool.max_queued)
            self._refuse(conn, 503, "too busy, try again in a moment", retry_after=1)

    def _job(self, conn: Conn, produce: Callable[[], Outcome]) -> None:
        """Runs on a worker: produce bytes, then give them to the front."""
        try:
            outcome = produce()
        except Exception:
            log.exception("producing a response failed")
            outcome = Outcome(b"", ABORT)
        self._results.append((conn, outcome))
        self._wake()

    def _drain_results(self) -> None:
        while self._results:
            conn, outcome = self._results.popleft()
            try:
                self._on_outcome(conn, outcome)
            except Exception:
                log.exception("closing a connection after an unexpected error")
                self._close(conn)

    def _on_outcome(self, conn: Conn, outcome: Outcome) -> None:
        conn.busy = False
        if conn.state == CLOSED:  # closed while the worker produced: the app's body is closed there
            self._close_exchange(conn)
            if outcome.stream is not None:
                outcome.stream.close()
            return
        if outcome.then == STREAM:
            self._hand_off(conn, outcome)
            return
        if not conn.out:
            conn.progress_at = time.monotonic()  # nothing was owed during a pause: the write clock starts now
        conn.out += outcome.data
        conn.then = outcome.then
        conn.resume_at = outcome.resume_at
        if outcome.then != MORE:
            conn.exchange = None
        if conn.state != WRITING:
            conn.state = WRITING
            conn.progress_at = time.monotonic()
        self._write(conn)

    def _hand_off(self, conn: Conn, outcome: Outcome) -> None:
        """A stream viewer: its socket and head go to the fan-out; the front forgets the connection."""
        assert outcome.stream is not None and conn.request is not None
        self._forget(conn)
        pending = bytes(conn.out) + outcome.data
        conn.out = bytearray()
        try:
            outcome.stream.hand_off(conn.sock, chunked=conn.request.http_version == b"1.1", pending=pending)
        except Exception:
            log.exception("handing a stream viewer to the fan-out failed")
            outcome.stream.close()
            try:
                conn.sock.close()
            except OSError:
                pass

    # --- writing ------------------------------------------------------------------------

    def _write(self, conn: Conn) -> None:
        while conn.out:
            size = conn.retry or min(len(conn.out), SEND_BYTES)
            try:
                with memoryview(conn.out) as view, view[:size] as piece:
                    sent = conn.sock.send(piece)
            except ssl.SSLWantReadError:
                conn.retry = size
                self._watch(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)
                return
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                conn.retry = size if isinstance(conn.sock, ssl.SSLSocket) else 0
                self._watch(conn, selectors.EVENT_WRITE)
                self._maybe_pull(conn)
                return
            except (OSError, ValueError):
                self._close(conn)
                return
            conn.retry = 0
            del conn.out[:sent]
            conn.progress_at = time.monotonic()
        self._after_written(conn)

    def _after_written(self, conn: Conn) -> None:
        if conn.then == MORE:
            self._watch(conn, 0)
            self._maybe_pull(conn)
        elif conn.then == ABORT:
            self._close(conn)
        elif conn.then == _LINGER:
            self._linger(conn)
        elif conn.parser.our_state is h11.DONE and conn.parser.their_state is h11.DONE:
            self._next_request(conn)
        else:
            self._linger(conn)

    def _maybe_pull(self, conn: Conn) -> None:
        """Below the low-water mark, a worker produces more of the body while the rest goes out."""
        exchange = conn.exchange
        if conn.then != MORE or conn.busy or exchange is None or len(conn.out) >= LOW_WATER:
            return
        if conn.resume_at > time.monotonic():  # a paced body: no worker is taken until its pause is over
            if not conn.paused:
                conn.paused = True
                heapq.heappush(self._pacing, (conn.resume_at, next(self._order), conn))
            if not conn.out:
                self._watch(conn, selectors.EVENT_READ)  # a client that leaves meanwhile is seen at once
            return
        room = MAX_UNSENT - len(conn.out)
        conn.busy = True
        self.pool.submit(lambda: self._job(conn, lambda: exchange.pull(room)), request=False)

    def _next_request(self, conn: Conn) -> None:
        """Keep-alive: the connection waits for its next request, starting with what is buffered already."""
        try:
            conn.parser.start_next_cycle()
        except h11.LocalProtocolError:
            self._close(conn)
            return
        buffered, closed = conn.parser.trailing_data
        conn.raw = bytearray(buffered[: MAX_HEAD_BYTES + 1024])
        conn.received = bool(buffered)
        conn.request = None
        conn.then = ""
        conn.state = READING
        self._ready_for_request(conn, selectors.EVENT_READ)
        if buffered or closed:
            self._parse(conn)  # a pipelined request is parsed here, never by a worker

    def _send_now(self, conn: Conn, data: bytes) -> None:
        """A small interim answer (100 Continue) written at once, best effort."""
        try:
            conn.sock.send(data)
        except _WANT:
            pass
        except (OSError, ValueError):
            self._close(conn)

    # --- refusing and closing ---------------------------------------------------------

    def _refuse(self, conn: Conn, code: int, reason: str, retry_after: int = 0) -> None:
        """Answer an error with h11 (Connection: close), then close once it is out."""
        log.debug("refusing a request from %s with %d: %s", conn.peer.remote_addr, code, reason)
        words = _REASONS.get(code, "Error")
        head_only = conn.request is not None and conn.request.method == b"HEAD" and code not in (400, 431)
        try:
            data = plain_response(
                conn.parser, code, words, f"{code} {words}: {reason}\n", head_only=head_only, retry_after=retry_after
            )
        except h11.LocalProtocolError:
            data = _fallback(code)
        self._refuse_bytes(conn, data)

    def _refuse_bytes(self, conn: Conn, data: bytes) -> None:
        self._waiting.pop(conn.fd, None)
        conn.out += data
        conn.then = _LINGER
        conn.state = WRITING
        conn.progress_at = time.monotonic()
        self._write(conn)

    def _linger(self, conn: Conn) -> None:
        """Close gently: stop sending, drain what the client still sends for a moment, then close.

        Closing a socket with unread bytes in it resets the connection, and a reset can
        destroy our answer in the client's buffers before it has read it.
        """
        if isinstance(conn.sock, ssl.SSLSocket):
            self._close(conn)
            return
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        self._waiting.pop(conn.fd, None)
        conn.state = LINGERING
        conn.deadline = time.monotonic() + LINGER
        self._lingering[conn.fd] = conn
        self._watch(conn, selectors.EVENT_READ)

    def _drain_linger(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except _WANT:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)

    def _expire(self, now: float) -> None:
        while self._waiting:
            conn = next(iter(self._waiting.values()))
            if conn.deadline > now:
                break
            self._waiting.pop(conn.fd, None)
            if conn.received and conn.state == READING:
                self._refuse(conn, 408, "the request took too long")
            else:
                self._close(conn)
        while self._lingering:
            conn = next(iter(self._lingering.values()))
            if conn.deadline > now:
                break
            self._close(conn)
        while self._pacing and self._pacing[0][0] <= now:
            conn = heapq.heappop(self._pacing)[2]
            conn.paused = False
            if conn.state != CLOSED:
                self._maybe_pull(conn)
        if self._paused_until and now >= self._paused_until and not self._stop.is_set():
            self._paused_until = 0.0
            self._watch_listener(True)
        if now - self._last_sweep >= 1.0:
            self._last_sweep = now
            for conn in list(self._conns.values()):
                if conn.state == WRITING and conn.out and now - conn.progress_at > self.write_timeout:
                    log.debug("no progress writing to %s for %gs: closing", conn.peer.remote_addr, self.write_timeout)
                    self._close(conn)

    def _forget(self, conn: Conn) -> None:
        """Stop watching a connection without closing its socket."""
        conn.state = CLOSED
        self._watch(conn, 0)
        self._waiting.pop(conn.fd, None)
        self._lingering.pop(conn.fd, None)
        self._conns.pop(conn.fd, None)

    def _close(self, conn: Conn) -> None:
        if conn.state == CLOSED:
            return
        self._forget(conn)
        try:
            conn.sock.close()
        except OSError:
            pass
        conn.out = bytearray()
        if not conn.busy:
            self._close_exchange(conn)

    def _close_exchange(self, conn: Conn) -> None:
        """An unfinished response's body iterator is closed on a worker (its close() may take a moment)."""
        exchange, conn.exchange = conn.exchange, None
        if exchange is not None and not self.pool.submit(exchange.close, request=False):
            exchange.close()


def _raise_open_files_limit() -> None:
    """Lift the soft limit on open files (towards the hard one): each waiting client holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open files limit from %d: %s", soft, exc)


def head_problem(raw: bytes, request: h11.Request) -> tuple[int, str] | None:
    """What the issue forbids and h11 tolerates, seen in the raw head: (status, reason) or None."""
    end = _head_end(raw)
    if end < 0 or end > MAX_HEAD_BYTES:
        return 431, "request head too large"
    lines = raw[:end].split(b"\n")[1:]
    content_lengths = 0
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            return 400, "folded header line"
        name = line.split(b":", 1)[0].strip().lower()
        if name == b"content-length":
            content_lengths += 1
    if content_lengths > 1:
        return 400, "more than one Content-Length"
    names = {name for name, _ in request.headers}
    if b"content-length" in names and b"transfer-encoding" in names:
        return 400, "both Content-Length and Transfer-Encoding"
    return None


def _head_end(raw: bytes) -> int:
    """Where the head's blank line starts in ``raw`` (-1 if it is not there)."""
    ends = [index for index in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if index >= 0]
    return min(ends) if ends else -1


def _content_length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)
    return None


def _fallback(code: int) -> bytes:
    """The answer when h11 cannot make one (its state is past responding): a bare status and close."""
    conn = h11.Connection(h11.SERVER)
    return conn.send(h11.Response(status_code=code, headers=[("Content-Length", "0"), ("Connection", "close")])) or b""


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
