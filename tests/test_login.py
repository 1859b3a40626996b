"""Logins in the app (its test client): every method checked, counted before the hash, traced in the log and metrics.

The daemon-level attacks (a burst's memory, OPTIONS, Host, flushing the throttle
table from many addresses) are in tests/test_login_daemon.py.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from camd.hub import Hub
from camd.settings import load
from camd.stills import StillsWriter
from camd.users import MAX_HASHES, Users, set_password
from camd.web import create_app
from camd.web.throttle import ALLOWED_FAILURES

USER, PASSWORD = "admin", "correct horse battery"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Setup:
    """An app wired as the daemon wires it, with its users, hash slots and stills folder at hand."""

    def __init__(self, tmp_path: Path) -> None:
        from camd.http import Fanout

        empty = tmp_path / "camd.toml"
        empty.write_text("")
        self.settings = load({"state_dir": str(tmp_path), "source": "test"}, environ={}, config=empty)
        set_password(self.settings.users_path, USER, PASSWORD)
        self.slots = threading.BoundedSemaphore(MAX_HASHES)
        self.users = Users(self.settings.users_path, slots=self.slots, hash_wait=0.5)
        self.hub = Hub(80)
        self.hub.publish(jpeg=b"\xff\xd8" + bytes(300) + b"\xff\xd9")
        self.stills = StillsWriter(self.settings, self.hub)
        self.app: Flask = create_app(self.settings, self.hub, Fanout(self.hub, 4), self.users, self.stills)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    yield Setup(tmp_path)


@pytest.fixture
def client(setup: Setup) -> FlaskClient:
    return setup.app.test_client()


def private_rules(app: Flask) -> list[str]:
    return sorted(
        rule.rule for rule in app.url_map.iter_rules() if rule.endpoint not in {"pages.index", "api.healthz", "static"}
    )


# --- OPTIONS is no login ---------------------------------------------------------------------


def test_options_without_a_login_is_401_and_reveals_nothing(client: FlaskClient) -> None:
    unknown = client.options("/no-such-route")
    assert unknown.status_code == 401
    for path in ("/api/status", "/live", "/stills/", "/metrics", "/snapshot.jpg", "/api/stills"):
        response = client.options(path)
        assert response.status_code == 401, path
        assert "Allow" not in response.headers, path
        assert response.data == unknown.data and response.headers["WWW-Authenticate"] == 'Basic realm="camd"'


def test_options_with_a_wrong_login_never_clears_the_count(client: FlaskClient) -> None:
    where = {"REMOTE_ADDR": "198.51.100.20"}
    statuses = []
    for round_ in range(3):
        for n in range(ALLOWED_FAILURES - 1):
            statuses.append(
                client.get("/api/status", headers=basic(USER, f"w{round_}{n}"), environ_base=where).status_code
            )
        statuses.append(
            client.options("/api/status", headers=basic(USER, f"o{round_}"), environ_base=where).status_code
        )
    print(f"\nwrong GETs with a wrong OPTIONS after every {ALLOWED_FAILURES - 1}: {statuses}")
    assert statuses[ALLOWED_FAILURES] == 429 and set(statuses[ALLOWED_FAILURES:]) == {429}


def test_options_with_a_good_login_answers(client: FlaskClient) -> None:
    response = client.options("/api/status", headers=basic(USER, PASSWORD))
    assert response.status_code == 200 and "GET" in response.headers["Allow"]


# --- counted before the hash, two hashes at a time -------------------------------------------


def test_an_empty_password_counts_like_any_failure(client: FlaskClient) -> None:
    where = {"REMOTE_ADDR": "198.51.100.21"}
    statuses = [client.get("/api/status", headers=basic(USER, ""), environ_base=where).status_code for _ in range(8)]
    assert statuses == [401] * ALLOWED_FAILURES + [429] * 3


def test_a_burst_from_one_address_meets_429_before_the_hashes_finish(setup: Setup) -> None:
    finished: list[tuple[float, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(30)

    def guess(number: int) -> None:
        client = setup.app.test_client()
        start.wait()
        headers = basic(USER, f"guess-{number}")
        response = client.get("/api/status", headers=headers, environ_base={"REMOTE_ADDR": "198.51.100.22"})
        with lock:
            finished.append((time.monotonic(), response.status_code))

    setup.users.hash_wait = 30  # every admitted guess gets its hash: the count must be right without 503s
    threads = [threading.Thread(target=guess, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    statuses = [status for _, status in sorted(finished)]
    print(f"\n30 concurrent wrong passwords from one address, in the order they were answered: {statuses}")
    assert len(statuses) == 30 and set(statuses) == {401, 429}
    assert statuses.count(401) <= ALLOWED_FAILURES
    # Refused before hashing: most of the 429s come back before the first hash is done (its 401).
    assert statuses.index(401) >= 20


def test_no_hash_slot_within_the_wait_is_503_with_retry_after(setup: Setup, client: FlaskClient) -> None:
    for _ in range(MAX_HASHES):
        setup.slots.acquire()
    try:
        started = time.monotonic()
        response = client.get(
            "/api/status", headers=basic(USER, "maybe"), environ_base={"REMOTE_ADDR": "198.51.100.23"}
        )
        waited = time.monotonic() - started
    finally:
        for _ in range(MAX_HASHES):
            setup.slots.release()
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert waited < 2
    # The check that never ran is no failure: the address still has all its tries.
    statuses = [
        client.get(
            "/api/status", headers=basic(USER, f"w{n}"), environ_base={"REMOTE_ADDR": "198.51.100.23"}
        ).status_code
        for n in range(ALLOWED_FAILURES + 1)
    ]
    assert statuses == [401] * ALLOWED_FAILURES + [429]


def test_a_remembered_login_needs_no_hash_slot(setup: Setup, client: FlaskClient) -> None:
    assert client.get("/api/status", headers=basic(USER, PASSWORD)).status_code == 200
    for _ in range(MAX_HASHES):
        setup.slots.acquire()
    try:
        assert client.get("/api/status", headers=basic(USER, PASSWORD)).status_code == 200
    finally:
        for _ in range(MAX_HASHES):
            setup.slots.release()


# --- the trace -------------------------------------------------------------------------------


def test_failures_and_lockouts_are_logged_escaped_and_counted(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    where = {"REMOTE_ADDR": "203.0.113.9"}
    client.get("/api/status", headers=basic("bob", "hunter2-secret"), environ_base=where)
    client.get("/api/status", headers=basic("eve\nINFO forged x' from 192.0.2.66", "pw-secret"), environ_base=where)
    for n in range(ALLOWED_FAILURES - 1):
        client.get("/api/status", headers=basic("bob", f"again-{n}-secret"), environ_base=where)
    client.get("/api/status", headers=basic("bob", "blocked-secret"), environ_base=where)  # refused unchecked
    lines = [record.getMessage() for record in caplog.records if record.name == "camd.web.auth"]
    print("\n" + "\n".join(lines))
    assert lines[0] == "login failed for user 'bob' from 203.0.113.9"
    assert lines[1] == "login failed for user 'eve\\x0aINFO forged x\\x27 from 192.0.2.66' from 203.0.113.9"
    assert lines[-1] == f"login lockout for 203.0.113.9 for 60 s after {ALLOWED_FAILURES + 1} failures"
    assert sum(line.startswith("login failed") for line in lines) == ALLOWED_FAILURES + 1
    assert all(record.levelno >= logging.INFO for record in caplog.records if record.name == "camd.web.auth")
    assert "secret" not in caplog.text
    metrics = client.get("/metrics", headers=basic(USER, PASSWORD), environ_base={"REMOTE_ADDR": "203.0.113.10"})
    text = metrics.get_data(as_text=True)
    assert f"camd_login_failures_total {float(ALLOWED_FAILURES + 1)}" in text
    assert "camd_login_lockouts_total 1.0" in text


def test_request_paths_in_the_log_are_escaped(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="camd.web.headers")
    client.get("/x%0aWARNING camd.web.auth: login failed for user 'a' from 192.0.2.1", headers=basic(USER, PASSWORD))
    messages = [record.getMessage() for record in caplog.records if record.name == "camd.web.headers"]
    assert messages and all("\n" not in message for message in messages)
    assert any("/x\\x0aWARNING" in message for message in messages)


# --- redirects, caching, URLs ----------------------------------------------------------------


def test_redirects_are_relative_whatever_the_host(client: FlaskClient) -> None:
    for host in ("evil.example", "evil.example:8443", "[2001:db8::1]"):
        response = client.get("/stills", headers={**basic(USER, PASSWORD), "Host": host})
        assert response.status_code in (301, 302, 307, 308)
        assert response.headers["Location"] == "/stills/", host
    response = client.get("/stills?day=2024-01-02", headers={**basic(USER, PASSWORD), "Host": "evil.example"})
    assert response.headers["Location"] == "/stills/?day=2024-01-02"


def save_still(setup: Setup) -> tuple[Path, str]:
    """A still of now in the folder, indexed by the writer (retention would remove an old one); and its URL."""
    import cv2
    import numpy as np

    day, name = time.strftime("%Y-%m-%d"), time.strftime("%Y%m%d-%H%M%S.jpg")
    folder = setup.settings.stills_path / day
    folder.mkdir(parents=True, exist_ok=True)
    picture = np.zeros((120, 160, 3), np.uint8)
    picture[:, :80] = (40, 200, 90)
    ok, data = cv2.imencode(".jpg", picture)
    assert ok
    (folder / name).write_bytes(data.tobytes())
    setup.stills.start()
    setup.stills.stop()
    return folder / name, f"/stills/{day}/{name}"


def test_stills_are_cached_privately_with_an_etag_of_size_and_mtime(setup: Setup, client: FlaskClient) -> None:
    path, url = save_still(setup)
    first = client.get(url, headers=basic(USER, PASSWORD))
    thumb = client.get(url + "?thumb=1", headers=basic(USER, PASSWORD))
    for response in (first, thumb):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    # The same file moved to another inode (a restore from backup, a copy) keeps its ETag: no inode in it.
    info = path.stat()
    copy = path.with_suffix(".tmp")
    shutil.copyfile(path, copy)
    os.replace(copy, path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_ino != info.st_ino
    second = client.get(url, headers=basic(USER, PASSWORD))
    assert second.headers["ETag"] == first.headers["ETag"]
    assert format(info.st_ino, "x") not in first.headers["ETag"].strip('"').split("-")[2:]
    assert client.get(url, headers={**basic(USER, PASSWORD), "If-None-Match": first.headers["ETag"]}).status_code == 304


def test_still_urls_come_from_the_web_app_and_the_json_is_unchanged(setup: Setup, client: FlaskClient) -> None:
    from camd.stills import describe

    _, url = save_still(setup)
    still = setup.stills.index.newest_one()
    assert still is not None and "url" not in describe(still) and "thumb" not in describe(still)
    listed = client.get("/api/stills", headers=basic(USER, PASSWORD)).get_json()["stills"][0]
    assert set(listed) == {"name", "day", "url", "thumb", "time", "iso", "size"}
    assert listed["url"] == url and listed["thumb"] == listed["url"] + "?thumb=1"
    status = client.get("/api/status", headers=basic(USER, PASSWORD)).get_json()["stills"]["last"]
    assert status == listed
