"""systemd/install.sh under a temporary root, and the example config it installs."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sysconfig
from pathlib import Path

import pytest
import requests
from werkzeug.security import check_password_hash

from camd.settings import FIELDS, Settings, load
from camd.users import read_users, set_password
from tests.support import require_tool
from tests.support.daemon import REPO
from tests.support.notify import NotifySocket

SCRIPT = REPO / "systemd" / "install.sh"
EXAMPLE = REPO / "systemd" / "camd.toml.example"


def install(root: Path, *args: str) -> str:
    """Run the install script under ``root``, offline: camd goes into the venv alone (--no-deps)
    and its dependencies come from this test's own environment through PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    env.pop("DESTDIR", None)
    result = subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), "--no-deps", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def instance_unit() -> str:
    """camd@.service as install.sh makes it from camd.service."""
    script, unit = REPO / "systemd/camd@.service.sed", REPO / "systemd/camd.service"
    return subprocess.run(["sed", "-f", script, unit], check=True, capture_output=True, text=True).stdout


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its type, mode, link target and content hash."""
    listing = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            what = "link " + os.readlink(path)
        elif path.is_dir():
            what = "dir"
        else:
            what = "file " + hashlib.sha256(path.read_bytes()).hexdigest()
        listing[str(path.relative_to(root))] = f"{what} {info.st_mode:o} {info.st_mtime_ns}"
    return listing


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


# --- the example config ------------------------------------------------------------------------


def commented_settings(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in re.finditer(r"^#([a-z_]+) = (.*)$", text, re.MULTILINE):
        assert match.group(1) not in found, f"{match.group(1)} is listed twice"
        found[match.group(1)] = match.group(2)
    return found


def test_example_config_lists_every_setting_commented_with_its_default(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    listed = commented_settings(text)
    assert sorted(listed) == sorted(FIELDS), "the example must list exactly the settings camd has"
    assert load(environ={}, config=EXAMPLE) == Settings()  # as shipped, every line is a comment

    uncommented = tmp_path / "all.toml"
    uncommented.write_text(re.sub(r"^#([a-z_]+ = )", r"\1", text, flags=re.MULTILINE))
    assert load(environ={}, config=uncommented) == Settings()  # every value shown is the default


# --- the install script ------------------------------------------------------------------------


def test_install_lays_out_venv_units_and_config_then_changes_nothing_and_keeps_edits(root: Path) -> None:
    output = install(root)

    venv = root / "opt/camd/venv"
    assert (venv / "bin/python").exists()
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "camd/__init__.py").is_file() and (site / "camd/web/templates").is_dir()  # a copy, not a link
    assert not (site / "web").exists(), "the web app installs as camd.web, never as a top-level `web`"
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    command = [venv / "bin/python", "-m", "camd", "--version"]
    version = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    assert version.stdout.startswith("camd "), version.stderr
    names = "import camd.web.auth; import importlib.util; print(importlib.util.find_spec('web'))"
    imported = subprocess.run(
        [venv / "bin/python", "-c", names], check=False, env=env, capture_output=True, text=True, cwd=root
    )
    assert imported.stdout.strip() == "None", imported.stderr
    # The image runs the venv at /opt/camd/venv: nothing in it may name the directory it was built in.
    assert (venv / "bin/camd").read_text().startswith("#!/opt/camd/venv/bin/python\n")
    for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if path.is_file() and not path.is_symlink():
            assert str(root).encode() not in path.read_bytes(), path

    units = root / "etc/systemd/system"
    assert (units / "camd.service").read_text() == (REPO / "systemd/camd.service").read_text()
    assert (units / "camd@.service").read_text() == instance_unit()
    wants = units / "multi-user.target.wants/camd.service"
    assert os.readlink(wants) == "/etc/systemd/system/camd.service"
    assert (root / "etc/sysusers.d/camd.conf").read_text() == (REPO / "systemd/camd.sysusers").read_text()
    config = root / "etc/camd/camd.toml"
    assert config.read_text() == EXAMPLE.read_text()

    users_file = root / "var/lib/camd/users"
    assert users_file.stat().st_mode & 0o077 == 0
    password = re.search(r"first login: user admin, password (\S+)", output)
    assert password, output
    assert check_password_hash(read_users(users_file)["admin"], password.group(1))
    first = root / "var/lib/camd/initial-password"  # kept for whoever missed the output, until changed
    assert first.read_text() == password.group(1) + "\n"
    assert first.stat().st_mode & 0o777 == 0o600
    assert "it is kept in /var/lib/camd/initial-password until you change it" in output
    assert re.search(r"open http://\S+:8080/", output)

    run_as_the_unit_does(root, ("admin", password.group(1)))

    # A second run changes nothing: same paths, contents, modes and even times.
    before = tree(root)
    again = install(root)
    assert tree(root) == before
    assert "first login: user admin, password in /var/lib/camd/initial-password" in again
    assert "installed /" not in again

    # An edited config survives a re-install (an update).
    config.write_text(config.read_text() + '\nport = 8443\ntitle = "Garden"\n')
    edited = config.read_text()
    update = install(root)
    assert config.read_text() == edited
    assert "kept your /etc/camd/camd.toml" in update
    assert re.search(r"open http://\S+:8443/", update)


def test_uninstall_keeps_edits_and_data_and_purge_removes_it_all(root: Path) -> None:
    install(root)
    config = root / "etc/camd/camd.toml"
    config.write_text(config.read_text() + "\nfps = 15\n")
    (root / "var/lib/camd/stills").mkdir()

    output = install(root, "--uninstall")
    assert "kept your edited /etc/camd/camd.toml" in output
    left = sorted(str(path.relative_to(root)) for path in root.rglob("*"))
    assert left == [
        "etc", "etc/camd", "etc/camd/camd.toml",
        "var", "var/lib", "var/lib/camd", "var/lib/camd/initial-password", "var/lib/camd/stills",
        "var/lib/camd/users",
    ]  # fmt: skip

    install(root)
    install(root, "--uninstall", "--purge")
    assert list(root.iterdir()) == []


def test_uninstall_of_an_unedited_install_leaves_only_the_data(root: Path) -> None:
    install(root)
    install(root, "--uninstall")
    left = sorted(str(path.relative_to(root)) for path in root.rglob("*"))
    assert left == ["var", "var/lib", "var/lib/camd", "var/lib/camd/initial-password", "var/lib/camd/users"]


def test_install_needs_root_or_a_root_directory() -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root")
    result = subprocess.run(["bash", str(SCRIPT)], check=False, capture_output=True, text=True)
    assert result.returncode == 1 and "run it as root" in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    result = subprocess.run(["bash", str(SCRIPT), "--frobnicate"], check=False, capture_output=True, text=True)
    assert result.returncode == 2 and "unknown option --frobnicate" in result.stderr


def test_passwd_as_root_leaves_the_users_file_to_the_service_user(tmp_path: Path) -> None:
    """`sudo camd passwd` must not turn the file into root's, which the service could no longer read."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    path = tmp_path / "users"
    set_password(path, "admin", "first password")
    os.chown(path, 65534, 65534)
    set_password(path, "admin", "second password")
    info = path.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (65534, 65534, 0o600)


