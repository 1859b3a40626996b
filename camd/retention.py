"""Retention: delete the oldest stills by age, by count and to keep disk space free.

Only stills in the index are ever deleted, and the index only holds regular files
whose names camd itself writes; anything else in the folder is left alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camd.stills_index import Still, StillIndex, remove_empty_days

log = logging.getLogger(__name__)

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_age: float = 0.0  # seconds; 0 keeps stills of any age
    max_count: int = 0  # 0: no limit
    min_free_bytes: int = 0  # 0: no limit


def free_bytes(path: Path) -> int:
    """Bytes available to this user on the file system holding ``path``."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def why_delete(
    oldest: Still, count: int, limits: Limits, *, now: float, free: Callable[[], int | None], keep: int
) -> str | None:
    """Which limit the oldest still breaks, if any."""
    if limits.max_age and oldest.time < now - limits.max_age:
        return "older than stills_max_age"
    if limits.max_count and count > limits.max_count:
        return "more than stills_max_count"
    if limits.min_free_bytes and count > keep:
        available = free()
        if available is not None and available < limits.min_free_bytes:
            return "less free disk than stills_min_free_mb"
    return None


def prune(
    index: StillIndex,
    root: Path,
    limits: Limits,
    *,
    now: float,
    free_space: Callable[[Path], int] = free_bytes,
    keep_newest: int = 1,
) -> list[Still]:
    """Delete the oldest stills until every limit holds; returns what was deleted.

    The free-space limit never deletes the newest ``keep_newest`` stills: when the
    disk is full of other things, wiping the last picture helps nobody.
    """

    def free() -> int | None:
        try:
            return free_space(root)
        except OSError as exc:
            log.warning("cannot tell the free space of %s: %s", root, exc)
            return None

    deleted: list[Still] = []
    while (oldest := index.oldest()) is not None:
        why = why_delete(oldest, index.count(), limits, now=now, free=free, keep=keep_newest)
        if why is None:
            break
        try:
            os.unlink(root / oldest.day / oldest.name)
        except FileNotFoundError:
            pass  # already gone: the index was behind
        except OSError as exc:
            log.error("cannot delete still %s: %s", oldest.path, exc)
            break
        index.remove(oldest)
        deleted.append(oldest)
        log.info("deleted still %s (%s)", oldest.path, why)
    if deleted:
        remove_empty_days(root, sorted({still.day for still in deleted if index.count(still.day) == 0}))
    if limits.min_free_bytes and index.count() <= keep_newest:
        available = free()
        if available is not None and available < limits.min_free_bytes:
            log.warning(
                "only %d MB free on the stills disk, below stills_min_free_mb=%d, and no older stills left to delete",
                available // MB, limits.min_free_bytes // MB,
            )  # fmt: skip
    return deleted
