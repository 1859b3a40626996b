"""SIGHUP: the users file and the settings that can change at run time are re-read without a restart."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from camd.users import read_users, set_password, write_users
from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.notify import NotifySocket


def write_config(path: Path, **values: object) -> Path:
    lines = [
        f"{key} = {value!r}" if isinstance(value, int | float) else f'{key} = "{value}"'
        for key, value in values.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def hup(daemon: Daemon, count: int) -> None:
    """Send SIGHUP and wait until camd has logged what it did about it."""
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.log.count("SIGHUP: ") >= count, 15, what=f"SIGHUP number {count} to be handled")


def can_log_in(daemon: Daemon, user: str, password: str) -> bool:
    return requests.get(daemon.url("/api/status"), auth=(user, password), timeout=10).status_code == 200


@pytest.fixture
def reloadable(
    daemon_factory: Callable[..., Daemon], tmp_path: Path, notify: NotifySocket
) -> tuple[Daemon, Path, NotifySocket]:
    config = write_config(tmp_path / "camd.toml", log_level="info", stills_interval="1h")
    daemon = daemon_factory(
        "--source", "test", "--width", "320", "--height", "240", "--config", str(config), *FAST_WARMUP,
        env=notify.env(),
    )  # fmt: skip
    return daemon, config, notify


def test_a_user_added_to_the_file_can_log_in_after_sighup(reloadable: tuple[Daemon, Path, NotifySocket]) -> None:
    daemon, _, notify = reloadable
    assert not can_log_in(daemon, "bob", "bob's long password")
    set_password(daemon.state_dir / "users", "bob", "bob's long password")
    hup(daemon, 1)
    assert "SIGHUP: users re-read; settings unchanged" in daemon.log
    assert can_log_in(daemon, "bob", "bob's long password")
    assert can_log_in(daemon, *daemon.auth)
    notify.wait_for("RELOADING", value="1")
    assert notify.count("READY") == 2  # once at start, once after the reload


def test_sighup_re_reads_the_users_file_even_when_it_looks_unchanged(
    reloadable: tuple[Daemon, Path, NotifySocket],
) -> None:
    """An edit that keeps size, inode and mtime is invisible to the change check; SIGHUP reads anyway."""
    daemon, _, _ = reloadable
    path = daemon.state_dir / "users"
    set_password(path, "carl", "carl's long password")
    hup(daemon, 1)
    assert can_log_in(daemon, "carl", "carl's long password")

    users = read_users(path)
    staged = path.with_name("staged")
    set_password(staged, "dave", "dave's long password")
    users["dave"] = read_users(staged)["dave"]
    del users["carl"]
    text = "".join(f"{name}:{hashed}\n" for name, hashed in sorted(users.items()))
    info = path.stat()
    assert len(text.encode()) == info.st_size  # same length: "carl" and "dave", same hash parameters
    with path.open("r+") as handle:  # in place: same inode
        handle.write(text)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert not can_log_in(daemon, "dave", "dave's long password")  # nothing looked changed

    hup(daemon, 2)
    assert can_log_in(daemon, "dave", "dave's long password")
    assert not can_log_in(daemon, "carl", "carl's long password")
    write_users(path, users)


def test_log_level_applies_at_once_and_other_changes_are_named(
    reloadable: tuple[Daemon, Path, NotifySocket],
) -> None:
    daemon, config, _ = reloadable
    daemon.get("/healthz")
    assert "DEBUG" not in daemon.log

    write_config(config, log_level="debug", stills_interval="1h", jpeg_quality=70, title="Garden")
    hup(daemon, 1)
    assert "SIGHUP: applied log_level 'info' -> 'debug'" in daemon.log
    restart = next(line for line in daemon.lines if "need a restart" in line)
    assert "jpeg_quality 80 -> 70" in restart and "title 'camd' -> 'Garden'" in restart
    daemon.get("/healthz")
    wait_until(lambda: "DEBUG camd.web.headers: GET /healthz" in daemon.log, 10, what="a debug line")

    write_config(config, log_level="warning", stills_interval="1h")
    hup(daemon, 3)
    assert "SIGHUP: applied log_level 'debug' -> 'warning'" in daemon.log
    assert daemon.health() == (200, "ok")


def test_port_given_as_flag_is_not_a_change(reloadable: tuple[Daemon, Path, NotifySocket]) -> None:
    daemon, config, _ = reloadable
    write_config(config, log_level="info", stills_interval="1h", port=1)
    hup(daemon, 1)
    assert "settings unchanged" in daemon.log  # --port 0 on the command line still wins, as at start


def test_stills_settings_apply_and_a_new_stills_folder_needs_a_restart(
    reloadable: tuple[Daemon, Path, NotifySocket], tmp_path: Path
) -> None:
    daemon, config, _ = reloadable
    write_config(config, log_level="info", stills_interval="10m", stills_quality=70, stills_dir=str(tmp_path / "x"))
    hup(daemon, 2)
    applied = next(line for line in daemon.lines if "SIGHUP: applied" in line)
    assert "stills_interval 1h -> 10m" in applied and "stills_quality 90 -> 70" in applied
    assert "stills: one every 10m" in daemon.log  # the stills writer took them
    restart = next(line for line in daemon.lines if "need a restart" in line)
    assert "stills_dir None -> " in restart and "stills_interval" not in restart


def test_a_broken_config_is_reported_and_the_daemon_keeps_running(
    reloadable: tuple[Daemon, Path, NotifySocket],
) -> None:
    daemon, config, _ = reloadable
    config.write_text('log_levle = "debug"\n')
    hup(daemon, 1)
    assert "unknown setting 'log_levle' (did you mean log_level?)" in daemon.log
    assert "keeping the settings in effect" in daemon.log
    assert daemon.health() == (200, "ok")
    assert daemon.stop() == 0
