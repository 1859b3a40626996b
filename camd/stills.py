"""The stills writer: an output on the hub that saves the newest live frame on the wall-clock grid.

A still is only taken from a live, fresh frame (never while the camera is offline
or warming up, never a frame older than a couple of frame intervals), must decode,
gets an optional timestamp banner, and is written atomically: temp file in the
same folder, fsync, rename, fsync of the folder. Retention runs at start and
after every save.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camd import gate, retention
from camd.frames import Frame
from camd.hub import LIVE, Hub
from camd.settings import Settings, format_duration
from camd.stills_index import (
    MAX_SUFFIX,
    Still,
    StillIndex,
    base_name,
    clean_temp_files,
    day_of,
    parse,
    remove_empty_days,
    scan,
    stamp_time,
    with_suffix,
)
from camd.text import put_text, text_size

log = logging.getLogger(__name__)

FRESH_FRAMES = 2.5  # a frame older than this many frame intervals is stale
FRESH_SLACK = 0.05  # seconds of scheduling slack on top
MAX_FRESH_WAIT = 2.0  # longest wait for a fresh frame at a grid point


class NoPicture(Exception):
    """There is no live, fresh, decodable frame to save right now."""


class StillError(Exception):
    """Saving failed (disk trouble); the message says why."""


def describe(still: Still) -> dict[str, Any]:
    """A still as plain values for the status (the web app adds its URLs: the pipeline knows no HTTP)."""
    return {
        "name": still.name,
        "day": still.day,
        "time": still.time,
        "iso": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(still.time)),
        "size": still.size,
    }


def next_slot(now: float, interval: float) -> float:
    """The first point of the local wall-clock grid of ``interval`` after ``now``; never with ``interval`` 0 (off)."""
    if interval <= 0:
        return math.inf
    offset = time.localtime(now).tm_gmtoff
    return (math.floor((now + offset) / interval) + 1) * interval - offset


def schedule_text(interval: float) -> str:
    """``one every 5m``, or that periodic stills are off, for the log and the pages."""
    if interval <= 0:
        return "periodic stills off (SIGUSR1 and the API still take one)"
    return f"one every {format_duration(interval)}"


def draw_banner(pixels: np.ndarray, when: float, title: str = "") -> np.ndarray:
    """A copy of ``pixels`` with the date and time in a dark strip along the bottom."""
    image = pixels.copy()
    height, width = image.shape[:2]
    scale = max(0.35, min(width, height) / 900)
    thickness = max(1, round(scale * 2))
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    if title and title.isascii() and title.isprintable():
        text = f"{text}  {title}"
    _, text_height, baseline = text_size(text, scale, thickness)
    strip = min(height, text_height + baseline + int(12 * scale) + 4)
    band = image[height - strip :]
    band[:] = (band.astype(np.uint16) * 2 // 7).astype(np.uint8)  # darken, keep a hint of the picture
    origin = (int(8 * scale) + 2, height - baseline - int(6 * scale) - 1)
    put_text(image, [(text, origin)], scale, (255, 255, 255), thickness=thickness)
    return image


def encode_still(frame: Frame, quality: int, banner: bool, title: str = "") -> bytes:
    """The still's JPEG bytes; raises NoPicture when the frame does not decode or is flat."""
    try:
        pixels = frame.pixels()
    except ValueError:
        raise NoPicture("the frame does not decode") from None
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.size == 0:
        raise NoPicture("the frame has no picture")
    if gate.is_flat(pixels):
        raise NoPicture("the frame is one flat colour")
    if banner:
        pixels = draw_banner(pixels, frame.timestamp, title)
    ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise NoPicture("JPEG encoding failed")
    data = buffer.tobytes()
    # The stricter gate: what goes to disk must decode.
    if cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        raise NoPicture("the encoded still does not decode")
    return data


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(folder: Path, base: str, data: bytes, taken: Callable[[str], bool]) -> str:
    """Write ``data`` as ``folder/base[-N].jpg`` via a temp file; returns the name used.

    ``taken(name)`` says whether a name is in use besides what is on disk.
    """
    temp = folder / f".camd-{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        for suffix in range(MAX_SUFFIX + 1):
            name = with_suffix(base, suffix)
            if not taken(name) and not os.path.lexists(folder / name):
                break
        else:
            raise OSError(errno.EEXIST, f"every name for {base} is taken")
        os.rename(temp, folder / name)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    fsync_dir(folder)
    return name


