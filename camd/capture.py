"""Capture: open the source, warm it up, gate every frame, and reopen it when it is lost.

The supervisor thread alone opens the source, backs off, and replaces the worker;
it also publishes the placeholder frame whenever there is no live picture. A
worker only reads one opened source and reports: it warms up, gates and publishes
frames, and ends (closing its source) when the camera is lost. A read that hangs
cannot be interrupted: the supervisor notices it, gives up on that worker (it exits
by itself if its read ever returns) and opens a new one, so a stuck driver can
never freeze the stream or the health check. What the two threads share is
behind one lock.
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
TICK = 0.25  # the supervisor's pace: placeholder, hang check, and a look for a camera's node while it is gone
OPEN_HANG_SLACK = 10.0  # an open may take this long beyond stall_timeout (network cameras) before it counts as hung


@dataclass(frozen=True)
class WarmupResult:
    frames: int
    seconds: float
    settled: bool


class WarmUp:
    """Decides, one read at a time, when a freshly opened camera's picture can be trusted.

    ``warmup_delay`` seconds of reads, then ``warmup_frames`` more, then valid frames
    until their brightness agrees over a few in a row, bounded by ``warmup_max``.
    """

    def __init__(self, settings: Settings, now: float) -> None:
        self.started = now
        self.delay_end = now + settings.warmup_delay
        self.deadline = now + settings.warmup_max
        self.frames_left = settings.warmup_frames
        self.discarded = 0
        self.levels: list[float] = []

    def offer(self, frame: Captured | None, now: float) -> WarmupResult | None:
        """None while reads are discarded (``frame``: None for an invalid read); the result for the first shown."""
        if now < self.delay_end:
            self.discarded += 1
            return None
        if self.frames_left > 0:
            self.frames_left -= 1
            self.discarded += 1
            return None
        if frame is None:
            self.levels.clear()
            self.discarded += 1
            return None
        self.levels = [*self.levels, gate.brightness(frame)][-SETTLE_FRAMES:]
        settled = len(self.levels) == SETTLE_FRAMES and max(self.levels) - min(self.levels) <= SETTLE_SPREAD
        if settled or now >= self.deadline:
            return WarmupResult(self.discarded, now - self.started, settled)
        self.discarded += 1
        return None


class Worker:
    """One opened source and the thread reading it; what it reports, the supervisor reads."""

    def __init__(self, source: Source, info: SourceInfo, run: Callable[[Worker], None], name: str) -> None:
        self.source, self.info = source, info
        self.abandoned = threading.Event()  # given up on (hung, or capture stopping): publish nothing more
        self.reading_since: float | None = None
        self.went_live = False
        self.lost: str | None = None  # why it ended
        self.thread = threading.Thread(target=run, args=(self,), name=name, daemon=True)


class NodeWatch:
    """Whether a camera's /dev node went away and came back (a replug), looked for with a cheap stat."""

    def __init__(self) -> None:
        self.device: str | None = None
        self.gone = False

    def follow(self, device: str | None) -> None:
        if device != self.device:
            self.device, self.gone = device, False

    def returned(self) -> bool:
        """True once when the node is there again after it was seen missing."""
        if self.device is None:
            return False
        if not os.path.exists(self.device):
            self.gone = True
            return False
        if self.gone:
            self.gone = False
            return True
        return False


