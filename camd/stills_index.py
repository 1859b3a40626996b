"""The stills layout (``YYYY-MM-DD/YYYYMMDD-HHMMSS[-N].jpg``) and an in-memory index of the files in it.

The index is built once at start by listing the day folders and then kept up to
date by the writer and retention, so the gallery and the API never list the disk
per request.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DAY_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
NAME_RE = re.compile(r"(\d{8})-(\d{6})(?:-([1-9]\d{0,3}))?\.jpg")
STEM_RE = re.compile(r"(\d{8})-(\d{6})(?:-([1-9]\d{0,3}))?")
# Temp files camd writes before the rename; only these are ever cleaned up as leftovers.
TEMP_RE = re.compile(r"\.camd-[0-9a-f]{16}\.tmp")
MAX_SUFFIX = 9999


def day_of(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(when))


def base_name(when: float) -> str:
    """The name of a still taken at ``when`` (local time), before any ``-N`` suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(when))


def with_suffix(base: str, suffix: int) -> str:
    return f"{base}.jpg" if suffix == 0 else f"{base}-{suffix}.jpg"


def parse(day: str, name: str) -> tuple[str, int] | None:
    """``(stamp, suffix)`` for a name that fits the layout inside ``day``, else None."""
    if not DAY_RE.fullmatch(day):
        return None
    match = NAME_RE.fullmatch(name)
    if match is None or match.group(1) != day.replace("-", ""):
        return None
    stamp = f"{match.group(1)}-{match.group(2)}"
    try:
        time.strptime(stamp, "%Y%m%d-%H%M%S")
    except ValueError:
        return None
    return stamp, int(match.group(3) or 0)


def stamp_time(stamp: str) -> float:
    """Unix time of a ``YYYYMMDD-HHMMSS`` stamp read as local time."""
    parsed = time.strptime(stamp, "%Y%m%d-%H%M%S")
    return time.mktime((*parsed[:8], -1))


@dataclass(frozen=True)
class Still:
    """One still on disk, as the index knows it."""

    day: str
    name: str
    time: float
    size: int
    suffix: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return (self.name[:15], self.suffix)

    @property
    def path(self) -> str:
        """``day/name``, relative to the stills folder."""
        return f"{self.day}/{self.name}"

    @property
    def stem(self) -> str:
        return self.name[:-4]


def _key(still: Still) -> tuple[str, int]:
    return still.key


