"""The command line as a user meets it: bad settings, help, passwd, probe and the first-run password."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from camd import __version__
from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, REPO, Daemon
from tests.support.streams import decode


def camd(
    *args: str, env: dict[str, str] | None = None, stdin: str = "", timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``python -m camd ARGS`` with a clean CAMD_* environment; never waits forever."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CAMD_") and k != "NOTIFY_SOCKET"}
    return subprocess.run(
        [sys.executable, "-m", "camd", *args], cwd=REPO, env={**clean, **(env or {})}, input=stdin,
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


# (case id, TOML file text or None, environment, flags, words the one error line must contain)
BAD_SETTINGS = [
    ("toml-unknown-key", "prot = 8080\n", {}, [], ["prot", "did you mean port"]),
    ("toml-unknown-key-2", "stall_timout = 3\n", {}, [], ["stall_timout", "did you mean stall_timeout"]),
    ("toml-wrong-type", "width = 1.5\n", {}, [], ["width", "1.5", "whole number"]),
    ("toml-wrong-type-bool", 'stills_banner = "maybe"\n', {}, [], ["stills_banner", "maybe", "on or off"]),
    ("toml-table", "[camera]\nwidth = 640\n", {}, [], ["camera"]),
    ("toml-out-of-range", "max_clients = 0\n", {}, [], ["max_clients", "0", "1 to 10000"]),
    ("toml-bad-duration", 'stills_interval = "5 minutes"\n', {}, [], ["stills_interval", "5 minutes", "duration"]),
    ("toml-syntax", "port = \n", {}, [], ["TOML"]),
    ("env-wrong-type", None, {"CAMD_FPS": "fast"}, [], ["CAMD_FPS", "fps", "fast", "number"]),
    ("env-out-of-range", None, {"CAMD_JPEG_QUALITY": "0"}, [], ["jpeg_quality", "0", "1 to 100"]),
    ("env-bad-duration", None, {"CAMD_WARMUP_DELAY": "-1"}, [], ["warmup_delay", "-1", "duration"]),
    ("flag-wrong-type", None, {}, ["--width", "abc"], ["--width", "width", "abc", "whole number"]),
    ("flag-out-of-range", None, {}, ["--port", "70000"], ["port", "70000", "0 to 65535"]),
    ("flag-bad-duration", None, {}, ["--stall-timeout", "5x"], ["stall_timeout", "5x", "duration"]),
    ("flag-bad-choice", None, {}, ["--passthrough", "maybe"], ["passthrough", "maybe", "auto, on, off"]),
    ("flag-nan", None, {}, ["--fps", "nan"], ["fps", "nan"]),
    ("bad-source-spec", None, {}, ["--source", "bogus"], ["source", "bogus", "file:PATH"]),
    ("missing-recording", None, {}, ["--source", "file:/nonexistent/clip.avi"], ["source", "no such file"]),
    ("tls-half", None, {}, ["--tls-cert", "/etc/hostname"], ["tls_cert", "tls_key"]),
    ("missing-config", None, {}, ["--config", "/nonexistent/camd.toml"], ["/nonexistent/camd.toml", "does not exist"]),
    ("missing-config-env", None, {"CAMD_CONFIG": "/nonexistent/camd.toml"}, [], ["/nonexistent/camd.toml"]),
]


@pytest.mark.parametrize(("toml", "env", "flags", "words"), [case[1:] for case in BAD_SETTINGS],
                         ids=[case[0] for case in BAD_SETTINGS])  # fmt: skip
def test_bad_setting_exits_2_with_one_line(
    tmp_path: Path, toml: str | None, env: dict[str, str], flags: list[str], words: list[str]
) -> None:
    args = ["run", "--state-dir", str(tmp_path / "state"), "--host", "127.0.0.1", "--port", "0", *flags]
    if toml is not None:
        config = tmp_path / "camd.toml"
        config.write_text(toml)
        args += ["--config", str(config)]
    result = camd(*args, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("camd: ")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in result.stderr and result.stdout == ""
    # Refused before anything happened: no users file, no first-run password.
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_flag_beats_environment_beats_file(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    config = tmp_path / "camd.toml"
    config.write_text('title = "from file"\ndescription = "file text"\nmax_clients = 3\nsource = "test"\n')
    daemon = daemon_factory(
        "--config", str(config), "--title", "from flag", "--width", "320", "--height", "240", *FAST_WARMUP,
        env={"CAMD_TITLE": "from env", "CAMD_MAX_CLIENTS": "5"},
    )  # fmt: skip
    page = requests.get(daemon.url("/"), timeout=10).text
    assert "from flag" in page and "file text" in page
    status = daemon.get("/api/status").json()
    assert status["max_clients"] == 5
    assert status["resolution"] == "320x240"


def test_version_and_help() -> None:
    version = camd("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"camd {__version__}"
    top = camd("--help")
    assert top.returncode == 0
    for command in ("run", "passwd", "probe"):
        assert command in top.stdout
    run = camd("run", "--help")
    assert run.returncode == 0
    text = " ".join(run.stdout.split())  # argparse wraps lines
    for flag, default in [("--port", "8080"), ("--warmup-delay", "2s"), ("--warmup-frames", "13"),
                          ("--stall-timeout", "5s"), ("--max-clients", "64"), ("--source", "auto")]:  # fmt: skip
        assert flag in text
        assert f"default: {default}" in text, (flag, default)
    for command in ("passwd", "probe"):
        assert camd(command, "--help").returncode == 0


def test_passwd_sets_and_deletes_users_of_a_running_daemon(daemon: Daemon) -> None:
    state = ["--state-dir", str(daemon.state_dir)]
    url = daemon.url("/api/status")
    assert requests.get(url, auth=("alice", "new secret 123"), timeout=10).status_code == 401

    result = camd("passwd", *state, "alice", stdin="new secret 123\n")
    assert result.returncode == 0, result.stderr
    users = daemon.state_dir / "users"
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert "new secret 123" not in users.read_text()
    # The running daemon notices the changed file by itself (no restart, no signal).
    wait_until(lambda: requests.get(url, auth=("alice", "new secret 123"), timeout=10).status_code == 200, 10,
               what="the new user to be able to log in")  # fmt: skip
    assert daemon.get("/api/status").status_code == 200  # the other user still works

    too_short = camd("passwd", *state, "bob", stdin="short\n")
    assert too_short.returncode == 2 and len(too_short.stderr.splitlines()) == 1

    result = camd("passwd", *state, "--delete", "alice")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: requests.get(url, auth=("alice", "new secret 123"), timeout=10).status_code == 401, 10,
               what="the deleted user to be refused")  # fmt: skip
    assert "new secret 123" not in daemon.log
    assert camd("passwd", *state, "--delete", "alice").returncode != 0


def test_probe_reports_the_source_and_writes_a_still(tmp_path: Path) -> None:
    still = tmp_path / "probe.jpg"
    result = camd(
        "probe", "--source", "test", "--width", "320", "--height", "240", "--state-dir", str(tmp_path),
        *FAST_WARMUP, "--output", str(still),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for label in ("backend:", "resolution:", "fps:", "pixel format:", "warm-up:"):
        assert label in out, out
    assert "320x240" in out
    assert "frames in" in out
    assert decode(still.read_bytes()).shape == (240, 320, 3)


def test_probe_of_a_missing_recording_is_a_usage_error(tmp_path: Path) -> None:
    result = camd("probe", "--source", "file:/nonexistent/clip.avi", "--output", str(tmp_path / "x.jpg"))
    assert result.returncode == 2
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_first_run_password_goes_to_a_private_file_never_to_the_log(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    users = tmp_path / "fresh-users"
    daemon = daemon_factory("--source", "test", "--users-file", str(users), *FAST_WARMUP)
    secret = daemon.state_dir / "initial-password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    password = secret.read_text().strip()
    assert len(password) >= 12
    assert password not in daemon.log
    assert "initial-password" in daemon.log and "camd passwd admin" in daemon.log
    assert requests.get(daemon.url("/api/status"), auth=("admin", password), timeout=10).status_code == 200
    assert users.read_text().startswith("admin:") and password not in users.read_text()


@pytest.mark.parametrize("which", ["users-file-is-a-directory", "state-dir-under-a-file"])
def test_unusable_users_file_or_state_dir_is_a_usage_error(tmp_path: Path, which: str) -> None:
    (tmp_path / "a-file").write_text("")
    if which == "users-file-is-a-directory":
        args, setting = ["--state-dir", str(tmp_path / "state"), "--users-file", str(tmp_path)], "users_file"
    else:
        args, setting = ["--state-dir", str(tmp_path / "a-file" / "state")], "state_dir"
    result = camd("run", *args, "--source", "test", "--host", "127.0.0.1", "--port", "0")
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"camd: {setting}="), last
    assert "Traceback" not in result.stderr and "CRITICAL" not in result.stderr
