"""camd's entry point: parse options, then wire the parts in the order data flows.

listener first (a busy port is a usage error), then
source -> capture -> hub -> fan-out and web app -> HTTP front; torn down in reverse.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

import camd
from camd import cli, startup
from camd.lock import StateDirBusy, StateLock
from camd.settings import Settings, SettingsError
from camd.users import Users

log = logging.getLogger("camd")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "info") -> None:
    # journald stamps each line itself; a terminal wants the time.
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else LOG_FORMAT
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)


def main(argv: list[str] | None = None) -> int:
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
    from camd import http
    from camd.activity_log import ActivityLog
    from camd.activity_monitor import ActivityMonitor
    from camd.capture import Capture
    from camd.hub import Hub
    from camd.reload import Reloader
    from camd.service import Service
    from camd.sources import Source, make_source
    from camd.stills import StillsWriter
    from camd.timelapse import Timelapses
    from camd.variants import Variants
    from web import create_app

    setup_logging(settings.log_level)
    limit_malloc_arenas()
    # The port is checked first: a busy one is a usage error, before any file or the camera is touched.
    try:
        listener = http.bind(settings.host, settings.port)
        tls_context = (
            http.server_context(settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None
        )
    except http.BindError as exc:
        raise SettingsError(str(exc)) from None
    except http.TlsError as exc:
        listener.close()
        raise SettingsError(f"tls_cert/tls_key: {exc}") from None
    # A bad source spec is a usage error: refuse it with one line, before logging or creating any file.
    first_source = [make_source(settings)]
    state_lock = startup_checks(settings)  # before any file is made
    log.info(
        "camd %s starting; settings not at their defaults: %s", camd.__version__, settings.describe(True) or "none"
    )
    log.debug("settings: %s", settings.describe())
    signals = Signals()
    signals.install()

    users, first_password = _prepare_users(settings)

    # `auto` picks a camera once; reopening that same one keeps an unplugged camera offline until it
    # returns, where a new search would find none and go live with the test pattern.
    chosen_device = getattr(first_source[0], "device", None)

    def open_source() -> Source:
        # Each (re)open gets a fresh source object: a worker stuck in a read keeps its own.
        return first_source.pop() if first_source else make_source(settings, device=chosen_device)

    hub = Hub(settings.jpeg_quality)
    stills = StillsWriter(settings, hub)
    timelapses = Timelapses(settings.state_path / "timelapse", stills.root, stills.index, settings.timelapse_fps)
    activity = ActivityMonitor(settings, hub, ActivityLog(settings.state_path / "activity"), stills)
    capture = Capture(settings, open_source, hub)
    variants = Variants(hub.counters)  # smaller pictures (?width=, ?quality=), made only while watched
    fanout = http.Fanout(hub, settings.max_clients, variants=variants)
    app = create_app(
        settings, hub, fanout, users, stills=stills, timelapses=timelapses,
        activity=activity if settings.activity else None, variants=variants,
    )  # fmt: skip
    server = http.HttpServer(app, listener, tls_context=tls_context)

    capture.start()
    stills.start()
    if settings.activity:
        activity.start()
    timelapses.start()
    fanout.start()
    server.start()
    # The URL is for this machine; the address says what else can reach it (the closing block lists those URLs).
    log.info("serving on %s (listening on %s port %d)", server.url(settings.host), settings.host, server.port)
    service = Service(hub, capture, fanout, settings.stall_timeout)  # sd_notify; does nothing outside systemd
    service.start()
    settling = settings.warmup_delay + settings.warmup_max + 1
    startup.settle(lambda: hub.camera.state in ("starting", "warming_up"), signals.stop, settling)
    startup.announce(settings, server.port, server.tls, first_password)
    reloader = Reloader(settings, reload_settings, users, stills=stills, service=service)

    while not signals.stop.is_set():
        signals.wake.wait(1.0)
        signals.wake.clear()
        if signals.reload.is_set():
            signals.reload.clear()
            reloader.reload()
        if signals.still.is_set():
            signals.still.clear()
            stills.request()

    log.info("stopping")
    service.stop()
    fanout.stop()
    server.stop()
    timelapses.stop()
    activity.stop()  # logs the end of an event going on
    stills.stop()  # finishes a still being written
    capture.stop()
    state_lock.release()
    log.info("stopped")
    return 0


def startup_checks(settings: Settings) -> StateLock:
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
    reconnect (tests/test_soak.py).
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
    from camd import users as users_module

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