# The settings the writer takes on SIGHUP; stills_dir among them only to be refused (the index holds the folder).
STILLS_FIELDS = tuple(f.name for f in dataclasses.fields(Settings) if f.name.startswith("stills_"))


def limits_of(settings: Settings) -> retention.Limits:
    return retention.Limits(
        max_age=settings.stills_max_age,
        max_count=settings.stills_max_count,
        min_free_bytes=settings.stills_min_free_mb * retention.MB,
    )


class StillsWriter:
    """Saves stills on the grid of ``stills_interval`` and on request, keeps the folder tidy.

    ``start()`` cleans leftover temp files and indexes the folder; a thread then
    prunes, waits for each grid point and saves. ``take()`` saves one now (the
    API); ``request()`` asks the thread to (SIGUSR1). Saves never overlap.
    """

    def __init__(
        self,
        settings: Settings,
        hub: Hub,
        *,
        free_space: Callable[[Path], int] = retention.free_bytes,
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.root = settings.stills_path
        self.index = StillIndex()
        self.limits = limits_of(settings)
        self.free_space = free_space
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._requested = threading.Event()
        self._changed = threading.Event()
        self._save_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._last_error = ""
        self._last_skip = ""
        self._stale_index = False
        self._next = 0.0

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._prepare()
        self._thread = threading.Thread(target=self._run, name="stills", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the schedule; a still being written is finished first."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        # A save from the API may still be running on a request thread: wait for it too.
        if self._save_lock.acquire(timeout=timeout):
            self._save_lock.release()

    def request(self) -> None:
        """Ask the writer thread to take a still now (safe from anywhere; returns at once)."""
        self._requested.set()
        self._wake.set()

    def update_settings(self, settings: Settings) -> None:
        """Take re-read stills settings (SIGHUP): interval, quality, banner, retention.

        A different ``stills_dir`` needs a restart (the index and the web routes hold
        the folder), so it is refused with ValueError.
        """
        if settings.stills_path != self.root:
            raise ValueError(f"stills_dir {str(self.root)!r} -> {str(settings.stills_path)!r} needs a restart")
        changes = {name: getattr(settings, name) for name in STILLS_FIELDS}
        self.settings = dataclasses.replace(self.settings, **changes)
        self.limits = limits_of(self.settings)
        log.info("stills: %s; %s", schedule_text(self.settings.stills_interval), self.limits)
        self._changed.set()
        self._wake.set()

    def _prepare(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("cannot create the stills folder %s: %s", self.root, exc)
        removed = clean_temp_files(self.root)
        if removed:
            log.info("removed %d temp file(s) left by an interrupted save", removed)
        remove_empty_days(self.root)
        started = time.monotonic()
        self.index.replace(scan(self.root))
        log.info(
            "stills: %d in %s (%.1f MB, indexed in %.0f ms); %s", self.index.count(), self.root,
            self.index.total_bytes / retention.MB, (time.monotonic() - started) * 1000,
            schedule_text(self.settings.stills_interval),
        )  # fmt: skip

    def _run(self) -> None:
        with self._save_lock:
            self._prune()
        interval = self.settings.stills_interval
        self._next = next_slot(time.time(), interval)
        while not self._stop.is_set():
            self._wake.wait(min(1.0, max(0.0, self._next - time.time())))
            self._wake.clear()
            if self._stop.is_set():
                break
            if self._changed.is_set():
                self._changed.clear()
                interval = self.settings.stills_interval
                self._next = next_slot(time.time(), interval)
                with self._save_lock:
                    self._prune()
            if self._requested.is_set():
                self._requested.clear()
                self._scheduled(None)
            now = time.time()
            if now >= self._next:
                # The grid point just passed (if the machine was busy, the latest one).
                slot = next_slot(now, interval) - interval
                self._scheduled(slot)
                self._next = next_slot(max(time.time(), slot + 0.5), interval)

    def _scheduled(self, slot: float | None) -> None:
        try:
            self.take(slot)
        except NoPicture as exc:
            reason = str(exc)
            if reason != self._last_skip:
                log.info("no still %s: %s", "this time" if slot is not None else "now", reason)
            self._last_skip = reason
            self.hub.counters.incr("stills_skipped")
        except StillError:
            pass  # already logged and counted
        except Exception:
            self._failures += 1
            self.hub.counters.incr("stills_failed")
            log.exception("saving a still failed")

    # --- taking a still -------------------------------------------------------------

    def fresh_frame(self, wait: float, not_before: float = 0.0) -> Frame:
        """The newest live frame, if it is fresh; waits up to ``wait`` seconds for one.

        ``not_before`` asks for a frame captured at or after that moment (a grid
        point), so that the name and the banner tell the same second.
        """
        deadline = time.monotonic() + wait
        while True:
            if self._stop.is_set():
                raise NoPicture("camd is stopping")
            camera = self.hub.camera
            if camera.state != LIVE:
                raise NoPicture(f"the camera is {camera.state.replace('_', ' ')}")
            frame = self.hub.latest_live
            if frame is not None and frame.age <= self._max_age() and frame.timestamp >= not_before:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoPicture("no fresh frame from the camera")
            latest = self.hub.latest
            self.hub.wait_newer(latest.seq if latest is not None else 0, min(remaining, 0.5))

    def _max_age(self) -> float:
        fps = self.hub.fps() or self.hub.camera.fps or self.settings.fps
        return FRESH_FRAMES / max(fps, 0.1) + FRESH_SLACK

    def take(self, slot: float | None = None) -> Still:
        """Save one still now (named after ``slot``, a grid point, when given).

        Raises NoPicture when there is no fresh live frame, StillError when the
        disk refuses it.
        """
        wait = min(MAX_FRESH_WAIT, self.settings.stills_interval / 2 or MAX_FRESH_WAIT)
        frame = self.fresh_frame(wait, not_before=slot or 0.0)
        return self.take_frame(frame, named=slot)

    def take_frame(self, frame: Frame, named: float | None = None) -> Still:
        """Save ``frame`` (an activity event's peak, say) as a still named after ``named``, else its capture time.

        Raises NoPicture when it does not decode, StillError when the disk refuses it.
        """
        jpeg = encode_still(frame, self.settings.stills_quality, self.settings.stills_banner, self.settings.title)
        with self._save_lock:
            still = self._save(jpeg, frame.timestamp if named is None else named)
            self._prune()
        return still

    def _save(self, jpeg: bytes, when: float) -> Still:
        day, base = day_of(when), base_name(when)
        folder = self.root / day
        try:
            if self._stale_index:
                # An earlier failure may mean someone moved things around: look again.
                self.index.replace(scan(self.root))
                self._stale_index = False
            new_folder = not folder.is_dir()
            folder.mkdir(parents=True, exist_ok=True)
            name = write_atomically(folder, base, jpeg, lambda name: self.index.get(day, name) is not None)
            if new_folder:
                fsync_dir(self.root)
        except OSError as exc:
            self._failures += 1
            self._last_error = f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {exc.strerror or exc}"
            self._stale_index = True
            self.hub.counters.incr("stills_failed")
            log.error("cannot save a still in %s: %s", folder, exc)
            raise StillError(f"cannot save the still: {exc.strerror or exc}") from None
        stamp, suffix = parse(day, name) or (base, 0)
        still = Still(day, name, stamp_time(stamp), len(jpeg), suffix)
        self.index.add(still)
        self.hub.counters.incr("stills_saved")
        self._last_skip = ""
        if self._last_error:
            log.info("stills are being saved again")
            self._last_error = ""
        log.info("saved still %s (%d KB)", still.path, len(jpeg) // 1024)
        return still

    def _prune(self) -> None:
        try:
            deleted = retention.prune(self.index, self.root, self.limits, now=time.time(), free_space=self.free_space)
        except Exception:
            log.exception("retention failed")
            return
        if deleted:
            self.hub.counters.incr("stills_deleted", len(deleted))

    # --- what the status shows ------------------------------------------------------

    def status(self) -> dict[str, Any]:
        last = self.index.newest_one()
        return {
            "count": self.index.count(),
            "disk_bytes": self.index.total_bytes,
            "last": describe(last) if last is not None else None,
            "saved": self.hub.counters.get("stills_saved"),
            "failures": self._failures,
            "deleted": self.hub.counters.get("stills_deleted"),
            "skipped": self.hub.counters.get("stills_skipped"),
            "last_error": self._last_error,
            "interval": self.settings.stills_interval,
            "next": self._next if math.isfinite(self._next) else None,
            "dir": str(self.root),
        }
