"""camd under a real systemd: a minimal Debian 12 booted with systemd-nspawn, installed by install.sh.

The root file system (debootstrap --variant=minbase, about 300 MB) and a folder of
wheels (the container has no network) are built once and cached under
``$CAMD_TEST_CACHE`` (default /var/cache/camd-tests), each in a directory named
for what went into it, renamed into place only when complete (entries no run has
used for a week are removed when a new one is built). Each machine boots
from a fresh copy of it. systemd-nspawn runs in a cgroup made for it (with
--keep-unit it puts the container's cgroups under its own), and commands run
inside through ``nsenter`` (no machined here, so no machinectl or systemctl -M).

The tests of one machine run in order, as a person would meet them: install,
reload, the sandbox, kill -9, a bad setting, a second camera, a hung camera, a
reboot, uninstall and purge. Then an image made by install.sh --root on this
machine boots into a working camd.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import require_tool, wait_until
from tests.support.daemon import REPO

SUITE = "bookworm"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv")
CACHE = Path(os.environ.get("CAMD_TEST_CACHE", "/var/cache/camd-tests"))
# What pip needs besides requirements.txt to build camd from its sources, offline.
BUILD_TOOLS = tuple(tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"])
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Small and slow enough for a shared 2-core machine; the test pattern stands in for a camera.
CONFIG = """\
source = "test"
width = 320
height = 240
fps = 10
warmup_delay = "0.2s"
warmup_frames = 3
stills_interval = "1h"
"""
FEED_PORT = 8081
# One request from inside the container (it has no curl): prints the status and the body.
FETCH = """\
import base64, sys, urllib.error, urllib.request
url, user, password = sys.argv[1:4]
request = urllib.request.Request(url)
if user:
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.status, response.read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
except OSError as error:
    print(0, error)
