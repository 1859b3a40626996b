"""What a person reads when camd has started: where to open it, who to log in as, how to change it.

The block ends the start-up output. It goes to the terminal (with the first
password, which never goes to a log) when there is one, else to the log
(naming the file that holds the first password).
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import logging
import os
import pwd
import shlex
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from camd import users as users_module
from camd.settings import Settings

log = logging.getLogger("camd")

SIOCGIFADDR = 0x8915
# Interfaces a phone on the same network cannot reach: containers, VMs, VPN-less bridges.
VIRTUAL_PREFIXES = ("lo", "docker", "veth", "br-", "virbr", "lxc", "cni", "flannel", "podman", "tun", "wg")
AVAHI_PID = Path("/run/avahi-daemon/pid")


def camd_command() -> str:
    """How the person at this shell runs camd: ``camd`` on the PATH, ``.venv/bin/camd`` in a checkout, ..."""
    script = Path(sys.prefix) / "bin" / "camd"
    on_path = shutil.which("camd")
    if on_path and script.exists() and Path(on_path).resolve() == script.resolve():
        return "camd"
    if script.exists():
        here = Path.cwd()
        if here != Path(here.anchor) and script.is_relative_to(here):
            return str(script.relative_to(here))  # a checkout's .venv/bin/camd, as start.sh's user types it
        return str(script)
    return f"{shlex.quote(sys.executable)} -m camd"


def passwd_command(settings: Settings, user: str) -> str:
    """A ``camd passwd USER`` that changes the users file this daemon reads, run as the user that owns it."""
    command = f"{camd_command()} passwd {shlex.quote(user)}"
    if settings.users_file is not None:
        command += f" --users-file {shlex.quote(str(settings.users_file))}"
    if settings.state_dir is not None:
        command += f" --state-dir {shlex.quote(str(settings.state_dir))}"
    elif os.environ.get("STATE_DIRECTORY"):
        # Under systemd: the state directory comes from the unit, and the files belong to its user.
        try:
            owner = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:  # a uid without a name (a container): sudo takes '#UID'
            owner = f"'#{os.geteuid()}'"
        command = f"sudo -u {owner} env STATE_DIRECTORY={shlex.quote(str(settings.state_path))} {command}"
    return command


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses that other devices on the network can reach (no loopback, no bridges)."""
    found: list[str] = []
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        interfaces = socket.if_nameindex()
    except OSError:
        return found  # no IPv4 here at all: nothing a phone could open
    with sock:
        for _, name in interfaces:
            if name.startswith(VIRTUAL_PREFIXES):
                continue
            request = array.array("B", struct.pack("256s", name.encode()[:15]))
            try:
                fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            address = ipaddress.IPv4Address(bytes(request[20:24]))
            if not (address.is_loopback or address.is_link_local or address.is_unspecified):
                found.append(str(address))
    return found


def mdns_name() -> str | None:
    """``hostname.local`` when avahi answers for it (Raspberry Pi OS runs it), else None."""
    if not AVAHI_PID.exists():
        return None
    return socket.gethostname().split(".")[0] + ".local"


@dataclass(frozen=True)
class Urls:
    here: str
    network: list[str]
    note: str = ""


def urls(host: str, port: int, tls: bool) -> Urls:
    """The URLs to open from this machine and from other devices, for a server on ``host:port``."""
    scheme = "https" if tls else "http"

    def url(name: str) -> str:
        if ":" in name:
            name = f"[{name}]"
        return f"{scheme}://{name}:{port}/"

    if host in ("0.0.0.0", "::", ""):
        names = lan_addresses()
        if mdns := mdns_name():
            names.append(mdns)
        note = "" if names else "No network address found: is this machine on a network?"
        return Urls(url("localhost"), [url(name) for name in names], note)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback:
        return Urls(
            url(host), [], f"Only this machine can open it (host={host}); --host 0.0.0.0 opens it to the network."
        )
    return Urls(url(host), [url(host)])


def block(settings: Settings, port: int, tls: bool, password: str | None) -> str:
    """The lines a person reads at the end of start-up; ``password`` only when it is shown on a terminal."""
    where = urls(settings.host, port, tls)
    lines = ["camd is ready.", f"  Open it on this machine:   {where.here}"]
    if where.network:
        lines.append("  From a phone or a laptop on the same network:")
        lines += [f"                             {url}" for url in where.network]
    if where.note:
        lines.append(f"  {where.note}")
    first_user = users_module.initial_password_user(settings.state_path)
    if first_user is not None:
        lines.append(f"  Log in as:                 {first_user}")
        secret_file = settings.state_path / users_module.INITIAL_PASSWORD_FILE
        if password is not None:
            lines.append(f"  Password:                  {password}")
            lines.append(f"                             (also in {secret_file} until you change it)")
        else:
            lines.append(f"  Password:                  in {secret_file}")
        lines.append(f"  Change it:                 {passwd_command(settings, first_user)}")
    else:
        try:
            names = users_module.read_users(settings.users_path)
        except (users_module.UsersError, OSError):  # being edited right now: the daemon's own copy is fine
            names = {}
        user = next(iter(names)) if len(names) == 1 else "USER"
        who = user if len(names) == 1 else f"one of the {len(names)} users in {settings.users_path}"
        lines.append(f"  Log in as:                 {who}, with the password you set")
        lines.append(f"  Forgot it? Set a new one:  {passwd_command(settings, user)}")
    if tls is False and where.network:
        lines.append("  Plain http: anyone on this network can read the password; see the README for https.")
    return "\n".join(lines)


def settle(is_settling: Callable[[], bool], stop: threading.Event, limit: float) -> None:
    """Wait (at most ``limit`` seconds, or until stop) for the camera's warm-up, so the block comes last."""
    deadline = time.monotonic() + limit
    while is_settling() and not stop.is_set() and time.monotonic() < deadline:
        stop.wait(0.1)


def announce(settings: Settings, port: int, tls: bool, first_password: str | None) -> None:
    """End start-up with the block: on the terminal with the first password, or in the log without it."""
    if sys.stdout.isatty():
        sys.stdout.write("\n" + block(settings, port, tls, first_password) + "\n\n")
        sys.stdout.flush()
    else:
        log.info("%s", block(settings, port, tls, None))
