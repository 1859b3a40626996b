"""Timelapses: a day's stills as a VP8 WebM, built in the background by OpenCV's VideoWriter and cached.

A build is named after a signature of the day's stills (names and sizes) and
the frame rate, so a new or deleted still makes the cached file stale and the
next request builds it again; the old file goes once the new one is in place.
One worker builds one day at a time, writing to a temp file and renaming it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import secrets
import threading
import time
from pathlib import Path

import cv2

from camd.stills_index import DAY_RE, Still, StillIndex

log = logging.getLogger(__name__)

FOURCC = cv2.VideoWriter.fourcc(*"VP80")
SUFFIX = ".webm"
BUILD_NICE = 10


class TimelapseError(Exception):
    """The timelapse of a day cannot be built (the message says why)."""


def signature(stills: list[Still], fps: float) -> str:
    """A short digest of what a day's timelapse is made of."""
    digest = hashlib.sha256(f"{fps:g}".encode())
    for still in stills:
        digest.update(f"\n{still.name}:{still.size}".encode())
    return digest.hexdigest()[:12]


def build(path: Path, files: list[Path], fps: float, stop: threading.Event | None = None) -> int:
    """Write ``files`` (JPEGs) as a VP8 WebM at ``path``; returns the frames written.

    Every frame takes the first picture's size (even width and height, as VP8 wants).
    A file that is gone or does not decode is left out.
    """
    writer: cv2.VideoWriter | None = None
    size = (0, 0)
    frames = 0
    try:
        for file in files:
            if stop is not None and stop.is_set():
                raise TimelapseError("camd is stopping")
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                continue
            if writer is None:
                height, width = image.shape[:2]
                size = (width - width % 2, height - height % 2)
                writer = cv2.VideoWriter(str(path), FOURCC, fps, size)
                if not writer.isOpened():
                    raise TimelapseError("OpenCV cannot write VP8 WebM here")
            if (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            writer.write(image)
            frames += 1
    finally:
        if writer is not None:
            writer.release()
    if frames == 0:
        raise TimelapseError("no still of that day decodes")
    return frames


class Timelapses:
    """The cache of built timelapses and the worker that builds them; thread-safe."""

    def __init__(self, root: Path, stills_root: Path, index: StillIndex, fps: float) -> None:
        self.root = root
        self.stills_root = stills_root
        self.index = index
        self.fps = fps
        self.built = 0
        self.last_build: dict[str, object] = {}  # what the last build took, for the status and the bench
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._failed: dict[str, tuple[str, str]] = {}  # day -> (signature, reason)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._clean_temp()
        self.prune()
        self._thread = threading.Thread(target=self._run, name="timelapse", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._queue.put("")
        if self._thread is not None:
            self._thread.join(timeout)

    def path_for(self, day: str, sig: str) -> Path:
        return self.root / f"{day}.{sig}{SUFFIX}"

    def get(self, day: str) -> Path | None:
        """The day's timelapse if it is built and current; else starts a build and returns None.

        Raises TimelapseError when the last build of these very stills failed, and
        LookupError when the day has no stills.
        """
        stills = self.index.of_day(day)
        if not stills:
            raise LookupError(day)
        sig = signature(stills, self.fps)
        path = self.path_for(day, sig)
        if path.is_file():
            return path
        with self._lock:
            failed = self._failed.get(day)
            if failed is not None and failed[0] == sig:
                raise TimelapseError(failed[1])
            if day not in self._pending:
                self._pending.add(day)
                self._queue.put(day)
        return None

    def building(self) -> list[str]:
        with self._lock:
            return sorted(self._pending)

    def _run(self) -> None:
        # A build takes seconds of CPU per minute of video: capture and viewers come first (Linux: per thread).
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BUILD_NICE)
        except (OSError, AttributeError) as exc:
            log.debug("cannot lower the timelapse builder's priority: %s", exc)
        while not self._stop.is_set():
            day = self._queue.get()
            if not day or self._stop.is_set():
                break
            try:
                self._build(day)
            except Exception:
                log.exception("building the timelapse of %s failed", day)
            finally:
                with self._lock:
                    self._pending.discard(day)

    def _build(self, day: str) -> None:
        self.prune()
        stills = self.index.of_day(day)
        if not stills:
            return
        sig = signature(stills, self.fps)
        final = self.path_for(day, sig)
        if final.is_file():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / f".camd-{secrets.token_hex(8)}{SUFFIX}"
        started = time.monotonic()
        try:
            frames = build(temp, [self.stills_root / still.day / still.name for still in stills], self.fps, self._stop)
            os.replace(temp, final)
        except TimelapseError as exc:
            temp.unlink(missing_ok=True)
            with self._lock:
                self._failed[day] = (sig, str(exc))
            log.warning("no timelapse of %s: %s", day, exc)
            return
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        took = time.monotonic() - started
        self.built += 1
        size = final.stat().st_size
        self.last_build = {"day": day, "frames": frames, "seconds": round(took, 2), "bytes": size}
        log.info("built the timelapse of %s: %d stills in %.1fs (%d KB)", day, frames, took, size // 1024)
        self._remove_others(day, keep=final)

    def _remove_others(self, day: str, keep: Path) -> None:
        for path in self.root.glob(f"{day}.*{SUFFIX}"):
            if path != keep:
                path.unlink(missing_ok=True)

    def prune(self) -> None:
        """Delete cached timelapses of days that no longer have stills."""
        days = {day for day, _ in self.index.days()}
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return
        for entry in entries:
            day = entry.name[:10]
            if entry.name.endswith(SUFFIX) and DAY_RE.fullmatch(day) and day not in days:
                try:
                    os.unlink(entry.path)
                except OSError as exc:
                    log.warning("cannot delete the timelapse %s: %s", entry.path, exc)

    def _clean_temp(self) -> None:
        for path in self.root.glob(f".camd-*{SUFFIX}"):
            path.unlink(missing_ok=True)

    def status(self) -> dict[str, object]:
        return {"built": self.built, "building": self.building(), "fps": self.fps, "last_build": self.last_build}