def test_install_script_passes_shellcheck() -> None:
    shellcheck = require_tool("shellcheck")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def run_as_the_unit_does(root: Path, credentials: tuple[str, str]) -> None:
    """The installed camd, as ExecStart= runs it: its venv, --config, $STATE_DIRECTORY, $NOTIFY_SOCKET."""
    notify = NotifySocket()
    env = {
        **os.environ,
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "STATE_DIRECTORY": str(root / "var/lib/camd"),
        "NOTIFY_SOCKET": notify.path,
        # Only what a test machine needs differently from the installed config (the environment wins).
        "CAMD_HOST": "127.0.0.1", "CAMD_PORT": "0", "CAMD_SOURCE": "test", "CAMD_WARMUP_DELAY": "0.2",
    }  # fmt: skip
    # python -m camd: bin/camd names /opt/camd/venv/bin/python, where the image will have it.
    venv_python = str(root / "opt/camd/venv/bin/python")
    command = [venv_python, "-m", "camd", "run", "--config", str(root / "etc/camd/camd.toml")]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        notify.wait_for("READY", value="1", timeout=30)
        assert proc.stdout is not None
        port = None
        while port is None:
            line = proc.stdout.readline()
            assert line, "camd exited"
            match = re.search(r"serving on http://127.0.0.1:(\d+)/", line)
            port = match.group(1) if match else None
        status = requests.get(f"http://127.0.0.1:{port}/api/status", auth=credentials, timeout=10)
        assert status.status_code == 200  # the password the installer printed works
        first = root / "var/lib/camd/initial-password"
        assert first.read_text() == credentials[1] + "\n"  # camd made no second first user
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        notify.close()