class StillIndex:
    """Every still in the folder, oldest first, with per-day counts and the total size; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Still] = []
        self._by_path: dict[str, Still] = {}
        self._days: dict[str, int] = {}
        self._bytes = 0

    # --- building and changing ---------------------------------------------------

    def replace(self, stills: list[Still]) -> None:
        items = sorted(stills, key=_key)
        days: dict[str, int] = {}
        for still in items:
            days[still.day] = days.get(still.day, 0) + 1
        with self._lock:
            self._items = items
            self._by_path = {still.path: still for still in items}
            self._days = days
            self._bytes = sum(still.size for still in items)

    def add(self, still: Still) -> None:
        with self._lock:
            if still.path in self._by_path:
                self._remove_locked(self._by_path[still.path])
            bisect.insort(self._items, still, key=_key)
            self._by_path[still.path] = still
            self._days[still.day] = self._days.get(still.day, 0) + 1
            self._bytes += still.size

    def remove(self, still: Still) -> None:
        with self._lock:
            if self._by_path.get(still.path) == still:
                self._remove_locked(still)

    def _remove_locked(self, still: Still) -> None:
        items = self._items
        index = bisect.bisect_left(items, still.key, key=_key)
        while index < len(items) and items[index].key == still.key:
            if items[index].path == still.path:
                del items[index]
                break
            index += 1
        del self._by_path[still.path]
        left = self._days[still.day] - 1
        if left:
            self._days[still.day] = left
        else:
            del self._days[still.day]
        self._bytes -= still.size

    # --- reading -------------------------------------------------------------------

    def get(self, day: str, name: str) -> Still | None:
        return self._by_path.get(f"{day}/{name}")

    def count(self, day: str | None = None) -> int:
        with self._lock:
            return len(self._items) if day is None else self._days.get(day, 0)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def oldest(self) -> Still | None:
        with self._lock:
            return self._items[0] if self._items else None

    def newest_one(self) -> Still | None:
        with self._lock:
            return self._items[-1] if self._items else None

    def newest(self, offset: int = 0, limit: int = 50, day: str | None = None) -> list[Still]:
        """A page of stills, newest first, optionally of one day only."""
        with self._lock:
            low, high = self._range(day)
            end = high - max(0, offset)
            start = max(low, end - max(0, limit))
            return self._items[start:end][::-1] if end > low else []

    def of_day(self, day: str) -> list[Still]:
        """Every still of ``day``, oldest first."""
        with self._lock:
            low, high = self._range(day)
            return self._items[low:high]

    def days(self) -> list[tuple[str, int]]:
        """``(day, count)`` for each day that has stills, newest first."""
        with self._lock:
            return sorted(self._days.items(), reverse=True)

    def position(self, still: Still) -> tuple[Still | None, Still | None]:
        """The stills just older and just newer than ``still``."""
        with self._lock:
            index = bisect.bisect_left(self._items, still.key, key=_key)
            older = self._items[index - 1] if index > 0 else None
            if index < len(self._items) and self._items[index].key == still.key:
                index += 1
            newer = self._items[index] if index < len(self._items) else None
            return older, newer

    def _range(self, day: str | None) -> tuple[int, int]:
        if day is None:
            return 0, len(self._items)
        if not DAY_RE.fullmatch(day):
            return 0, 0  # "2026-11" would otherwise match a whole month by prefix
        compact = day.replace("-", "")
        low = bisect.bisect_left(self._items, (compact, -1), key=_key)
        high = bisect.bisect_left(self._items, (compact + "~", -1), key=_key)
        return low, high


def scan(root: Path) -> list[Still]:
    """Every file under ``root`` that fits the layout: regular files only, never symlinks."""
    stills: list[Still] = []
    try:
        days = list(os.scandir(root))
    except FileNotFoundError:
        return stills
    except OSError as exc:
        log.error("cannot list the stills folder %s: %s", root, exc)
        return stills
    for day_entry in days:
        if not DAY_RE.fullmatch(day_entry.name) or not day_entry.is_dir(follow_symlinks=False):
            continue
        try:
            entries = list(os.scandir(day_entry.path))
        except OSError as exc:
            log.warning("cannot list %s: %s", day_entry.path, exc)
            continue
        for entry in entries:
            parsed = parse(day_entry.name, entry.name)
            if parsed is None:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            stamp, suffix = parsed
            stills.append(Still(day_entry.name, entry.name, stamp_time(stamp), info.st_size, suffix))
    return stills


def clean_temp_files(root: Path) -> int:
    """Remove the temp files a crash left behind (only camd's own); returns how many."""
    removed = 0
    folders = [root]
    try:
        folders += [
            Path(e.path) for e in os.scandir(root) if DAY_RE.fullmatch(e.name) and e.is_dir(follow_symlinks=False)
        ]
    except OSError:
        return 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if TEMP_RE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError as exc:
                    log.warning("cannot remove leftover temp file %s: %s", entry.path, exc)
    return removed


def remove_empty_days(root: Path, days: list[str] | None = None) -> None:
    """Remove day folders that are empty (a folder with anything else in it stays)."""
    if days is None:
        try:
            days = [e.name for e in os.scandir(root) if DAY_RE.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
        except OSError:
            return
    for day in days:
        if not DAY_RE.fullmatch(day):
            continue
        try:
            os.rmdir(root / day)
        except OSError:
            pass  # not empty (someone else's files, or a still just saved), or already gone
