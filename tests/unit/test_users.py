"""Password checks: at most two slow hashes at once, a bounded wait for a slot, remembered logins skip the hash."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from camd.users import HASH_SLOTS, MAX_HASHES, Busy, Users, set_password

PASSWORD = "correct horse battery"


class WatchedSlots(threading.BoundedSemaphore):
    """A real semaphore that remembers how many holders it had at most."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.held = self.most = 0
        self._count_lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        got = super().acquire(blocking, timeout)
        if got:
            with self._count_lock:
                self.held += 1
                self.most = max(self.most, self.held)
        return got

    def release(self, n: int = 1) -> None:
        with self._count_lock:
            self.held -= n
        super().release(n)


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    set_password(path, "admin", PASSWORD)
    return path


def test_the_process_allows_two_hashes_at_once() -> None:
    assert MAX_HASHES == 2
    assert all(HASH_SLOTS.acquire(blocking=False) for _ in range(MAX_HASHES))
    try:
        assert not HASH_SLOTS.acquire(blocking=False)
    finally:
        for _ in range(MAX_HASHES):
            HASH_SLOTS.release()


def test_concurrent_checks_hash_two_at_a_time(users_file: Path) -> None:
    slots = WatchedSlots(MAX_HASHES)
    users = Users(users_file, slots=slots, hash_wait=60)
    outcomes: list[bool | str] = []

    def check(number: int) -> None:
        try:
            outcomes.append(users.verify("admin", f"wrong-{number}"))
        except Busy:
            outcomes.append("busy")

    threads = [threading.Thread(target=check, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes == [False] * 8
    assert slots.most == MAX_HASHES


def test_no_slot_within_the_wait_is_busy(users_file: Path) -> None:
    slots = threading.BoundedSemaphore(MAX_HASHES)
    users = Users(users_file, slots=slots, hash_wait=0.3)
    for _ in range(MAX_HASHES):
        slots.acquire()
    started = time.monotonic()
    with pytest.raises(Busy):
        users.verify("admin", PASSWORD)
    assert 0.25 <= time.monotonic() - started < 2


def test_a_remembered_login_needs_no_slot(users_file: Path) -> None:
    slots = threading.BoundedSemaphore(MAX_HASHES)
    users = Users(users_file, slots=slots, hash_wait=0.3)
    assert users.verify("admin", PASSWORD)
    for _ in range(MAX_HASHES):
        slots.acquire()
    started = time.monotonic()
    assert users.remembered("admin", PASSWORD)
    assert users.verify("admin", PASSWORD)
    assert time.monotonic() - started < 0.1
    assert not users.remembered("admin", "wrong")
