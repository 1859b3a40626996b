"""Login throttling, unknown user vs wrong password, and credentials kept out of logs."""

from __future__ import annotations

import base64
import http.client
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from camd.http import Fanout
from camd.hub import Hub
from camd.settings import load
from camd.users import Users, UsersError, set_password
from camd.web import create_app
from camd.web.throttle import ALLOWED_FAILURES, Throttle, address_key
from tests.support.daemon import FAST_WARMUP, PASSWORD, REPO, USER, Daemon


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --- the table itself ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_blocks_after_allowed_failures_and_a_success_clears() -> None:
    clock = Clock()
    throttle = Throttle(allowed=3, lockout=60, clock=clock)
    assert [throttle.failed("10.0.0.1") for _ in range(3)] == [0, 0, 0]
    assert throttle.retry_after("10.0.0.1") == 0
    assert throttle.failed("10.0.0.1") == 60
    assert throttle.retry_after("10.0.0.1") == 60
    assert throttle.retry_after("10.0.0.2") == 0
    clock.now += 61
    assert throttle.retry_after("10.0.0.1") == 0
    assert throttle.failed("10.0.0.1") == 120, "each failure after a block doubles it"
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0 and len(throttle) == 0


def test_failures_are_forgotten_after_the_window() -> None:
    clock = Clock()
    throttle = Throttle(allowed=2, window=100, clock=clock)
    throttle.failed("10.0.0.1")
    throttle.failed("10.0.0.1")
    clock.now += 101
    assert throttle.failed("10.0.0.1") == 0
    clock.now += 1000
    throttle.failed("10.0.0.9")
    assert len(throttle) == 1, "stale entries expire"


def test_table_stays_bounded_under_a_flood_of_addresses() -> None:
    throttle = Throttle(max_addresses=1000)
    started = time.perf_counter()
    for number in range(100_000):
        throttle.failed(f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}")
    elapsed = time.perf_counter() - started
    each = elapsed * 1e6 / 100_000
    print(f"\nthrottle: 100000 distinct addresses -> {len(throttle)} entries kept, {each:.1f} us each")
    assert len(throttle) == 1000
    # A blocked address is never the one pushed out by newcomers.
    for _ in range(ALLOWED_FAILURES + 1):
        throttle.failed("192.0.2.1")
    for number in range(999):
        throttle.failed(f"172.16.{number >> 8}.{number & 255}")
    assert throttle.retry_after("192.0.2.1") > 0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
        (None, ""),
    ],
)
def test_address_key(address: str | None, key: str) -> None:
    assert address_key(address) == key


