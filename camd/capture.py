"""Capture: open the source, warm it up, gate every frame, and reopen it when it is lost.

One worker thread reads the camera. A supervisor thread publishes the
placeholder frame whenever there is no live picture, and notices a read that
hangs: it then gives up on that worker (it exits by itself if its read ever
returns) and starts a new one on a fresh source, so a stuck driver can never
freeze the stream or the health check.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from camd import gate
from camd.frames import render_text_frame
from camd.hub import LIVE, OFFLINE, WARMING_UP, Hub
from camd.settings import Settings
from camd.sources import Captured, Source, SourceInfo

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
SETTLE_FRAMES = 3  # consecutive valid frames whose brightness must agree
SETTLE_SPREAD = 4.0  # how far apart (0-255) their mean brightness may be
MAX_FAILED_READS = 5  # consecutive failed reads that mean the camera is gone
PLACEHOLDER_INTERVAL = 1.0
DEVICE_POLL = 0.25  # how often a V4L2 node is looked for while waiting to reopen (a stat, cheap)
OPEN_HANG_SLACK = 10.0  # an open may take this long beyond stall_timeout (network cameras) before it counts as hung


class CameraLost(Exception):
    """The source stopped giving valid frames; the worker closes it and a new one reopens."""


class Stopped(Exception):
    """The daemon is stopping, or this worker has been replaced."""


@dataclass(frozen=True)
class WarmupResult:
    frames: int
    seconds: float
    settled: bool


class Capture:
    """Owns the camera for the daemon's lifetime and feeds the hub."""

    def __init__(self, settings: Settings, open_source: Callable[[], Source], hub: Hub) -> None:
        self.settings = settings
        self.open_source = open_source
        self.hub = hub
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._generation = 0
        self._backoff = 0.0
        self._offline_since: float | None = None
        self._last_valid = time.monotonic()
        self._reading_since: float | None = None
        self._opening_since: float | None = None
        self._hung: str | None = None  # a read hung since the last live frame (for the watchdog)
        self._failed_reads = 0
        self._device: str | None = None  # the V4L2 node of the last source, watched while it is gone
        self._device_gone = False  # that node was seen missing since the camera was last opened
        self._worker: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self.hub.set_camera(width=settings.width, height=settings.height)

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self.hub.set_camera(state=WARMING_UP)
        self._publish_placeholder()
        self._start_worker()
        self._supervisor = threading.Thread(target=self._supervise, name="capture-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading and release the camera; a worker stuck in a read is left behind."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in (self._supervisor, self._worker):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._worker is not None and self._worker.is_alive():
            log.warning("the camera read did not return within %.1fs; leaving it behind", timeout)

    def stuck(self) -> str | None:
        """Why capture cannot recover by itself, or None while it can (what the watchdog asks).

        A read that hung since the last live frame, an open blocked for longer than
        the source's own timeouts, or a dead capture thread; opens and reads that
        fail quickly while reopening with backoff are progress, not stuck.
        """
        if self._hung is not None:
            return self._hung
        opening = self._opening_since
        limit = self.settings.stall_timeout + OPEN_HANG_SLACK
        if opening is not None and time.monotonic() - opening > limit:
            return f"opening the camera has blocked for more than {limit:g}s"
        for thread in (self._worker, self._supervisor):
            if thread is not None and thread.ident is not None and not thread.is_alive() and not self._stop.is_set():
                return f"the {thread.name} thread has died"
        return None

    def _start_worker(self) -> None:
        generation = self._generation
        self._worker = threading.Thread(
            target=self._run_worker, args=(generation,), name=f"capture-{generation}", daemon=True
        )
        self._worker.start()

    # --- the worker ---------------------------------------------------------------

    def _run_worker(self, generation: int) -> None:
        if self._backoff and self._wait_backoff():
            return
        source = self.open_source()
        self._device = getattr(source, "device", None)
        self._opening_since = time.monotonic()
        try:
            info = source.open()
        except Exception as exc:  # a source may fail to open in any number of ways
            log.warning("cannot open %s: %s", source.description, exc)
            source.close()
            self._lost(generation, f"cannot open: {exc}")
            return
        finally:
            self._opening_since = None
        if generation != self._generation or self._stop.is_set():
            source.close()
            return
        self._device_gone = False
        self._failed_reads = 0
        try:
            log.info(
                "opened %s (%s): %dx%d at %.1f fps, %s%s",
                source.description, info.backend, info.width, info.height, info.fps,
                info.pixel_format or "pixels", ", JPEG passthrough" if info.passthrough else "",
            )  # fmt: skip
            self.hub.set_camera(
                source=source.description, backend=info.backend, width=info.width or self.settings.width,
                height=info.height or self.settings.height, fps=info.fps, pixel_format=info.pixel_format,
                passthrough=info.passthrough, error="", state=WARMING_UP,
            )  # fmt: skip
            self._last_valid = time.monotonic()
            self._stream(source, info, generation, self._warm_up(source, info, generation))
        except Stopped:
            source.close()
        except Exception as exc:
            if not isinstance(exc, CameraLost):
                log.exception("capture failed")
            source.close()  # before a new worker opens the camera again
            self._lost(generation, str(exc))

    def _wait_backoff(self) -> bool:
        """Wait out the backoff, cut short when the camera's node comes back; True when stopping.

        A replugged USB camera should be live again within the warm-up, not at the
        next step of a backoff that may have grown to 30 s while it was gone. The node
        may go and come back during any wait, or between two of them.
        """
        delay, device = self._backoff, self._device
        log.info("reopening the camera in %.0fs%s", delay, f" or as soon as {device} is back" if device else "")
        deadline = time.monotonic() + delay
        while True:
            if device is not None:
                if not os.path.exists(device):
                    self._device_gone = True
                elif self._device_gone:
                    log.info("%s is back; reopening now", device)
                    self._device_gone = False
                    self._backoff = 0.0  # failures right after a replug start the backoff over, from 1 s
                    return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._stop.wait(min(DEVICE_POLL, left) if device is not None else left):
                return True

    def _read(self, source: Source, info: SourceInfo, generation: int) -> tuple[Captured | None, str | None]:
        """One read and the gate's verdict; raises Stopped or CameraLost as they happen."""
        self._reading_since = time.monotonic()
        try:
            frame = source.read()
        except Exception as exc:
            log.debug("read raised %r", exc)
            frame = None
        finally:
            self._reading_since = None
        if self._stop.is_set() or generation != self._generation:
            raise Stopped
        reason = gate.check(frame, info.width, info.height)
        if reason is None:
            self._failed_reads = 0
            return frame, None
        if reason == gate.READ_FAILED:
            self._failed_reads += 1
            if self._failed_reads >= MAX_FAILED_READS:
                raise CameraLost(f"{self._failed_reads} reads failed in a row")
            self._stop.wait(0.05)  # a read that fails at once must not spin
        if time.monotonic() - self._last_valid > self.settings.stall_timeout:
            raise CameraLost(f"no valid frame for {self.settings.stall_timeout:g}s (last: {reason})")
        return frame, reason

    def _warm_up(self, source: Source, info: SourceInfo, generation: int) -> tuple[WarmupResult, Captured]:
        """Discard frames until the picture can be trusted; return the result and the first good frame."""
        settings = self.settings
        started = time.monotonic()
        discarded = 0
        delay_end = started + settings.warmup_delay
        while time.monotonic() < delay_end:
            frame, reason = self._read(source, info, generation)
            discarded += 1
            if reason is None:
                self._last_valid = time.monotonic()
        for _ in range(settings.warmup_frames):
            frame, reason = self._read(source, info, generation)
            discarded += 1
            if reason is None:
                self._last_valid = time.monotonic()
        levels: list[float] = []
        deadline = started + settings.warmup_max
        while True:
            frame, reason = self._read(source, info, generation)
            if frame is None or reason is not None:
                levels.clear()
                discarded += 1
                continue
            self._last_valid = time.monotonic()
            levels.append(gate.brightness(frame))
            levels = levels[-SETTLE_FRAMES:]
            settled = len(levels) == SETTLE_FRAMES and max(levels) - min(levels) <= SETTLE_SPREAD
            if settled or time.monotonic() >= deadline:
                result = WarmupResult(discarded, time.monotonic() - started, settled)
                return result, frame
            discarded += 1

    def _stream(self, source: Source, info: SourceInfo, generation: int, warmed: tuple[WarmupResult, Captured]) -> None:
        result, frame = warmed
        level = logging.INFO if result.settled else logging.WARNING
        log.log(
            level, "warm-up discarded %d frames in %.2fs; picture %s",
            result.frames, result.seconds, "settled" if result.settled else "did not settle, going live anyway",
        )  # fmt: skip
        self.hub.counters.incr("warmup_frames", result.frames)
        self.hub.counters.incr("warmup_seconds", result.seconds)
        with self._lock:
            if generation != self._generation or self._stop.is_set():
                raise Stopped
            self._backoff = 0.0
            if self._offline_since is not None:
                log.info("camera back after %.1fs offline", time.time() - self._offline_since)
            self._offline_since = None
            self.hub.set_camera(
                state=LIVE, warmup_frames=result.frames, warmup_seconds=round(result.seconds, 3),
                warmup_settled=result.settled,
            )  # fmt: skip
            self._publish(frame)
        while True:
            captured, reason = self._read(source, info, generation)
            if captured is None or reason is not None:
                self.hub.counters.incr(f"dropped_{reason}")
                continue
            with self._lock:
                if generation != self._generation:
                    raise Stopped
                self._publish(captured)

    def _publish(self, frame: Captured) -> None:
        self._last_valid = time.monotonic()
        self._hung = None
        self.hub.counters.incr("frames_captured")
        self.hub.publish(pixels=frame.pixels, jpeg=frame.jpeg, timestamp=frame.timestamp)

    # --- losing the camera --------------------------------------------------------

    def _lost(self, generation: int, why: str) -> None:
        """Mark the camera offline and hand over to a new worker, unless stopping."""
        with self._lock:
            if generation != self._generation or self._stop.is_set():
                return
            self._generation += 1
            was_live = self.hub.camera.state == LIVE
            if self._offline_since is None:
                self._offline_since = time.time()
            self._backoff = BACKOFF_FIRST if not self._backoff else min(self._backoff * 2, BACKOFF_MAX)
            self.hub.set_camera(state=OFFLINE, error=why)
            if was_live:
                self.hub.counters.incr("reconnects")
                log.warning("camera lost: %s", why)
            self._publish_placeholder()
            self._start_worker()

    def _supervise(self) -> None:
        while not self._stop.wait(PLACEHOLDER_INTERVAL / 2):
            reading_since = self._reading_since
            if reading_since is not None:
                hung_for = time.monotonic() - reading_since
                if hung_for > self.settings.stall_timeout:
                    # The worker is stuck inside a read; it cannot notice by itself.
                    self._hung = f"a camera read hung for more than {self.settings.stall_timeout:g}s"
                    self._reading_since = None  # that worker is given up on: report its hang once
                    self._lost(self._generation, f"a read has hung for {hung_for:.1f}s")
            if self.hub.camera.state == LIVE:
                continue
            latest = self.hub.latest
            if latest is None or latest.age >= PLACEHOLDER_INTERVAL:
                with self._lock:
                    if self.hub.camera.state != LIVE:
                        self._publish_placeholder()

    def _publish_placeholder(self) -> None:
        camera = self.hub.camera
        if self._offline_since is not None:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._offline_since))
            lines = ["CAMERA OFFLINE", f"since {since}"]
            lines.append("warming up" if camera.state == WARMING_UP else "reconnecting")
        else:
            lines = ["CAMERA STARTING", "warming up"]
        lines.append(time.strftime("%H:%M:%S"))
        pixels = render_text_frame(camera.width or self.settings.width, camera.height or self.settings.height, lines)
        self.hub.publish(pixels=pixels, live=False)
