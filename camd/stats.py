"""Thread-safe counters that the pipeline bumps and the status API reads."""

from __future__ import annotations

import threading
from collections import defaultdict


class Counters:
    """Named monotonically increasing counters, safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int | float] = defaultdict(int)

    def incr(self, name: str, amount: int | float = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def get(self, name: str) -> int | float:
        with self._lock:
            return self._values.get(name, 0)

    def snapshot(self, prefix: str = "") -> dict[str, int | float]:
        """Every counter whose name starts with ``prefix``, with the prefix removed."""
        with self._lock:
            return {
                name[len(prefix) :]: value for name, value in sorted(self._values.items()) if name.startswith(prefix)
            }