# --- in the app ------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    settings = load({"state_dir": str(tmp_path), "source": "test"}, environ={})
    set_password(settings.users_path, USER, PASSWORD)
    hub = Hub(80)
    hub.publish(jpeg=b"\xff\xd8" + bytes(300) + b"\xff\xd9")
    fanout = Fanout(hub, 4)
    yield create_app(settings, hub, fanout, Users(settings.users_path), None)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def get(client: FlaskClient, address: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    response = client.get("/api/status", headers=headers or {}, environ_base={"REMOTE_ADDR": address})
    return response.status_code, dict(response.headers), response.data


def test_nth_failure_answers_429_and_other_addresses_are_unaffected(client: FlaskClient) -> None:
    statuses = [get(client, "198.51.100.1", basic(USER, f"wrong{n}"))[0] for n in range(ALLOWED_FAILURES + 1)]
    print(f"\nthrottle: statuses of {len(statuses)} failed logins from one address: {statuses}")
    assert statuses == [401] * ALLOWED_FAILURES + [429]
    status, headers, _ = get(client, "198.51.100.1", basic(USER, PASSWORD))
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 900, "blocked even with the right password"
    assert get(client, "198.51.100.2", basic(USER, PASSWORD))[0] == 200
    assert get(client, "198.51.100.1")[0] == 429
    # The public pages stay public.
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code in (200, 503)


def test_a_success_clears_the_count(client: FlaskClient) -> None:
    for round_ in range(3):
        for n in range(ALLOWED_FAILURES):
            assert get(client, "198.51.100.3", basic(USER, f"wrong{round_}{n}"))[0] == 401
        assert get(client, "198.51.100.3", basic(USER, PASSWORD))[0] == 200


def test_requests_without_credentials_are_not_failures(client: FlaskClient) -> None:
    for _ in range(ALLOWED_FAILURES * 3):
        assert get(client, "198.51.100.4")[0] == 401
    assert get(client, "198.51.100.4", basic(USER, PASSWORD))[0] == 200


def test_unknown_user_and_wrong_password_look_the_same(client: FlaskClient) -> None:
    unknown = get(client, "198.51.100.5", basic("nobody", "wrong"))
    wrong = get(client, "198.51.100.6", basic(USER, "wrong"))
    assert unknown[0] == wrong[0] == 401
    assert unknown[2] == wrong[2]
    assert unknown[1] == wrong[1]


def test_unknown_user_costs_the_same_slow_hash(tmp_path: Path) -> None:
    path = tmp_path / "users"
    set_password(path, USER, PASSWORD)
    users = Users(path)
    unknown: list[float] = []
    wrong: list[float] = []
    for n in range(8):  # interleaved so that a busy machine slows both alike
        for name, into in (("nobody", unknown), (USER, wrong)):
            started = time.perf_counter()
            assert not users.verify(name, f"guess-{n}")
            into.append(time.perf_counter() - started)
    u, w = statistics.median(unknown), statistics.median(wrong)
    print(f"\nverify: unknown user {u * 1000:.1f} ms, wrong password {w * 1000:.1f} ms (medians of 8)")
    assert 0.5 < u / w < 2.0


# --- the users file's mode -------------------------------------------------------------------


def test_users_file_open_to_others_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "users"
    set_password(path, USER, PASSWORD)
    path.chmod(0o644)
    with pytest.raises(UsersError, match=r"mode 0644.*chmod 600"):
        Users(path)


def test_daemon_refuses_a_users_file_others_can_read(tmp_path: Path) -> None:
    users = tmp_path / "users"
    set_password(users, USER, PASSWORD)
    users.chmod(0o640)
    result = subprocess.run(
        [sys.executable, "-m", "camd", "run", "--source", "test", "--port", "0", "--host", "127.0.0.1",
         "--state-dir", str(tmp_path), "--users-file", str(users)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    print(f"\nexit {result.returncode}: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 2
    assert f"chmod 600 {users}" in result.stderr and "Traceback" not in result.stderr


# --- against the real daemon -----------------------------------------------------------------


def request_from(daemon: Daemon, source: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/api/status", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def test_daemon_throttles_by_address_and_keeps_credentials_out_of_the_log(daemon_factory: object) -> None:
    daemon: Daemon = daemon_factory("--source", "test", "--log-level", "debug", *FAST_WARMUP)  # type: ignore[operator]
    guesses = [f"guess-{n}-secret" for n in range(ALLOWED_FAILURES + 1)]
    statuses = [request_from(daemon, "127.0.0.1", basic(USER, guess))[0] for guess in guesses]
    blocked, headers = request_from(daemon, "127.0.0.1", basic(USER, PASSWORD))
    other, _ = request_from(daemon, "127.0.0.2", basic(USER, PASSWORD))
    print(f"\ndaemon: failed logins from 127.0.0.1 -> {statuses}; then the right password -> {blocked} "
          f"(Retry-After {headers.get('Retry-After')}); from 127.0.0.2 -> {other}")  # fmt: skip
    assert statuses == [401] * ALLOWED_FAILURES + [429]
    assert blocked == 429 and int(headers["Retry-After"]) > 0
    assert other == 200
    # Malformed headers as well: nothing of any of them may reach the log.
    odd = ["Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"no-colon-secret").decode(), "Bearer tok-secret"]
    for value in odd:
        request_from(daemon, "127.0.0.3", {"Authorization": value})
    time.sleep(0.5)
    log = daemon.log
    assert "DEBUG" in log, "the daemon logged at debug level"
    for secret in [PASSWORD, *guesses, *(basic(USER, g)["Authorization"].split()[1] for g in guesses)]:
        assert secret not in log
    for value in odd:
        assert value.split()[1] not in log
    assert "secret" not in log
