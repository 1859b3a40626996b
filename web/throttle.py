"""Login throttling: too many failed logins from one address get 429 for a while.

Each address (an IPv6 client's whole /64, which one machine usually owns) may
fail ``allowed`` logins; the next failure blocks it for ``lockout`` seconds, and
every further failure once the block ends doubles that, up to ``lockout_max``.
A successful login clears the address, and failures are forgotten after
``window`` seconds without one. The table is an LRU capped at ``max_addresses``
entries, so a flood of distinct addresses costs bounded memory (the oldest are
forgotten first).

Behind a reverse proxy every request comes from the proxy's address, so the
throttle then applies to everyone at once; camd does not trust
``X-Forwarded-For``, which any client can send.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app

ALLOWED_FAILURES = 5
WINDOW = 600.0
LOCKOUT = 60.0
LOCKOUT_MAX = 900.0
MAX_ADDRESSES = 4096
EXTENSION = "camd.throttle"


@dataclass
class _Entry:
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0


def address_key(address: str | None) -> str:
    """What one client is: its IPv4 address, or the /64 its IPv6 address is in."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Throttle:
    """Failed logins per address, with a bounded memory; thread-safe."""

    def __init__(
        self,
        *,
        allowed: int = ALLOWED_FAILURES,
        window: float = WINDOW,
        lockout: float = LOCKOUT,
        lockout_max: float = LOCKOUT_MAX,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed, self.window = allowed, window
        self.lockout, self.lockout_max = lockout, lockout_max
        self.max_addresses = max_addresses
        self.clock = clock
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def retry_after(self, address: str | None) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        key = address_key(address)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return 0
            left = entry.blocked_until - self.clock()
        return math.ceil(left) if left > 0 else 0

    def failed(self, address: str | None) -> int:
        """Count a failed login; returns the seconds ``address`` is now blocked for (0: not blocked)."""
        key = address_key(address)
        now = self.clock()
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None or self._stale(entry, now):
                entry = _Entry()
            entry.failures += 1
            entry.last_failure = now
            beyond = entry.failures - self.allowed
            if beyond > 0:
                entry.blocked_until = now + min(self.lockout * 2 ** min(beyond - 1, 16), self.lockout_max)
            self._entries[key] = entry  # the most recently used go last
            self._expire(now)
            left = entry.blocked_until - now
        return math.ceil(left) if left > 0 else 0

    def succeeded(self, address: str | None) -> None:
        """A login worked: forget the address's failures."""
        key = address_key(address)
        with self._lock:
            self._entries.pop(key, None)

    def _expire(self, now: float) -> None:
        entries = self._entries
        while len(entries) > self.max_addresses:
            entries.popitem(last=False)
        # Forget the oldest entries that are neither blocked nor recent (the front is the oldest).
        while entries:
            if not self._stale(next(iter(entries.values())), now):
                break
            entries.popitem(last=False)

    def _stale(self, entry: _Entry, now: float) -> bool:
        """True once an entry is neither blocked nor has failed within ``window``."""
        return now - max(entry.last_failure, entry.blocked_until) > self.window


def init_app(app: Flask, throttle: Throttle | None = None) -> Throttle:
    app.extensions[EXTENSION] = throttle or Throttle()
    return app.extensions[EXTENSION]


def current() -> Throttle:
    """The throttle of the app handling the current request."""
    throttle: Throttle = current_app.extensions[EXTENSION]
    return throttle


def too_many(retry_after: int) -> Response:
    from web.errors import error_response

    return error_response(429, "Too many wrong passwords came from your address.", retry_after=retry_after)
