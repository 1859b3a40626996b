"""camd's entry point: parse options, then wire the parts in the order data flows.

listener first (a busy port is a usage error), then
source -> capture -> hub -> fan-out and web app -> HTTP front; torn down in reverse.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Protocol, TypeVar

import camd
from camd import cli, startup
from camd import users as users_module
from camd.lock import StateDirBusy, StateLock
from camd.settings import Settings, SettingsError
from camd.users import Users

if TYPE_CHECKING:  # imported for real inside run(), see there
    from camd.reload import Reloader
    from camd.stills import StillsWriter

log = logging.getLogger("camd")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "info") -> None:
    # journald stamps each line itself; a terminal wants the time.
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else LOG_FORMAT
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)


def main(argv: list[str] | None = None) -> int:
    # First of all, before any thread exists: numpy's OpenBLAS starts threads as it loads (checking the
    # settings may load it), and a thread that took an arena of its own keeps it whatever the limit says later.
    limit_malloc_arenas()
    setup_logging()
    args = cli.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "passwd":
            return cli.cmd_passwd(args)
        if args.command == "probe":
            return cli.cmd_probe(args)
        if args.command == "still":
            return cli.cmd_still(args)
        return run(cli.settings_from(args), reload_settings=lambda: cli.settings_from(args))
    except SettingsError as exc:
        sys.stderr.write(f"camd: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        log.critical("fatal: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return 1


class Signals:
    """Signal handlers only set flags; the main loop acts on them."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.still = threading.Event()
        self.wake = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGUSR1, self._on_still)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        self.wake.set()

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self.reload.set()
        self.wake.set()

    def _on_still(self, signum: int, frame: FrameType | None) -> None:
        self.still.set()
        self.wake.set()


def run(settings: Settings, reload_settings: Callable[[], Settings] | None = None) -> int:
    """The daemon: runs until SIGTERM or SIGINT, then stops within a few seconds; SIGHUP re-reads."""
    # Imported here, not at the top: cv2, numpy and flask take about 0.6 s to import, which
    # `camd passwd` and `--help` do not need (0.3 s with these here, 0.9 s with them at the top).
    from camd import http, text
    from camd.activity_log import ActivityLog
    from camd.activity_monitor import ActivityMonitor
    from camd.capture import Capture
    from camd.hub import Hub
    from camd.reload import Reloader
    from camd.service import Service
    from camd.sources import Opener
    from camd.stills import StillsWriter
    from camd.timelapse import Timelapses
    from camd.variants import Variants
    from camd.web import create_app

    setup_logging(settings.log_level)
    with contextlib.ExitStack() as stack:  # each part pushes its stop as it starts: stops run in reverse
        stack.callback(text.stop)  # the one thread that draws text for every part (camd.text), ended after them
        # The port first: a busy one is a usage error, before any file or the camera is touched.
        listener, tls_context = _listen(settings)
        stack.callback(listener.close)  # the server closes it too; this covers a failed start before it
        sources = Opener(settings)  # a bad source spec is a usage error too, before any file is made
        stack.callback(_lock_state_dir(settings).release)
        log.info("camd %s starting; settings not at their defaults: %s", camd.__version__,
                 settings.describe(True) or "none")  # fmt: skip
        log.debug("settings: %s", settings.describe())
        signals = Signals()
        signals.install()
        users, first_password = _prepare_users(settings)

        # The camera pipeline, upstream first: capture publishes to the hub, every output reads the hub.
        hub, state = Hub(settings.jpeg_quality), settings.state_path
        capture = started(stack, Capture(settings, sources, hub))
        stills = started(stack, StillsWriter(settings, hub))  # its stop finishes a still being written
        activity = None
        if settings.activity:  # its stop logs the end of an event going on
            activity = started(stack, ActivityMonitor(settings, hub, ActivityLog(state / "activity"), stills))
        timelapses = started(stack, Timelapses(state / "timelapse", stills.root, stills.index, settings.timelapse_fps))

        # The HTTP side. Stopped fan-out first, then the server: streams never end by themselves,
        # and the server's stop waits (up to 2 s) for requests under way; its stop is safe before start.
        variants = Variants(hub.counters)  # smaller pictures (?width=, ?quality=), made only while watched
        fanout = http.Fanout(hub, settings.max_clients, variants=variants)
        app = create_app(
            settings, hub, fanout, users, stills, timelapses=timelapses, activity=activity, variants=variants
        )
        server = http.HttpServer(app, listener, tls_context=tls_context)
        stack.callback(server.stop)
        started(stack, fanout)
        server.start()
        # The URL is for this machine; the address says what else can reach it (the closing block lists those URLs).
        log.info("serving on %s (listening on %s port %d)", server.url(settings.host), settings.host, server.port)

        # systemd last (READY=1 once serving; does nothing outside systemd), and STOPPING=1 first.
        service = started(stack, Service(hub, capture, fanout, settings.stall_timeout))

        settling = settings.warmup_delay + settings.warmup_max + 1
        startup.settle(lambda: hub.camera.state in ("starting", "warming_up"), signals.stop, settling)
        startup.announce(settings, server.port, server.tls, first_password)
        serve_signals(signals, Reloader(settings, reload_settings, users, stills=stills, service=service), stills)
        log.info("stopping")
    log.info("stopped")
    return 0


