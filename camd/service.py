"""systemd glue: readiness, status, watchdog and stopping over ``NOTIFY_SOCKET``, with no dependency.

Without ``NOTIFY_SOCKET`` (not started by systemd, or ``Type=simple``) every call
here does nothing. The watchdog is fed only while the camera side is healthy:

- live frames are fresh (the newest is younger than ``stall_timeout``): feed;
- no fresh live frame, but capture is making progress on its own (warming up,
  or offline and reopening with backoff because opens or reads fail quickly):
  feed. Restarting camd cannot bring back an unplugged camera, and viewers
  stay connected to the "CAMERA OFFLINE" frame until it comes back;
- capture is stuck (a read hung since the last live frame, an open that blocks,
  a dead capture thread): stop feeding, so systemd kills and restarts camd
  after ``WatchdogSec``. A fresh process is the one remedy for a wedged driver.

The placeholder frame does not count as fresh: capture publishes it even while
a read hangs.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from camd.hub import LIVE, Hub

log = logging.getLogger(__name__)

STATUS_EVERY = 2.0  # how often STATUS= is refreshed without a watchdog
MAX_PING_EVERY = 5.0  # the longest gap between two watchdog checks


class Notifier:
    """``sd_notify(3)`` in a few lines: one datagram per message to ``$NOTIFY_SOCKET``."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = ""
        self._sock: socket.socket | None = None
        if address.startswith(("/", "@")):
            # "@name" is a socket in the abstract namespace.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        elif address:
            log.warning("NOTIFY_SOCKET=%r is not a unix socket path; not talking to systemd", address)
        self.watchdog_interval = watchdog_interval(environ)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one message; False when there is nobody to tell."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode("utf-8", "replace"), self._address)
        except OSError as exc:
            log.debug("sd_notify %s failed: %s", fields, exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds systemd allows between two ``WATCHDOG=1``, or None when there is no watchdog for us."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1_000_000


class CaptureHealth(Protocol):
    def stuck(self) -> str | None: ...


class ViewerCount(Protocol):
    @property
    def viewers(self) -> int: ...


def watchdog_verdict(hub: Hub, capture: CaptureHealth, stall_timeout: float) -> str | None:
    """None when the watchdog may be fed; otherwise why not (see the module's docstring)."""
    age = hub.live_age()
    if age < stall_timeout:
        return None
    stuck = capture.stuck()
    if stuck:
        return stuck
    if hub.camera.state == LIVE:
        # Live but stale: capture is about to call it lost (or a read is about to count as hung).
        return f"no live frame for {age:.1f}s"
    return None


def describe(hub: Hub, viewers: int) -> str:
    """The one-line STATUS= that ``systemctl status`` shows."""
    camera = hub.camera
    state = camera.state.replace("_", " ")
    if camera.state == LIVE:
        state = f"live {hub.fps():.1f} fps"
        if camera.width and camera.height:
            state += f" {camera.width}x{camera.height}"
    elif camera.error:
        state += f" ({camera.error})"
    return f"{state}, {viewers} viewer{'' if viewers == 1 else 's'}"


class Service:
    """Tells systemd how camd is doing from its own thread, once the server listens."""

    def __init__(
        self,
        hub: Hub,
        capture: CaptureHealth,
        fanout: ViewerCount,
        stall_timeout: float,
        notifier: Notifier | None = None,
    ) -> None:
        self.hub = hub
        self.capture = capture
        self.fanout = fanout
        self.stall_timeout = stall_timeout
        self.notifier = notifier or Notifier()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = ""
        self._starving: str | None = None

    @property
    def period(self) -> float:
        """How often health is checked: several times per watchdog interval."""
        interval = self.notifier.watchdog_interval
        return STATUS_EVERY if interval is None else min(interval / 4, MAX_PING_EVERY)

    def start(self, ready_timeout: float = 30.0) -> None:
        """Call once the server listens: READY=1 as soon as a frame (the placeholder counts) is in the hub."""
        if not self.notifier.enabled:
            return
        if self.notifier.watchdog_interval is not None:
            log.info("systemd watchdog: %.1fs; fed while frames are fresh", self.notifier.watchdog_interval)
        self._thread = threading.Thread(target=self._run, args=(ready_timeout,), name="service", daemon=True)
        self._thread.start()

    def _run(self, ready_timeout: float) -> None:
        if self.hub.latest is None and self.hub.wait_newer(0, ready_timeout) is None:
            log.error("no frame, not even the placeholder, %.0fs after start; not telling systemd ready", ready_timeout)
            return
        self._status = describe(self.hub, self.fanout.viewers)
        self.notifier.notify("READY=1", f"STATUS={self._status}")
        while not self._stop.wait(self.period):
            self.tick()

    def tick(self) -> None:
        """One round: feed the watchdog if camd is healthy, refresh STATUS= if it changed."""
        fields: list[str] = []
        if self.notifier.watchdog_interval is not None:
            verdict = watchdog_verdict(self.hub, self.capture, self.stall_timeout)
            if verdict is None:
                fields.append("WATCHDOG=1")
                if self._starving is not None:
                    log.info("feeding the systemd watchdog again")
            elif self._starving is None or _kind(verdict) != _kind(self._starving):
                log.warning("not feeding the systemd watchdog: %s", verdict)
            self._starving = verdict
        status = describe(self.hub, self.fanout.viewers)
        if status != self._status:
            self._status = status
            fields.append(f"STATUS={status}")
        if fields:
            self.notifier.notify(*fields)

    def reloading(self) -> None:
        # MONOTONIC_USEC= is what Type=notify-reload (systemd 253+) also wants with RELOADING=1.
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=reloading")

    def reloaded(self) -> None:
        self._status = describe(self.hub, self.fanout.viewers)
        self.notifier.notify("READY=1", f"STATUS={self._status}")

    def stop(self) -> None:
        """STOPPING=1 first, so systemd knows the exit that follows is on purpose."""
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.notifier.close()


def _kind(reason: str) -> str:
    """A reason without its figures: a new kind of trouble is worth a log line, a new figure is not."""
    return re.sub(r"[\d.]+", "", reason)
