"""Login throttling: too many failed logins from one address get 429 for a while.

Each address (an IPv6 client's whole /64, which one machine usually owns) may
fail ``allowed`` logins; the next failure blocks it for ``lockout`` seconds, and
every further failure once the block ends doubles that, up to ``lockout_max``.
A successful login clears the address, and failures are forgotten after
``window`` seconds without one.

An attempt is counted before its password is checked (``begin``): an address
may have only as many checks in flight as it has failures left, so a burst of
guesses meets 429 at once instead of after every slow hash.

The table holds at most ``max_addresses`` entries. When it is full, a new
address takes the place of the entry least worth keeping: one that is not
blocked, with the fewest failures, and of those the one that failed longest
ago. A blocked address is never forgotten before its block ends, so other
addresses cannot flush it out. When every entry is blocked, the failures of
addresses that find no place are counted together in one shared entry, which
blocks them all together by the same rule.

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
from typing import NamedTuple

from flask import Flask, Response, current_app

from camd.web.errors import error_response

ALLOWED_FAILURES = 5
WINDOW = 600.0
LOCKOUT = 60.0
LOCKOUT_MAX = 900.0
MAX_ADDRESSES = 4096
IN_FLIGHT_RETRY = 2  # Retry-After for an attempt refused while the address's other checks run
OVERFLOW = "*"  # the shared entry of addresses that find no place in a table full of blocked ones
EXTENSION = "camd.throttle"


@dataclass
class _Entry:
    failures: int = 0
    last_failure: float = 0.0
    blocked_until: float = 0.0


class Failure(NamedTuple):
    """A failed login as counted: under which key, the count, and the block it started (0: none)."""

    key: str
    failures: int
    blocked_for: int


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
    """Failed logins per address, with a bounded memory that other addresses cannot flush; thread-safe."""

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
        self._entries: dict[str, _Entry] = {}
        # Keys by failure count (all counts above ``allowed`` share the last level), oldest failure first:
        # the cheapest entry to forget is found at the front of the lowest level without a search.
        self._levels: list[collections.OrderedDict[str, None]] = [collections.OrderedDict() for _ in range(allowed + 2)]
        self._overflow: _Entry | None = None
        self._in_flight: dict[str, int] = {}
        self._no_room_until = 0.0  # until then every entry is blocked: no need to look for room
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def retry_after(self, address: str | None) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        key = address_key(address)
        with self._lock:
            return self._blocked_for(key, self.clock())

    def begin(self, address: str | None) -> int:
        """Count an attempt before its password is checked: 0 to go ahead (then ``finish`` it), else Retry-After."""
        key = address_key(address)
        now = self.clock()
        with self._lock:
            if wait := self._blocked_for(key, now):
                return wait
            entry = self._entries.get(key)
            failures = entry.failures if entry is not None and not self._stale(entry, now) else 0
            in_flight = self._in_flight.get(key, 0)
            if in_flight >= max(1, self.allowed + 1 - failures):
                return IN_FLIGHT_RETRY
            self._in_flight[key] = in_flight + 1
            return 0

    def finish(self, address: str | None, ok: bool | None) -> Failure | None:
        """End an attempt ``begin`` let through: ``ok`` True clears the address, False counts a failure,
        None (the password could not be checked) only ends it."""
        key = address_key(address)
        with self._lock:
            left = self._in_flight.get(key, 0) - 1
            if left > 0:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)
            if ok:
                self._forget(key)
            elif ok is False:
                return self._count(key, self.clock())
        return None

    def failed(self, address: str | None) -> int:
        """Count a failed login; returns the seconds ``address`` is now blocked for (0: not blocked)."""
        key = address_key(address)
        now = self.clock()
        with self._lock:
            self._count(key, now)
            return self._blocked_for(key, now)

    def succeeded(self, address: str | None) -> None:
        """A login worked: forget the address's failures."""
        key = address_key(address)
        with self._lock:
            self._forget(key)

    # --- inside the lock ----------------------------------------------------------------------

    def _blocked_for(self, key: str, now: float) -> int:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._overflow  # an address without a place shares the overflow's fate
        if entry is None:
            return 0
        left = entry.blocked_until - now
        return math.ceil(left) if left > 0 else 0

    def _level(self, entry: _Entry) -> collections.OrderedDict[str, None]:
        return self._levels[min(entry.failures, self.allowed + 1)]

    def _forget(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._level(entry).pop(key, None)

    def _count(self, key: str, now: float) -> Failure:
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            self._level(entry).pop(key, None)
            if self._stale(entry, now):
                entry = self._entries[key] = _Entry()
        elif self._make_room(now):
            entry = self._entries[key] = _Entry()
        else:
            if self._overflow is None or self._stale(self._overflow, now):
                self._overflow = _Entry()
            blocked_for = self._bump(self._overflow, now)
            return Failure(OVERFLOW, self._overflow.failures, blocked_for)
        blocked_for = self._bump(entry, now)
        self._level(entry)[key] = None  # the newest failure goes last
        return Failure(key, entry.failures, blocked_for)

    def _bump(self, entry: _Entry, now: float) -> int:
        """Add a failure to ``entry``; returns the block it starts, in seconds (0: none)."""
        entry.failures += 1
        entry.last_failure = now
        beyond = entry.failures - self.allowed
        if beyond <= 0:
            return 0
        length = min(self.lockout * 2 ** min(beyond - 1, 16), self.lockout_max)
        entry.blocked_until = now + length
        return math.ceil(length)

    def _make_room(self, now: float) -> bool:
        """True when a new entry fits, after forgetting the one least worth keeping if the table is full."""
        if len(self._entries) < self.max_addresses:
            return True
        if now < self._no_room_until:
            return False
        victim = self._victim(now)
        if victim is None:
            return False
        self._forget(victim)
        return True

    def _victim(self, now: float) -> str | None:
        """The unblocked entry with the fewest failures that failed longest ago; None when all are blocked."""
        for level in self._levels[: self.allowed + 1]:  # entries there have never reached a block
            for key in level:
                if key not in self._in_flight:
                    return key
        best: tuple[int, str] | None = None
        soonest = math.inf
        for key in self._levels[self.allowed + 1]:
            entry = self._entries[key]
            if entry.blocked_until > now:
                soonest = min(soonest, entry.blocked_until)
            elif key not in self._in_flight and (best is None or entry.failures < best[0]):
                best = (entry.failures, key)
        if best is None:
            # No block ends before ``soonest`` and no entry can join a full table: skip the search until then.
            self._no_room_until = soonest if soonest < math.inf else now + 1.0
            return None
        return best[1]

    def _expire(self, now: float) -> None:
        """Forget entries that are neither blocked nor recent (each level's front is its oldest)."""
        for level in self._levels:
            while level:
                key = next(iter(level))
                if not self._stale(self._entries[key], now):
                    break
                self._forget(key)
        if self._overflow is not None and self._stale(self._overflow, now):
            self._overflow = None

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
    return error_response(429, retry_after=retry_after)  # WORDS[429] says what happened