class Part(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


P = TypeVar("P", bound=Part)


def started(stack: contextlib.ExitStack, part: P) -> P:
    """Start ``part`` and push its stop, so that the stack stops it (in reverse order) however ``run`` ends."""
    part.start()
    stack.callback(part.stop)
    return part


def serve_signals(signals: Signals, reloader: Reloader, stills: StillsWriter) -> None:
    """Until SIGTERM or SIGINT: SIGHUP re-reads the configuration, SIGUSR1 takes a still."""
    while not signals.stop.is_set():
        signals.wake.wait(1.0)
        signals.wake.clear()
        if signals.reload.is_set():
            signals.reload.clear()
            reloader.reload()
        if signals.still.is_set():
            signals.still.clear()
            stills.request()


def _listen(settings: Settings) -> tuple[socket.socket, ssl.SSLContext | None]:
    """The bound listening socket and the TLS context; a busy port or bad certificate is a usage error."""
    from camd import http  # here for the same reason as in run(): it brings cv2 (camd.frames)

    try:
        listener = http.bind(settings.host, settings.port)
    except http.BindError as exc:
        raise SettingsError(str(exc)) from None
    if not (settings.tls_cert and settings.tls_key):
        return listener, None
    try:
        return listener, http.server_context(settings.tls_cert, settings.tls_key)
    except http.TlsError as exc:
        listener.close()
        raise SettingsError(f"tls_cert/tls_key: {exc}") from None


def _lock_state_dir(settings: Settings) -> StateLock:
    """Refuse to start on a state directory another camd uses; the lock is held until exit."""
    lock = StateLock(settings.state_path)
    try:
        lock.acquire()
    except StateDirBusy as exc:
        raise SettingsError(str(exc)) from None
    except OSError as exc:
        reason = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        raise SettingsError(f"state_dir={str(settings.state_path)!r} cannot be used ({reason})") from None
    return lock


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Keep glibc to a couple of malloc arenas (unless ``MALLOC_ARENA_MAX`` says otherwise).

    glibc gives threads arenas of their own, up to 8 per core, and an arena keeps
    the peak of the frame-sized buffers freed into it. Every camera reconnect starts
    a new capture thread on another arena: before this, RSS grew by about 17 MB per
    reconnect (tests/test_soak.py; part of that was the new thread's own copy of
    OpenCV's fonts, which camd.text now avoids). With the text on one thread, 16
    arenas still leave 9-11 MB free in the heap where 2 leave 3.5 MB.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt  # glibc; not every C library has it
    except (OSError, AttributeError):
        return
    m_arena_max = -8
    mallopt(m_arena_max, arenas)


def _prepare_users(settings: Settings) -> tuple[Users, str | None]:
    """The users file, made with a first user and password on the first start."""
    try:
        password = users_module.ensure_first_user(settings.users_path)
        users = users_module.Users(settings.users_path)
    except users_module.UsersError as exc:
        raise SettingsError(f"users_file={str(settings.users_path)!r}: {exc}") from None
    except OSError as exc:  # a directory, an unwritable or uncreatable place: the setting's fault, not a crash
        reason = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)
        name, value = ("users_file", settings.users_path) if settings.users_file else ("state_dir", settings.state_path)
        raise SettingsError(f"{name}={str(value)!r} cannot be used ({reason})") from None
    if password is not None:
        # Kept until changed, so that a start without a terminal (or a lost scrollback) does not lose it.
        path = users_module.write_initial_password(settings.state_path, users_module.FIRST_USER, password)
        how = startup.passwd_command(settings, users_module.FIRST_USER)
        log.warning("first start: created user %r; its password is in %s (change it with: %s)",
                    users_module.FIRST_USER, path, how)  # fmt: skip
    return users, password


if __name__ == "__main__":
    sys.exit(main())
