"""Faults from the machine in the users file: deleted, corrupted or opened up while camd runs.

camd keeps the last good set of users and says so in the log once; a good file
that comes back is picked up without a restart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.security import generate_password_hash

from camd.users import set_password
from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, PASSWORD, USER, Daemon

OTHER, OTHER_PASSWORD = "bob", "bobs own password"


@pytest.fixture
def daemon_with_two_users(tmp_path: Path) -> Iterator[Daemon]:
    state = tmp_path / "state"
    state.mkdir()
    set_password(state / "users", USER, PASSWORD)
    set_password(state / "users", OTHER, OTHER_PASSWORD)
    daemon = Daemon(state, ("--source", "test", "--width", "320", "--height", "240", *FAST_WARMUP)).start()
    yield daemon
    daemon.stop()


def status_as(daemon: Daemon, user: str, password: str) -> int:
    return requests.get(daemon.url("/api/status"), auth=(user, password), timeout=10).status_code


def test_deleted_users_file_keeps_the_last_good_users(daemon_with_two_users: Daemon) -> None:
    daemon = daemon_with_two_users
    users = daemon.state_dir / "users"
    assert status_as(daemon, USER, PASSWORD) == 200  # remembered from now on
    users.unlink()
    # camd looks at the file (at most once a second) when someone logs in.
    wait_until(lambda: status_as(daemon, USER, PASSWORD) == 200 and "is gone" in daemon.log, 10, what="the log")
    assert "is gone; keeping the 2 users read before" in daemon.log
    # bob never logged in before: his login is checked against the kept set, not a remembered one.
    assert status_as(daemon, OTHER, OTHER_PASSWORD) == 200
    assert status_as(daemon, USER, PASSWORD) == 200
    assert status_as(daemon, OTHER, "wrong") == 401
    time.sleep(2.5)
    status_as(daemon, USER, PASSWORD)
    gone = daemon.log.count("is gone")
    print(f"\nusers file deleted: logins still work; 'is gone' logged {gone} time(s) over 3+ s of requests")
    assert gone == 1
    # A new file is picked up without a restart.
    set_password(users, USER, "a new password")
    time.sleep(1.2)  # camd looks again at the next login a second after the last look (polling would trip the throttle)
    assert status_as(daemon, USER, "a new password") == 200
    assert status_as(daemon, OTHER, OTHER_PASSWORD) == 401


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("not UTF-8", b"\xff\xfe\x00garbage\n"),
        ("malformed line", b"admin\nbob:nohash\n"),
        ("half a write", b"admin:scrypt:32768:8:1$abc$"[:11]),
    ],
)
def test_corrupted_users_file_keeps_the_last_good_users(
    daemon_with_two_users: Daemon, name: str, damage: bytes
) -> None:
    daemon = daemon_with_two_users
    users = daemon.state_dir / "users"
    good = users.read_bytes()
    users.write_bytes(damage)
    wait_until(lambda: status_as(daemon, USER, PASSWORD) == 200 and "unreadable" in daemon.log, 10, what="the log")
    line = daemon.wait_for_log(r"users file .* is unreadable \((.*)\); keeping the users read before", 10)
    print(f"\n{name}: logged {line.group(0)!r}")
    assert status_as(daemon, OTHER, OTHER_PASSWORD) == 200
    assert status_as(daemon, USER, PASSWORD) == 200
    assert PASSWORD not in daemon.log and OTHER_PASSWORD not in daemon.log
    users.write_bytes(good)
    wait_until(lambda: status_as(daemon, OTHER, OTHER_PASSWORD) == 200 and daemon.log.count("loaded 2 user") > 1, 10)


def test_users_file_opened_to_others_at_runtime_is_not_trusted(daemon_with_two_users: Daemon) -> None:
    daemon = daemon_with_two_users
    users = daemon.state_dir / "users"
    # Someone adds a user in a file anyone may write (written whole, so camd never sees it private).
    tmp = users.with_name("users.new")
    tmp.write_text(users.read_text() + f"mallory:{generate_password_hash('added behind our back')}\n")
    tmp.chmod(0o666)
    os.replace(tmp, users)
    wait_until(lambda: status_as(daemon, OTHER, OTHER_PASSWORD) == 200 and "mode 0666" in daemon.log, 10)
    daemon.wait_for_log(r"is open to other users \(mode 0666\).*chmod 600", 10)
    assert status_as(daemon, "mallory", "added behind our back") == 401
    assert status_as(daemon, OTHER, OTHER_PASSWORD) == 200
    users.chmod(0o600)
    time.sleep(1.1)
    wait_until(lambda: status_as(daemon, "mallory", "added behind our back") == 200, 10, what="the file trusted again")
