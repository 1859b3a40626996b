"""The activity log: one JSON-lines file per day (``YYYY-MM-DD.jsonl``), append-only and crash-safe.

JSON lines rather than SQLite: camd writes a line when an event starts or ends
and one per minute that saw activity, a few hundred small lines a day; each is
one ``write`` on an ``O_APPEND`` file followed by ``fsync``, so a crash can at
worst cut the last line short, and a reader skips a line that does not parse.
A day is one file, so pruning a day with its stills is deleting one file, and
the log stays readable with ``cat`` and ``jq``. SQLite in WAL mode would add a
database, a schema and checkpoints for no gain at this size.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camd.stills_index import DAY_RE, day_of

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"


def day_start(day: str) -> float:
    """Unix time of local midnight starting ``day`` (YYYY-MM-DD)."""
    parsed = time.strptime(day, "%Y-%m-%d")
    return time.mktime((*parsed[:8], -1))


def day_minutes(day: str) -> int:
    """How many minutes ``day`` has in local time (1440, or 1380/1500 when the clocks change)."""
    start = day_start(day)
    following = time.localtime(start + 26 * 3600)
    end = time.mktime((following.tm_year, following.tm_mon, following.tm_mday, 0, 0, 0, 0, 0, -1))
    return round((end - start) / 60)


@dataclass
class Day:
    """What the log holds for one day: its events (oldest first) and the level of each active minute."""

    events: list[dict[str, Any]] = field(default_factory=list)
    minutes: dict[int, float] = field(default_factory=dict)  # minute start (Unix) -> level 0-1


class ActivityLog:
    """Appends records to the day's file and reads a day back; thread-safe."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._checked: set[str] = set()  # days whose file was checked for a cut-off last line
        self.failures = 0

    def path(self, day: str) -> Path:
        return self.root / f"{day}{SUFFIX}"

    def append(self, record: dict[str, Any], when: float) -> None:
        """Add one record to the file of ``when``'s day; logs and counts (never raises) on disk trouble."""
        day = day_of(when)
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        with self._lock:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path(day), os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    if day not in self._checked:
                        line = self._after_cut_line(fd) + line
                        self._checked.add(day)
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self.failures += 1
                log.error("cannot write the activity log %s: %s", self.path(day), exc)

    @staticmethod
    def _after_cut_line(fd: int) -> bytes:
        """A newline when the file's last line was cut short by a crash, so the next record starts clean."""
        size = os.fstat(fd).st_size
        if size == 0:
            return b""
        return b"" if os.pread(fd, 1, size - 1) == b"\n" else b"\n"

    def read(self, day: str) -> Day:
        """The day's events and minute levels; lines that do not parse (a crash cut them) are skipped."""
        result = Day()
        if not DAY_RE.fullmatch(day):
            return result
        try:
            data = self.path(day).read_bytes()
        except FileNotFoundError:
            return result
        except OSError as exc:
            log.warning("cannot read the activity log %s: %s", self.path(day), exc)
            return result
        open_events: dict[float, dict[str, Any]] = {}
        event: dict[str, Any] | None
        for raw in data.splitlines():
            try:
                record = json.loads(raw)
                kind = record["kind"]
                if kind == "minute":
                    minute, level = float(record["minute"]), float(record["level"])
                    result.minutes[int(minute)] = max(level, result.minutes.get(int(minute), 0.0))
                elif kind == "start":
                    start = float(record["start"])
                    event = {"start": start, "end": None, "peak": 0.0, "peak_time": start, "still": None}
                    open_events[start] = event
                    result.events.append(event)
                elif kind == "end":
                    start = float(record["start"])
                    event = open_events.pop(start, None)
                    if event is None:  # its start line was lost
                        event = {"start": start}
                        result.events.append(event)
                    event.update(
                        end=float(record["end"]), peak=float(record["peak"]), peak_time=float(record["peak_time"]),
                        still=record.get("still") if isinstance(record.get("still"), str) else None,
                    )  # fmt: skip
            except (ValueError, KeyError, TypeError):
                continue
        result.events.sort(key=lambda event: event["start"])
        return result

    def days(self) -> list[str]:
        """The days that have a log, oldest first."""
        try:
            names = [entry.name for entry in os.scandir(self.root)]
        except OSError:
            return []
        return sorted(name[: -len(SUFFIX)] for name in names if name.endswith(SUFFIX) and DAY_RE.fullmatch(name[:10]))

    def prune(self, before: str) -> list[str]:
        """Delete the logs of days before ``before`` (YYYY-MM-DD); returns those days."""
        deleted = []
        for day in self.days():
            if day >= before:
                break
            try:
                self.path(day).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot delete the activity log %s: %s", self.path(day), exc)
                continue
            deleted.append(day)
            self._checked.discard(day)
        if deleted:
            log.info("deleted the activity log of %s (its stills are gone)", ", ".join(deleted))
        return deleted
