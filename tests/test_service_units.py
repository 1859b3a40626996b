"""The unit files: `systemd-analyze verify` says nothing, `security` rates them at most 2.0.

`verify` checks that ExecStart's binary exists, and /opt/camd/venv/bin/camd does
not on the machine that runs the tests. So both run with ``--root`` on a small
tree made for the test: the units in /etc/systemd/system (camd@.service made
from camd.service as install.sh makes it), systemd's own units (copied from this
machine, for the targets they refer to), /bin/sh for ExecReload and an executable
stand-in at /opt/camd/venv/bin/camd. Nothing is rewritten in the units themselves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support import require_tool
from tests.support.daemon import FAST_WARMUP, REPO, Daemon
from tests.support.recordings import make_recording
from tests.support.streams import decode, read_parts

UNITS = ("camd.service", "camd@.service")
MAX_EXPOSURE = 2.0
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("systemd-analyze")
    if not SYSTEM_UNITS.is_dir():
        pytest.fail(f"{SYSTEM_UNITS} is missing: install the systemd package")
    root = tmp_path_factory.mktemp("root")
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    shutil.copy("/bin/sh", root / "usr/bin/sh")
    (root / "bin").symlink_to("usr/bin")
    camd = root / "opt/camd/venv/bin/camd"
    camd.parent.mkdir(parents=True)
    camd.write_text("#!/bin/sh\nexit 0\n")
    camd.chmod(0o755)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in UNITS:
        (units / unit).write_text(unit_text(unit))
    return root


def unit_text(name: str) -> str:
    """A unit as install.sh installs it: camd.service as it is, camd@.service made from it."""
    if name == "camd.service":
        return (REPO / "systemd/camd.service").read_text()
    script, unit = REPO / "systemd/camd@.service.sed", REPO / "systemd/camd.service"
    return subprocess.run(["sed", "-f", script, unit], check=True, capture_output=True, text=True).stdout


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("unit", ["camd.service", "camd@front.service"])
def test_verify_prints_nothing(root: Path, unit: str) -> None:
    result = analyze("verify", f"--root={root}", unit)
    assert (result.stdout + result.stderr).strip() == "", result.stdout + result.stderr
    assert result.returncode == 0


def test_verify_would_catch_a_mistake(root: Path) -> None:
    """The check above is not vacuous: a typo and a missing binary are reported."""
    broken = root / "etc/systemd/system/broken.service"
    text = (REPO / "systemd/camd.service").read_text()
    broken.write_text(
        text.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomme=yes").replace("venv/bin/camd", "venv/bin/nope")
    )
    try:
        result = analyze("verify", f"--root={root}", "broken.service")
    finally:
        broken.unlink()
    output = result.stdout + result.stderr
    assert "ProtectHomme" in output and "venv/bin/nope" in output


@pytest.mark.parametrize("unit", ["camd.service", "camd@front.service"])
def test_security_exposure_is_low(root: Path, unit: str) -> None:
    result = analyze("security", "--offline=yes", f"--root={root}", "--no-pager", unit)
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output
    score = float(match.group(1))
    print(f"systemd-analyze security --offline=yes {unit}: exposure {score}")
    assert score <= MAX_EXPOSURE, output


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit_text(name).splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("Restart", "on-failure"),
        ("WatchdogSec", "30"),
        ("TimeoutStopSec", "15"),
        ("User", "camd"),
        ("SupplementaryGroups", "video"),
        ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-video4linux rw"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("RestartPreventExitStatus", "2"),
        ("ExecReload", "/bin/sh -c 'kill -HUP $MAINPID'"),
        ("InaccessiblePaths", "-/dev/shm -/dev/mqueue"),
        ("PrivateIPC", "yes"),
    ],
)
def test_units_have(key: str, value: str) -> None:
    for unit in UNITS:
        assert unit_settings(unit)[key] == [value], unit


def test_instances_have_their_own_config_and_state() -> None:
    single, template = unit_settings("camd.service"), unit_settings("camd@.service")
    assert single["ExecStart"] == ["/opt/camd/venv/bin/camd run --config /etc/camd/camd.toml"]
    assert template["ExecStart"] == ["/opt/camd/venv/bin/camd run --config /etc/camd/%i.toml"]
    assert single["StateDirectory"] == ["camd"]
    assert template["StateDirectory"] == ["camd/%i"]
    assert template["SyslogIdentifier"] == ["camd@%i"]
    # Everything else is the same: the template is made from camd.service, so the two cannot drift.
    differ = {key for key in single.keys() | template.keys() if single.get(key) != template.get(key)}
    assert differ == {"Description", "ExecStart", "StateDirectory", "SyslogIdentifier"}


@pytest.mark.parametrize("source", ["test", "recording"])
def test_camd_works_under_memory_deny_write_execute(tmp_path: Path, source: str) -> None:
    """The unit sets MemoryDenyWriteExecute=yes: camd, OpenCV and FFmpeg must not need W+X memory."""
    spec = str(make_recording(tmp_path / "clip.avi")) if source == "recording" else "test"
    state = tmp_path / "state"
    state.mkdir()
    daemon = Daemon(
        state, ("--source", spec, "--width", "320", "--height", "240", *FAST_WARMUP), module="tests.sandboxed"
    )
    try:
        try:
            daemon.start()
        except AssertionError:
            if daemon.proc is not None and daemon.proc.wait(5) == 77:
                pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
            raise
        assert "MemoryDenyWriteExecute in force" in daemon.log
        parts = read_parts(daemon.url("/stream.mjpg"), 5, auth=daemon.auth)
        assert len(parts) == 5 and decode(parts[-1].body).shape == (240, 320, 3)
        assert decode(daemon.get("/snapshot.jpg").content).shape == (240, 320, 3)
        assert requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=20).status_code == 201
        assert daemon.get("/metrics").status_code == 200
        assert daemon.stop() == 0
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