class Capture:
    """Owns the camera for the daemon's lifetime and feeds the hub."""

    def __init__(
        self, settings: Settings, open_source: Callable[[], Source], hub: Hub, *,
        backoff_first: float = BACKOFF_FIRST, tick: float = TICK,
    ) -> None:  # fmt: skip
        """``backoff_first`` and ``tick`` set the supervisor's pace; tests run it faster."""
        self.settings = settings
        self.open_source = open_source
        self.hub = hub
        self.backoff_first, self.tick = backoff_first, tick
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards everything below that both threads touch, and publishing
        self._offline_since: float | None = None
        self._hung: str | None = None  # a read hung since the last live frame (for the watchdog)
        self._opening_since: float | None = None
        self._worker: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self.hub.set_camera(width=settings.width, height=settings.height)

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self.hub.set_camera(state=WARMING_UP)
        self._publish_placeholder()
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

    # --- the supervisor -----------------------------------------------------------

    def _supervise(self) -> None:
        backoff = 0.0
        node = NodeWatch()
        generation = 0
        while not self._stop.is_set():
            if backoff:
                waited = self._wait_backoff(backoff, node)
                if waited is None:
                    return
                if waited == "returned":
                    backoff = 0.0  # failures right after a replug start the backoff over, from its first step
            source = self.open_source()
            node.follow(getattr(source, "device", None))
            opened = self._open(source, generation)
            generation += 1
            if isinstance(opened, str):
                if node.returned():  # also notes a node that is missing now
                    backoff = 0.0
                why = f"cannot open: {opened}"
                went_live = False
            else:
                node.gone = False
                watched = self._watch(opened)
                if watched is None:  # stopping
                    return
                with self._lock:
                    self._worker = None  # ended or given up on: no longer a thread the watchdog should ask after
                why, went_live = watched, opened.went_live
            self._lost(why)
            backoff = self.backoff_first if went_live or not backoff else min(backoff * 2, BACKOFF_MAX)

    def _open(self, source: Source, generation: int) -> Worker | str:
        """Open ``source`` and start a worker reading it; why not, when it fails."""
        self._opening_since = time.monotonic()
        try:
            info = source.open()
        except Exception as exc:  # a source may fail to open in any number of ways
            log.warning("cannot open %s: %s", source.description, exc)
            source.close()
            return str(exc)
        finally:
            self._opening_since = None
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
        worker = Worker(source, info, self._read_loop, f"capture-{generation}")
        with self._lock:
            self._worker = worker.thread
        worker.thread.start()
        return worker

    def _watch(self, worker: Worker) -> str | None:
        """Keep the placeholder fresh and watch for a hung read until the worker ends; why it did (None: stopping)."""
        while not self._stop.wait(self.tick):
            if not worker.thread.is_alive():
                return worker.lost or "the camera read ended"
            reading_since = worker.reading_since
            if reading_since is not None and time.monotonic() - reading_since > self.settings.stall_timeout:
                # The worker is stuck inside a read; it cannot notice by itself.
                with self._lock:
                    worker.abandoned.set()
                    self._hung = f"a camera read hung for more than {self.settings.stall_timeout:g}s"
                return f"a read has hung for {time.monotonic() - reading_since:.1f}s"
            self._refresh_placeholder()
        worker.abandoned.set()
        return None

    def _wait_backoff(self, delay: float, node: NodeWatch) -> str | None:
        """Wait out the backoff, cut short when the camera's node comes back: "elapsed", "returned", None: stopping.

        A replugged USB camera should be live again within the warm-up, not at the
        next step of a backoff that may have grown to 30 s while it was gone.
        """
        device = node.device
        log.info("reopening the camera in %.0fs%s", delay, f" or as soon as {device} is back" if device else "")
        deadline = time.monotonic() + delay
        while True:
            if node.returned():
                log.info("%s is back; reopening now", device)
                return "returned"
            left = deadline - time.monotonic()
            if left <= 0:
                return "elapsed"
            if self._stop.wait(min(self.tick, left)):
                return None
            self._refresh_placeholder()

    def _lost(self, why: str) -> None:
        """Mark the camera offline (said once, when it was live) and show the placeholder."""
        with self._lock:
            was_live = self.hub.camera.state == LIVE
            if self._offline_since is None:
                self._offline_since = time.time()
            # "Offline since" is since the camera was last live, not since the last failed warm-up.
            self.hub.set_camera(state=OFFLINE, error=why, since=self._offline_since)
            if was_live:
                self.hub.counters.incr("reconnects")
                log.warning("camera lost: %s", why)
            self._publish_placeholder()

    # --- the worker ---------------------------------------------------------------

    def _read_loop(self, worker: Worker) -> None:
        """Read, gate, warm up and publish until the camera is lost; always closes the source."""
        settings, source, info = self.settings, worker.source, worker.info
        warm: WarmUp | None = WarmUp(settings, time.monotonic())
        last_valid = time.monotonic()
        failed = 0
        try:
            while not self._stop.is_set() and not worker.abandoned.is_set():
                worker.reading_since = time.monotonic()
                try:
                    frame = source.read()
                except Exception as exc:
                    log.debug("read raised %r", exc)
                    frame = None
                worker.reading_since = None
                if self._stop.is_set() or worker.abandoned.is_set():
                    return
                now = time.monotonic()
                reason = gate.check(frame, info.width, info.height)
                if reason is None:
                    failed, last_valid = 0, now
                elif reason == gate.READ_FAILED:
                    failed += 1
                    if failed >= MAX_FAILED_READS:
                        worker.lost = f"{failed} reads failed in a row"
                        return
                    self._stop.wait(0.05)  # a read that fails at once must not spin
                if reason is not None and now - last_valid > settings.stall_timeout:
                    worker.lost = f"no valid frame for {settings.stall_timeout:g}s (last: {reason})"
                    return
                if warm is not None:
                    result = warm.offer(frame if reason is None else None, now)
                    if result is not None and frame is not None:
                        self._go_live(worker, result, frame)
                        warm = None
                elif reason is not None:
                    self.hub.counters.incr(f"dropped_{reason}")
                elif frame is not None:
                    with self._lock:
                        if not worker.abandoned.is_set():
                            self._publish(frame)
        except Exception as exc:
            log.exception("capture failed")
            worker.lost = str(exc)
        finally:
            source.close()  # before the supervisor opens the camera again

    def _go_live(self, worker: Worker, result: WarmupResult, frame: Captured) -> None:
        level = logging.INFO if result.settled else logging.WARNING
        log.log(
            level, "warm-up discarded %d frames in %.2fs; picture %s",
            result.frames, result.seconds, "settled" if result.settled else "did not settle, going live anyway",
        )  # fmt: skip
        self.hub.counters.incr("warmup_frames", result.frames)
        self.hub.counters.incr("warmup_seconds", result.seconds)
        with self._lock:
            if worker.abandoned.is_set():
                return
            if self._offline_since is not None:
                log.info("camera back after %.1fs offline", time.time() - self._offline_since)
            self._offline_since = None
            worker.went_live = True
            self.hub.set_camera(
                state=LIVE, warmup_frames=result.frames, warmup_seconds=round(result.seconds, 3),
                warmup_settled=result.settled,
            )  # fmt: skip
            self._publish(frame)

    def _publish(self, frame: Captured) -> None:
        """A live frame (the caller holds the lock)."""
        self._hung = None
        self.hub.counters.incr("frames_captured")
        self.hub.publish(pixels=frame.pixels, jpeg=frame.jpeg, timestamp=frame.timestamp)

    # --- the placeholder ------------------------------------------------------------

    def _refresh_placeholder(self) -> None:
        if self.hub.camera.state == LIVE:
            return
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
