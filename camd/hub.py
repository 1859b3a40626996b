"""The newest frame and the camera's state: the one place capture hands things downstream."""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from camd.frames import Frame
from camd.stats import Counters

log = logging.getLogger(__name__)

Listener = Callable[[Frame], None]

STARTING = "starting"
WARMING_UP = "warming_up"
LIVE = "live"
OFFLINE = "offline"


@dataclass(frozen=True)
class CameraState:
    """What the capture side reports about the camera; replaced whole, never mutated."""

    state: str = STARTING
    since: float = field(default_factory=time.time)
    source: str = ""
    backend: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    pixel_format: str = ""
    passthrough: bool = False
    warmup_frames: int = 0
    warmup_seconds: float = 0.0
    warmup_settled: bool = False
    error: str = ""


class Hub:
    """Holds the newest frame; readers wait on a Condition, listeners are told on publish.

    There is no queue: a reader that comes back late gets the newest frame, never
    the ones it missed.
    """

    def __init__(self, jpeg_quality: int, counters: Counters | None = None) -> None:
        self.jpeg_quality = jpeg_quality
        self.counters = counters or Counters()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._latest_live: Frame | None = None
        self._seq = 0
        self._listeners: tuple[Listener, ...] = ()
        self._camera = CameraState()
        self._live_times: collections.deque[float] = collections.deque(maxlen=31)
        self.started = time.time()

    # --- producer side --------------------------------------------------------

    def publish(
        self,
        *,
        pixels: np.ndarray | None = None,
        jpeg: bytes | None = None,
        timestamp: float | None = None,
        live: bool = True,
    ) -> Frame:
        """Make a frame the newest one and wake everyone waiting for it."""
        if pixels is not None:
            height, width = pixels.shape[:2]
        else:
            height, width = self._camera.height, self._camera.width
        with self._cond:
            self._seq += 1
            frame = Frame(
                self._seq,
                time.time() if timestamp is None else timestamp,
                pixels=pixels,
                jpeg=jpeg,
                width=width,
                height=height,
                live=live,
                quality=self.jpeg_quality,
                counters=self.counters,
            )
            self._latest = frame
            if live:
                self._latest_live = frame
                self._live_times.append(time.monotonic())
            self._cond.notify_all()
            listeners = self._listeners
        for listener in listeners:
            try:
                listener(frame)
            except Exception:
                log.exception("a frame listener failed")
        return frame

    def set_camera(self, **changes: object) -> CameraState:
        """Replace fields of the camera state; a new ``state`` also resets ``since``."""
        with self._cond:
            current = self._camera
            if "state" in changes and changes["state"] != current.state:
                changes.setdefault("since", time.time())
            self._camera = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
            return self._camera

    # --- consumer side --------------------------------------------------------

    @property
    def camera(self) -> CameraState:
        return self._camera

    @property
    def latest(self) -> Frame | None:
        """The newest frame, live or placeholder."""
        return self._latest

    @property
    def latest_live(self) -> Frame | None:
        """The newest frame that came from the camera (never a placeholder)."""
        return self._latest_live

    def live_age(self) -> float:
        """Seconds since the last live frame was published (infinite before the first)."""
        times = self._live_times
        return time.monotonic() - times[-1] if times else math.inf

    def health(self, stall_timeout: float) -> str:
        """``ok`` while a live frame is fresher than ``stall_timeout``; else ``offline`` or ``warming_up``."""
        state = self.camera.state
        if state == LIVE and self.live_age() < stall_timeout:
            return "ok"
        return "offline" if state in (OFFLINE, LIVE) else "warming_up"

    def fps(self) -> float:
        """Live frames per second over the last few seconds."""
        times = list(self._live_times)
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def wait_newer(self, seq: int, timeout: float) -> Frame | None:
        """The newest frame once its sequence number is above ``seq``, or None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None and self._latest.seq > seq, timeout)
            frame = self._latest
        return frame if frame is not None and frame.seq > seq else None

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(frame)`` on every publish, from the publishing thread; keep it quick."""
        with self._cond:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._cond:
            self._listeners = tuple(item for item in self._listeners if item is not listener)
