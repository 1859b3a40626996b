"""Everyday use against the real daemon: one camd per state directory, camd still, stills off, the start-up block."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, REPO, Daemon


def camd(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CAMD_") and k != "NOTIFY_SOCKET"}
    return subprocess.run(
        [sys.executable, "-m", "camd", *args], cwd=REPO, env=clean, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def test_second_daemon_on_the_same_state_dir_exits_2_before_touching_it(
    daemon_factory: Callable[..., Daemon],
) -> None:
    # The first daemon writes no activity log, so whatever appears in the folder came from the second.
    daemon = daemon_factory("--source", "test", "--no-activity")
    before = sorted(path.name for path in daemon.state_dir.iterdir())
    result = camd("run", "--source", "test", "--host", "127.0.0.1", "--port", "0", "--state-dir", str(daemon.state_dir))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"camd: another camd (pid {daemon.proc.pid}) is already running with state_dir='{daemon.state_dir}'"  # type: ignore[union-attr]
    )
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in daemon.state_dir.iterdir()) == before
    assert daemon.health()[0] == 200  # the first one never noticed


def test_camd_still_asks_the_running_daemon(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    nobody = camd("still", "--state-dir", str(tmp_path / "empty"))
    assert nobody.returncode == 1 and "no camd is running" in nobody.stderr

    daemon = daemon_factory(
        "--source", "test", "--width", "320", "--height", "240", "--stills-interval", "0", *FAST_WARMUP
    )
    status = daemon.get("/api/status").json()["stills"]
    assert status["interval"] == 0 and status["next"] is None
    assert "periodic stills off" in daemon.log

    result = camd("still", "--state-dir", str(daemon.state_dir))
    assert result.returncode == 0, result.stderr
    saved = Path(result.stdout.strip())
    assert saved.is_file() and saved.parent.parent == daemon.state_dir / "stills"
    wait_until(lambda: daemon.get("/api/stills").json()["total"] == 1, 5, what="the still in the index")


def test_start_up_ends_with_a_block_for_people(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    users = tmp_path / "fresh-users"
    daemon = daemon_factory("--source", "test", "--users-file", str(users), *FAST_WARMUP)
    log = daemon.wait_for_log(r"camd is ready\.\n(  .*\n)+", 10).group(0)
    assert f"Open it on this machine:   http://127.0.0.1:{daemon.port}/" in log
    assert "Only this machine can open it" in log
    assert "Log in as:                 admin" in log
    assert f"Password:                  in {daemon.state_dir / 'initial-password'}" in log
    assert "passwd admin --users-file" in log
    password = (daemon.state_dir / "initial-password").read_text().strip()
    assert password not in daemon.log
    assert "settings not at their defaults:" in daemon.log and "warmup_delay=200ms" in daemon.log


def test_curl_fail_on_a_missing_day_zip(daemon: Daemon, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    user, password = daemon.auth
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    url = daemon.url("/stills/2026-05-01.zip")
    result = subprocess.run(
        [curl, "-sfOJ", "-u", f"{user}:{password}", url], cwd=downloads, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 22  # curl's "HTTP error" exit code
    assert list(downloads.iterdir()) == []
    # Without -f, what curl gets is a short JSON error, not an HTML page to be saved as a zip.
    body = subprocess.run(
        [curl, "-s", "-u", f"{user}:{password}", "-w", "\n%{http_code} %{content_type}", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    assert body.endswith("404 application/json") and "<html" not in body