"""


# --- the cached root file system and wheels ---------------------------------------------------------


def cached(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """A directory under CACHE named for ``key``; built into a temporary one and renamed when complete,
    so an interrupted build is never used."""
    final = CACHE / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if final.is_dir():
        os.utime(final)  # its mtime says when it was last used
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    prune_cache(kind)
    partial = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=CACHE))
    partial.chmod(0o755)  # it becomes the container's / (mkdtemp makes it 0700)
    try:
        started = time.monotonic()
        build(partial)
        print(f"built {final} in {time.monotonic() - started:.0f}s")
        try:
            partial.rename(final)
        except OSError:
            if not final.is_dir():  # else another run finished the same one first
                raise
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return final


def prune_cache(kind: str, unused_for: float = 7 * 86400) -> None:
    """Drop the entries of ``kind`` that no run has used for a week (older requirements, another suite):
    a run that still wants one would have touched it, so nothing in use goes."""
    for entry in CACHE.glob(f"{kind}-*"):
        if entry.is_dir() and time.time() - entry.stat().st_mtime > unused_for:
            print(f"removing {entry}, unused for {(time.time() - entry.stat().st_mtime) / 86400:.0f} days")
            shutil.rmtree(entry, ignore_errors=True)


def debootstrap(target: Path) -> None:
    tool = require_tool("debootstrap")
    command = [tool, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(target)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"


def download_wheels(target: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(target),
               "--only-binary", ":all:", "-r", str(REPO / "requirements.txt"), *BUILD_TOOLS]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def unavailable(reason: str) -> None:
    """Like require_tool: skip with the reason, but fail in CI, where everything must run."""
    if os.environ.get("CAMD_REQUIRE_TOOLS") or os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def rootfs() -> Path:
    if os.geteuid() != 0:
        unavailable("booting a container with systemd-nspawn needs root")
    for tool in ("systemd-nspawn", "nsenter", "unshare"):
        require_tool(tool)
    if cgroup2_mount() is None:
        unavailable("no cgroup2 hierarchy mounted: systemd-nspawn cannot give the container one")
    return cached("rootfs", f"{SUITE} minbase {' '.join(PACKAGES)}", debootstrap)


@pytest.fixture(scope="module")
def wheels(rootfs: Path) -> Path:
    key = (
        (REPO / "requirements.txt").read_text()
        + " ".join(BUILD_TOOLS)
        + f" cp{sys.version_info[0]}{sys.version_info[1]}"
    )
    return cached("wheels", key, download_wheels)


# --- a booted machine ---------------------------------------------------------------------------------


def cgroup2_mount() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split()[0] == "cgroup2":
            return Path(before.split()[4])
    return None


class Machine:
    """One systemd-nspawn container, in a cgroup of its own, booted from the cached root file system
    with an overlay on top: what it writes goes to ``upper`` (kept from one boot to the next), the cache
    is never written, and a fresh machine costs no copy."""

    def __init__(self, lower: Path, workdir: Path, name: str, binds: tuple[str, ...] = ()) -> None:
        self.lower = lower
        self.upper = workdir / "upper"
        self.name = name
        self.binds = binds
        self.workdir = workdir
        self.log = workdir / "console.log"
        for directory in ("upper", "work", "root"):
            (workdir / directory).mkdir(parents=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.cgroup: Path | None = None
        self.boots = 0

    def boot(self, timeout: float = 60) -> None:
        mount = cgroup2_mount()
        assert mount is not None
        own = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].splitlines()[0].lstrip("/")
        self.cgroup = mount / own / f"camd-test-{self.name}-{os.getpid()}"
        self.cgroup.mkdir()
        root = self.workdir / "root"
        command = [
            "systemd-nspawn", "-D", str(root), "-M", self.name, "-b", "--register=no", "--keep-unit",
            "--private-network", "--console=pipe", "--system-call-filter=bpf", *self.binds,
        ]  # fmt: skip
        # In a mount namespace of its own, so the overlay goes away with nspawn whatever happens to this test;
        # moved into the new cgroup before it becomes nspawn, which puts the container's cgroups there.
        enter = (
            'mount -t overlay overlay -o "lowerdir=$2,upperdir=$3,workdir=$4" "$5" '
            '&& echo $$ > "$1" && shift 5 && exec "$@"'
        )
        layers = [str(self.lower), str(self.upper), str(self.workdir / "work"), str(root)]
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation=private", "sh", "-c", enter, "sh",
                 str(self.cgroup / "cgroup.procs"), *layers, *command],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        started = time.monotonic()
        wait_until(self.leader, timeout, what="the container's systemd to start")

        def booted() -> str | None:
            # Empty until systemd listens on its private socket; then --wait waits for the boot to finish.
            result = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout)
            return result.stdout.strip() or None

        state = wait_until(booted, timeout, interval=0.2, what="the boot to finish")
        assert state in ("running", "degraded"), f"{state}\n{self.console()}"
        self.boots += 1
        print(f"{self.name}: booted ({state}) in {time.monotonic() - started:.1f}s")

    def leader(self) -> int | None:
        """The container's PID 1, as this machine numbers it."""
        assert self.proc is not None and self.cgroup is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.console()}")
        try:
            pids = (self.cgroup / "payload/init.scope/cgroup.procs").read_text().split()
        except FileNotFoundError:
            return None
        return int(pids[0]) if pids else None

    def console(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def run(
        self, *command: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside, as root, with a clean environment."""
        leader = self.leader()
        assert leader is not None
        full = ["nsenter", "-t", str(leader), "-a", "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", *command]
        result = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input, check=False)
        if check:
            assert result.returncode == 0, (
                f"{' '.join(command)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result

    def write(self, path: str, text: str) -> None:
        """Write a file inside the running machine (its overlay is not to be written from outside)."""
        self.run("sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", path, input=text)

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> str:
        return self.run("sh", "-c", script, check=check, timeout=timeout).stdout

    def show(self, unit: str, *names: str) -> dict[str, str]:
        output = self.run("systemctl", "show", unit, *(f"--property={name}" for name in names)).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def fetch(self, url: str, password: str = "") -> tuple[int, str]:
        status, _, body = self.run("python3", "-c", FETCH, url, "admin" if password else "", password).stdout.partition(
            " "
        )
        return int(status), body.strip()

    def journal(self, *matches: str) -> list[dict[str, str]]:
        output = self.run("journalctl", "--no-pager", "-o", "json", "--boot", *matches, check=False).stdout
        return [json.loads(line) for line in output.splitlines() if line.startswith("{")]

    def poweroff(self, timeout: float = 60) -> None:
        """Shut down from inside, as systemctl poweroff does on a real machine, and wait for nspawn to end."""
        assert self.proc is not None
        self.run("systemctl", "poweroff", "--no-block")
        try:
            returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.destroy()
            raise AssertionError(f"{self.name} did not power off within {timeout}s:\n{self.console()}") from None
        assert returncode == 0, self.console()
        self.remove_cgroup()

    def destroy(self) -> None:
        """Kill whatever is left of the container and remove its cgroups; safe to call more than once."""
        if self.cgroup is not None and self.cgroup.exists():
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.remove_cgroup()

    def remove_cgroup(self) -> None:
        if self.cgroup is None or not self.cgroup.exists():
            return
        # Deepest first: a cgroup can only be removed once it has no children (and no processes).
        for directory in sorted((p for p in self.cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            wait_until(lambda d=directory: _rmdir(d), 10, what=f"{directory} to empty")  # type: ignore[misc]
        wait_until(lambda: _rmdir(self.cgroup), 10, what=f"{self.cgroup} to empty")  # type: ignore[arg-type]
        self.cgroup = None


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def machine_from(rootfs: Path, workdir: Path, name: str, prepare: Callable[[Path], None],
                 binds: tuple[str, ...] = ()) -> Iterator[Machine]:  # fmt: skip
    """A machine booted from ``rootfs`` (``prepare`` may add files to its overlay first), destroyed and
    deleted afterwards whatever happens."""
    machine = Machine(rootfs, workdir / name, name, binds)
    try:
        prepare(machine.upper)
        machine.boot()
        yield machine
    finally:
        machine.destroy()
        shutil.rmtree(workdir / name, ignore_errors=True)


def write(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


# --- one machine, installed the README's way --------------------------------------------------------


class Installed:
    """The machine with camd installed by install.sh, and what its output said."""

    def __init__(self, machine: Machine, output: str) -> None:
        self.machine = machine
        self.output = output
        match = re.search(r"first login: user admin, password (\S+)", output)
        assert match, output
        self.password = match.group(1)


@pytest.fixture(scope="module")
def installed(rootfs: Path, wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    workdir = tmp_path_factory.mktemp("nspawn")

    def prepare(root: Path) -> None:
        write(root, "/etc/camd/camd.toml", CONFIG)  # install.sh keeps a config that is already there

    binds = (f"--bind-ro={REPO}:/src", f"--bind-ro={wheels}:/wheels")
    with machine_from(rootfs, workdir, "camd-real", prepare, binds) as machine:
        started = time.monotonic()
        result = machine.run("bash", "/src/systemd/install.sh", "--wheels", "/wheels", check=False, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        print(f"camd-real: install.sh took {time.monotonic() - started:.0f}s")
        yield Installed(machine, result.stdout)


def main_pid(machine: Machine, unit: str = "camd") -> int:
    return int(machine.show(unit, "MainPID")["MainPID"])


def wait_active(machine: Machine, unit: str = "camd", timeout: float = 60) -> dict[str, str]:
    def active() -> dict[str, str] | None:
        shown = machine.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts", "StatusText")
        return shown if shown["ActiveState"] == "active" and shown["SubState"] == "running" else None

    try:
        return wait_until(active, timeout, interval=0.2, what=f"{unit} to be active")  # type: ignore[return-value]
    except AssertionError as error:
        status = machine.run("systemctl", "status", "--no-pager", "--lines=15", unit, check=False).stdout
        raise AssertionError(f"{error}\n{status}") from None


def test_install_starts_camd_and_systemd_calls_it_active_only_after_ready(installed: Installed) -> None:
    machine = installed.machine
    assert "kept your /etc/camd/camd.toml" in installed.output
    assert "it is kept in /var/lib/camd/initial-password until you change it" in installed.output
    assert wait_active(machine)["StatusText"], "no STATUS= with READY=1"
    wait_until(
        lambda: re.match(r"live \d+\.\d fps 320x240, 0 viewers$", machine.show("camd", "StatusText")["StatusText"]),
        30, interval=0.2, what="STATUS= to say live",
    )  # fmt: skip

    # Type=notify: systemd calls it active when READY=1 comes, after camd listens; not when it is started.
    times = machine.show("camd", "InvocationID", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
    lines = machine.journal(f"_SYSTEMD_INVOCATION_ID={times['InvocationID']}")
    serving = [e for e in lines if "serving on" in e.get("MESSAGE", "")]
    assert serving, [e.get("MESSAGE") for e in lines]
    listening = int(serving[0]["__MONOTONIC_TIMESTAMP"])
    started, active = int(times["ExecMainStartTimestampMonotonic"]), int(times["ActiveEnterTimestampMonotonic"])
    # Type=simple or exec would be active within milliseconds of the start; camd needs a second or more to
    # import and listen. journald stamps a line when it reads it, a few milliseconds after camd wrote it.
    assert active - started > 300_000, (started, listening, active)
    assert listening - 50_000 < active, (started, listening, active)
    print(
        f"camd-real: active {(active - started) / 1e6:.2f}s after the start, {(active - listening) / 1e6:+.3f}s "
        "after the 'serving on' line reached the journal"
    )

    assert machine.fetch("http://127.0.0.1:8080/healthz") == (200, '{"status":"ok"}')
    status, body = machine.fetch("http://127.0.0.1:8080/api/status", installed.password)
    assert status == 200 and json.loads(body)["version"], body  # the password install.sh printed works
    first = machine.sh("stat -c '%a %U' /var/lib/camd/initial-password; cat /var/lib/camd/initial-password")
    assert first.split("\n")[:2] == ["600 camd", installed.password]


def test_reload_sends_sighup_without_procps(installed: Installed) -> None:
    machine = installed.machine
    assert machine.run("sh", "-c", "command -v /bin/kill || command -v /usr/bin/kill", check=False).returncode != 0
    pid = main_pid(machine)
    result = machine.run("systemctl", "reload", "camd", check=False, timeout=60)
    assert result.returncode == 0, result.stderr + machine.sh("systemctl status camd --no-pager", check=False)
    wait_until(
        lambda: any("SIGHUP" in e.get("MESSAGE", "") for e in machine.journal("SYSLOG_IDENTIFIER=camd")),
        10, what="camd to log the SIGHUP",
    )  # fmt: skip
    assert main_pid(machine) == pid and wait_active(machine)["NRestarts"] == "0"


def test_systemctl_kill_usr1_takes_a_still(installed: Installed) -> None:
    """The README's way to take a still now from a shell."""
    machine = installed.machine

    def stills() -> int:
        return len(machine.sh("find /var/lib/camd/stills -name '*.jpg'").split())

    before = stills()
    machine.run("systemctl", "kill", "--signal=USR1", "camd")
    wait_until(lambda: stills() > before, 20, interval=0.2, what="a still")


def test_the_sandbox_applies_to_the_running_process(installed: Installed) -> None:
    machine = installed.machine
    pid = main_pid(machine)
    status = dict(line.split(":\t", 1) for line in machine.sh(f"cat /proc/{pid}/status").splitlines() if ":\t" in line)
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # a filter
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
    uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
    assert machine.sh("id -u camd").strip() == uid != "0"

    def can_write(path: str) -> bool:
        """Create a file at ``path`` as camd, in camd's own mount namespace (its view of the file system)."""
        script = f"touch {path} && rm -f {path}"
        result = machine.run("nsenter", "-t", str(pid), "-m", "-S", uid, "-G", gid, "sh", "-c", script, check=False)
        return result.returncode == 0

    assert can_write("/var/lib/camd/probe")
    assert can_write("/tmp/probe")  # PrivateTmp: its own
    for path in ("/dev/shm/probe", "/dev/mqueue/probe", "/etc/probe", "/opt/camd/probe", "/run/probe",
                 "/var/probe", "/root/probe", "/home/probe"):  # fmt: skip
        assert not can_write(path), f"camd can write {path}"
    # The files camd would have made in /dev/shm are not visible to the rest of the machine either way.
    machine.sh("touch /dev/shm/from-outside")
    assert machine.run("nsenter", "-t", str(pid), "-m", "ls", "/dev/shm/from-outside", check=False).returncode != 0


def test_kill_9_is_restarted(installed: Installed) -> None:
    machine = installed.machine
    before = wait_active(machine)
    machine.run("systemctl", "kill", "--signal=KILL", "camd")

    def restarted() -> dict[str, str] | None:
        shown = wait_active(machine)
        return shown if shown["MainPID"] != before["MainPID"] else None

    after: dict[str, str] = wait_until(restarted, 60, interval=0.5, what="camd to be restarted")  # type: ignore[assignment]
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    wait_until(lambda: machine.fetch("http://127.0.0.1:8080/healthz")[0] == 200, 20, what="camd live again")


def test_a_bad_setting_exits_2_is_not_restarted_and_is_named_once_in_the_journal(installed: Installed) -> None:
    machine = installed.machine
    machine.write("/etc/camd/bad.toml", CONFIG + "port = 70000\n")
    result = machine.run("systemctl", "start", "camd@bad", check=False, timeout=60)
    assert result.returncode != 0
    time.sleep(7)  # longer than RestartSec=5: a restart would have happened by now
    shown = machine.show("camd@bad", "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert shown == {"ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "2", "NRestarts": "0"}
    lines = [e["MESSAGE"] for e in machine.journal("SYSLOG_IDENTIFIER=camd@bad")]
    assert len(lines) == 1 and "port" in lines[0] and "70000" in lines[0], lines
    machine.run("systemctl", "reset-failed", "camd@bad")


def test_an_instance_runs_beside_camd(installed: Installed) -> None:
    machine = installed.machine
    machine.write("/etc/camd/feed.toml", CONFIG + f"port = {FEED_PORT}\n")
    machine.run("systemctl", "enable", "--now", "camd@feed", timeout=90)
    wait_active(machine, "camd@feed")
    wait_until(
        lambda: machine.show("camd@feed", "StatusText")["StatusText"].startswith("live"), 30, what="camd@feed live"
    )
    assert wait_active(machine)["ActiveState"] == "active"
    assert machine.fetch(f"http://127.0.0.1:{FEED_PORT}/healthz")[0] == 200
    assert machine.fetch("http://127.0.0.1:8080/healthz")[0] == 200
    # Its own state directory, and its own first password (camd made it: not a terminal).
    password = machine.sh("cat /var/lib/camd/feed/initial-password").strip()
    assert machine.fetch(f"http://127.0.0.1:{FEED_PORT}/api/status", password)[0] == 200
    assert machine.fetch(f"http://127.0.0.1:{FEED_PORT}/api/status", installed.password)[0] == 401


@contextlib.contextmanager
def watching_the_feed(machine: Machine) -> Iterator[dict[str, str]]:
    """camd with camd@feed's stream as its camera and a 4 s watchdog, live; undone afterwards, whatever happened."""
    password = machine.sh("cat /var/lib/camd/feed/initial-password").strip()
    machine.write("/etc/systemd/system/camd.service.d/test-watchdog.conf",
          "[Service]\nWatchdogSec=4\nEnvironment=CAMD_STALL_TIMEOUT=1\n"
          f"Environment=CAMD_SOURCE=http://admin:{password}@127.0.0.1:{FEED_PORT}/stream.mjpg\n")  # fmt: skip
    try:
        machine.run("systemctl", "daemon-reload")
        machine.run("systemctl", "restart", "camd", timeout=90)
        before = wait_active(machine)
        wait_until(lambda: machine.fetch("http://127.0.0.1:8080/healthz")[0] == 200, 30, what="camd live")
        yield before
    finally:
        machine.run("systemctl", "kill", "--signal=CONT", "camd@feed", check=False)
        machine.run("systemctl", "start", "camd@feed", check=False, timeout=90)
        machine.sh("rm -rf /etc/systemd/system/camd.service.d && systemctl daemon-reload")
        machine.run("systemctl", "restart", "camd", check=False, timeout=90)


def test_an_unplugged_camera_keeps_feeding_the_watchdog(installed: Installed) -> None:
    """A camera that is gone (camd@feed stopped: connection refused) is offline, not hung: a restart
    cannot bring it back and would drop the viewers, so systemd must leave camd running."""
    machine = installed.machine
    with watching_the_feed(machine) as before:
        machine.run("systemctl", "stop", "camd@feed", timeout=60)
        wait_until(lambda: machine.fetch("http://127.0.0.1:8080/healthz")[0] == 503, 30, what="camd offline")
        deadline = time.monotonic() + 3 * 4  # three watchdog periods with the camera gone
        while time.monotonic() < deadline:
            shown = machine.show("camd", "ActiveState", "NRestarts", "MainPID")
            assert shown["ActiveState"] == "active", shown
            assert (shown["NRestarts"], shown["MainPID"]) == (before["NRestarts"], before["MainPID"]), shown
            time.sleep(1)
        machine.run("systemctl", "start", "camd@feed", timeout=90)
        wait_until(lambda: machine.fetch("http://127.0.0.1:8080/healthz")[0] == 200, 60, what="camd live again")
        assert machine.show("camd", "MainPID")["MainPID"] == before["MainPID"]


def test_a_hung_camera_starves_the_watchdog_and_systemd_restarts_camd(installed: Installed) -> None:
    """The camera is camd@feed's stream over HTTP; SIGSTOP on camd@feed makes it hang mid-stream, as a
    wedged network camera does: connected, sending nothing."""
    machine = installed.machine
    with watching_the_feed(machine) as before:
        machine.run("systemctl", "kill", "--signal=STOP", "camd@feed")
        stopped = time.monotonic()
        wait_until(
            lambda: int(machine.show("camd", "NRestarts")["NRestarts"]) > int(before["NRestarts"]), 60,
            interval=0.5, what="systemd to restart camd",
        )  # fmt: skip
        print(f"camd-real: a hung camera had camd restarted after {time.monotonic() - stopped:.1f}s")
        messages = [e.get("MESSAGE", "") for e in machine.journal("_PID=1", "UNIT=camd.service")]
        assert any("Watchdog timeout" in m for m in messages), messages[-20:]
        machine.run("systemctl", "kill", "--signal=CONT", "camd@feed")
        wait_active(machine)
        wait_until(lambda: machine.fetch("http://127.0.0.1:8080/healthz")[0] == 200, 60, what="camd live again")


def test_stop_is_clean_and_both_start_again_after_a_reboot(installed: Installed) -> None:
    machine = installed.machine
    started = time.monotonic()
    machine.run("systemctl", "stop", "camd", timeout=30)
    print(f"camd-real: systemctl stop camd took {time.monotonic() - started:.1f}s")
    shown = machine.show("camd", "ActiveState", "Result", "ExecMainStatus")  # Result=timeout past TimeoutStopSec
    assert shown == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    machine.poweroff()
    machine.boot()
    for unit in ("camd", "camd@feed"):
        wait_active(machine, unit)
    wait_until(lambda: machine.fetch("http://127.0.0.1:8080/healthz")[0] == 200, 30, what="camd live after boot")


def test_uninstall_keeps_the_data_and_purge_removes_everything(installed: Installed) -> None:
    machine = installed.machine
    output = machine.run("bash", "/src/systemd/install.sh", "--uninstall", timeout=120).stdout
    assert "kept /var/lib/camd" in output and "kept your edited /etc/camd/camd.toml" in output
    for unit in ("camd", "camd@feed"):
        assert machine.show(unit, "LoadState")["LoadState"] == "not-found", unit
    assert processes_of(machine, "camd") == []
    kept = set(machine.sh("ls /var/lib/camd").split())
    # The activity log and timelapses appear once camd has seen movement or built one: kept too, when there.
    assert {"bad", "feed", "initial-password", "stills", "users"} <= kept <= {
        "bad", "feed", "initial-password", "stills", "users", "activity", "timelapse",
    }, kept  # fmt: skip
    assert machine.run("test", "-e", "/opt/camd", check=False).returncode == 1

    machine.run("bash", "/src/systemd/install.sh", "--uninstall", "--purge", timeout=120)
    for path in ("/var/lib/camd", "/etc/camd", "/opt/camd", "/etc/sysusers.d/camd.conf"):
        assert machine.run("test", "-e", path, check=False).returncode == 1, path
    assert machine.run("getent", "passwd", "camd", check=False).returncode == 2


def processes_of(machine: Machine, user: str) -> list[str]:
    """The PIDs running as ``user`` (the machine has no procps)."""
    owners = machine.sh("for p in /proc/[0-9]*; do echo $(stat -c %U $p 2>/dev/null) ${p#/proc/}; done")
    return [line.split()[1] for line in owners.splitlines() if line.split()[:1] == [user]]


# --- an image made on this machine --------------------------------------------------------------------


def test_an_image_made_with_root_boots_into_a_working_camd(
    rootfs: Path, wheels: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """install.sh --root builds the venv here, under the image's directory; at boot it runs at /opt/camd."""
    python = "/usr/bin/python3"
    if not Path(python).exists() or not (rootfs / python.lstrip("/")).exists():
        unavailable(f"{python} is needed both here and in the image")
    # The venv links to this machine's python by its path; the image must have the same python there.
    here, there = Path(python).resolve().name, os.readlink(rootfs / python.lstrip("/"))
    if here != there:
        unavailable(f"{python} is {here} here and {there} in the image")
    workdir = tmp_path_factory.mktemp("image")
    output: list[str] = []

    def prepare(root: Path) -> None:
        write(root, "/etc/camd/camd.toml", CONFIG)
        command = ["bash", str(REPO / "systemd/install.sh"), "--root", str(root), "--python", python,
                   "--wheels", str(wheels)]  # fmt: skip
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "PYTHON"))}
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        output.append(result.stdout)

    with machine_from(rootfs, workdir, "camd-image", prepare) as machine:
        password = re.search(r"first login: user admin, password (\S+)", output[0])
        assert password, output[0]
        shown = wait_active(machine, timeout=90)
        assert shown["NRestarts"] == "0", shown
        assert machine.fetch("http://127.0.0.1:8080/api/status", password.group(1))[0] == 200
        # The command the README gives for changing the password works in the image too.
        machine.run("runuser", "-u", "camd", "--", "env", "STATE_DIRECTORY=/var/lib/camd",
                    "/opt/camd/venv/bin/camd", "passwd", "admin", input="a new password\n")  # fmt: skip
        wait_until(
            lambda: machine.fetch("http://127.0.0.1:8080/api/status", "a new password")[0] == 200, 10,
            what="the new password to work",
        )  # fmt: skip
        # The first password install.sh kept is gone with it.
        assert machine.run("test", "-e", "/var/lib/camd/initial-password", check=False).returncode == 1
