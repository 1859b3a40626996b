"""The HTTP server: cheroot, in this process, with a way to lend a stream's socket to the fan-out.

cheroot is a production WSGI server (CherryPy's) that embeds cleanly: it runs
in threads of our process, binds before we announce readiness, stops with a
bounded wait and speaks TLS with the standard library. Each request runs on one
of its worker threads; a stream viewer's thread only waits while the fan-out
thread writes its frames (see ``camd.fanout``), so the pool is sized for
``max_clients`` plus room for everything else. A connection reaches a worker
only once its request head is complete (see ``camd.heads``): clients that send
half a request and stall cannot take the workers away from real viewers.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import resource
import socket
import threading
from pathlib import Path
from typing import Any

from cheroot import wsgi

from camd.heads import DeferredHandshake, HeadGate

log = logging.getLogger(__name__)

SPARE_THREADS = 16
REQUEST_TIMEOUT = 10
LISTEN_BACKLOG = 512
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
HEAD_TIMEOUT = 10.0  # a whole request head must arrive within this
OPEN_FILES = 8192


class _Gateway(wsgi.Gateway_10):
    """The standard WSGI 1.0 gateway plus ``camd.handoff`` in the environ."""

    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]
        environ: dict[str, Any] = super().get_environ()
        environ["camd.handoff"] = self._handoff
        return environ

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        write = super().start_response(status, headers, exc_info)
        if getattr(self.req.rfile, "remaining", 0) > 0:
            # The app left (part of) the body unread: close after answering instead of letting
            # cheroot drain it, which a client trickling a large body could stretch forever.
            self.req.close_connection = True
        return write

    def _handoff(self) -> tuple[socket.socket, bool]:
        """The connection's socket, once the headers are out, and whether the body is chunked."""
        self.req.ensure_headers_sent()
        return self.req.conn.socket, bool(self.req.chunked_write)


class _MostRecentFirst:
    """The queue cheroot's workers take connections from, waking the worker that went idle last.

    ``queue.Queue`` wakes the longest-waiting worker, so successive requests land on
    every thread in turn, and each of the ``max_clients`` + 16 threads ends up
    holding the memory native code keeps per thread (OpenCV's text drawing alone
    keeps megabytes per thread it ever ran on). Handing work to the most recently
    idle worker keeps the set of busy threads as small as the load.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: collections.deque[Any] = collections.deque()
        self._idle: list[_Idle] = []  # a stack: the last one in is the first woken
        self._local = threading.local()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._lock:
            if self._idle:
                idle = self._idle.pop()
                idle.item = item
                idle.event.set()
                return
            self._items.append(item)

    def get(self) -> Any:
        idle: _Idle | None = getattr(self._local, "idle", None)
        if idle is None:
            idle = self._local.idle = _Idle()
        with self._lock:
            if self._items:
                return self._items.popleft()
            idle.event.clear()
            self._idle.append(idle)
        idle.event.wait()
        item, idle.item = idle.item, None
        return item

    def qsize(self) -> int:
        return len(self._items)


@dataclasses.dataclass(eq=False)
class _Idle:
    event: threading.Event = dataclasses.field(default_factory=threading.Event)
    item: Any = None


class _Server(wsgi.Server):
    heads: HeadGate | None = None

    def process_conn(self, conn: Any) -> None:
        # A new or kept-alive connection waits in the head gate, not on a worker, until its request is in.
        if self.heads is not None and not conn.rfile.has_data():
            self.heads.add(conn)
        else:
            self.dispatch(conn)

    def dispatch(self, conn: Any) -> None:
        if self.ready:
            super().process_conn(conn)
        else:
            conn.close()

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # cheroot reports client-side trouble (resets, bad requests) as errors; they are not ours.
        log.log(logging.DEBUG if level < logging.ERROR else logging.WARNING, "%s", msg, exc_info=traceback)


class WebServer:
    """The WSGI app served on host:port from a background thread."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        max_clients: int,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.server = _Server(
            (host, port),
            app,
            numthreads=max_clients + SPARE_THREADS,
            request_queue_size=LISTEN_BACKLOG,
            timeout=REQUEST_TIMEOUT,
            shutdown_timeout=2,
            server_name="camd",
        )
        self.server.gateway = _Gateway
        pool = self.server.requests
        pool._queue = _MostRecentFirst()
        pool.get = pool._queue.get
        self.server.max_request_header_size = MAX_HEADER_BYTES
        self.server.max_request_body_size = MAX_BODY_BYTES  # larger ones get 413 before the app runs
        self.server.keep_alive_conn_limit = max_clients + SPARE_THREADS
        self.heads = HeadGate(self.server.dispatch, max_head_bytes=MAX_HEADER_BYTES, timeout=HEAD_TIMEOUT)
        self.server.heads = self.heads
        self.tls = tls_cert is not None and tls_key is not None
        if self.tls:
            self.server.ssl_adapter = DeferredHandshake(str(tls_cert), str(tls_key))
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and listen (errors here are the caller's), then serve from a thread."""
        _raise_open_files_limit()
        self.server.prepare()
        self.heads.start()
        self._thread = threading.Thread(target=self.server.serve, name="http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.server.bind_addr[1])

    def url(self, host: str) -> str:
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"{'https' if self.tls else 'http'}://{shown}:{self.port}/"

    def stop(self) -> None:
        self.server.stop()
        self.heads.stop()
        if self._thread is not None:
            self._thread.join(2)


def _raise_open_files_limit() -> None:
    """Lift the soft limit on open files (towards the hard one): each waiting client holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open files limit from %d: %s", soft, exc)
