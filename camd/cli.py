"""The command line: ``camd run``, ``camd passwd``, ``camd probe``, built from the settings table."""

from __future__ import annotations

import argparse
import difflib
import getpass
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import camd
from camd import settings as settings_module
from camd import users as users_module
from camd.settings import FIELDS, Settings, SettingsError

if TYPE_CHECKING:
    from camd.sources import Source  # importing it loads OpenCV: only the commands that need it do

COMMANDS = ("run", "passwd", "probe", "still")
# Settings that only make sense for the daemon itself; probe takes the rest.
CAPTURE_SETTINGS = (
    "source", "width", "height", "fps", "fourcc", "passthrough", "rotate", "flip", "power_line_frequency",
    "auto_exposure", "exposure", "brightness", "auto_white_balance", "focus", "autofocus", "jpeg_quality",
    "warmup_delay", "warmup_frames", "warmup_max", "stall_timeout", "state_dir", "log_level",
)  # fmt: skip
FILE_SETTINGS = ("state_dir", "users_file")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions as written; defaults are in each setting's own help text."""


class _Parser(argparse.ArgumentParser):
    """argparse that answers a mistyped option with the closest one it knows ("did you mean")."""

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        for extra in extras:
            if extra.startswith("--"):
                known = [option for action in self._actions for option in action.option_strings]
                close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1, cutoff=0.6)
                if close:
                    self.error(f"unknown option {extra} (did you mean {close[0]}?)")
        return parsed, extras


def _default_text(name: str) -> str:
    field = FIELDS[name]
    default = field.default
    if default is None:
        return ""
    return f" (default: {settings_module.show(name, default)})"


def _add_settings(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    group = parser.add_argument_group(
        "settings", "each is also CAMD_<NAME> in the environment and <name> in the TOML file"
    )
    for name, field in FIELDS.items():
        if names is not None and name not in names:
            continue
        meta = field.metadata
        allowed = settings_module.describe_range(name)
        text = meta["help"] + _default_text(name) + (f"; {allowed}" if allowed else "")
        flag = settings_module.flag_name(name)
        if meta["parse"] is settings_module.parse_bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=text)  # fmt: skip
        else:
            duration = meta["parse"] is settings_module.parse_duration
            metavar = meta["metavar"] or ("DURATION" if duration else name.upper())
            group.add_argument(flag, dest=name, metavar=metavar, default=argparse.SUPPRESS,
                               help=text.replace("%", "%%"))  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="camd",
        description="A camera daemon: a live MJPEG stream, stills on the clock, basic auth.",
        epilog="Without a command, camd runs the daemon (camd run).",
    )
    parser.add_argument("--version", action="version", version=f"camd {camd.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser(
        "run", help="run the daemon (the default)", formatter_class=_Formatter,
        description="Run the daemon: capture, stream, stills, web server.",
    )  # fmt: skip
    run.add_argument("--config", type=Path, metavar="FILE",
                     help=f"TOML settings file (default: {settings_module.DEFAULT_CONFIG} when present)")  # fmt: skip
    _add_settings(run)

    passwd = commands.add_parser(
        "passwd", help="set or delete a user's password",
        description="Ask for a password twice (or read one line from standard input when it is "
        "not a terminal) and store its salted hash in the users file.",
    )  # fmt: skip
    passwd.add_argument("user", metavar="USER")
    passwd.add_argument("--delete", action="store_true", help="remove the user instead")
    passwd.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    _add_settings(passwd, FILE_SETTINGS)

    probe = commands.add_parser(
        "probe", help="list the cameras and what they offer, open the source, report what it gives",
        formatter_class=_Formatter,
        description="List the V4L2 devices tried and what each offers (formats, sizes, frame rates, controls "
        "with range and current value), then open the source, warm it up and print backend, resolution, fps, "
        "pixel format and warm-up result. Exits 1 when no camera is found or it gives no picture.",
    )  # fmt: skip
    probe.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    probe.add_argument("--output", type=Path, metavar="FILE", help="also write one still there (default: none)")
    _add_settings(probe, CAPTURE_SETTINGS)

    still = commands.add_parser(
        "still", help="ask the running daemon to take a still now",
        description="Ask the camd that runs with this state directory to take a still now (it is sent "
        "SIGUSR1, so run this as the daemon's user or root), and print the still's path once it is saved.",
    )  # fmt: skip
    still.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    still.add_argument("--wait", type=settings_module.parse_duration, default=10.0, metavar="DURATION",
                       help="how long to wait for the still to be saved (default: 10s)")  # fmt: skip
    _add_settings(still, ("state_dir", "stills_dir"))
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line; a missing command means ``run``."""
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["run", *argv]
    return build_parser().parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {name: value for name, value in vars(args).items() if name in FIELDS}
    return settings_module.load(flags, config=getattr(args, "config", None))


# --- camd passwd -------------------------------------------------------------------


def read_new_password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise SettingsError("passwd: the two passwords differ; nothing changed")
    if len(password) < 8:
        raise SettingsError("passwd: a password needs at least 8 characters; nothing changed")
    return password


def cmd_passwd(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    path = settings.users_path
    try:
        users_module.check_name(args.user)
        if args.delete:
            if not users_module.delete_user(path, args.user):
                sys.stderr.write(f"camd: no user {args.user!r} in {path}\n")
                return 1
            sys.stdout.write(f"deleted {args.user} from {path}\n")
            users_module.forget_initial_password(settings.state_path, args.user)  # it could no longer log in
            return 0
        users_module.set_password(path, args.user, read_new_password())
    except users_module.UsersError as exc:
        raise SettingsError(f"passwd: {exc}") from None
    sys.stdout.write(f"password for {args.user} saved in {path}\n")
    if users_module.forget_initial_password(settings.state_path, args.user):
        sys.stdout.write(f"removed the first password from {settings.state_path}\n")
    return 0


# --- camd probe ----------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace) -> int:
    from camd import v4l2
    from camd.sources import TestPatternSource, make_source

    settings = settings_from(args)
    spec = settings.source.strip()
    if spec == "auto" or spec.isdigit() or spec.startswith("/dev/"):
        paths = v4l2.devices() if spec == "auto" else [v4l2.node_path(spec)]
        found = [path for path in paths if _describe_device(path)]
        if not found:
            tried = f"tried {', '.join(paths)}" if paths else "no /dev/video* device"
            sys.stderr.write(f"camd: no camera found ({tried})\n")
            return 1
        sys.stdout.write("\n")
    source = make_source(settings)  # a bad spec is a usage error before anything opens
    if isinstance(source, TestPatternSource) and spec == "auto":
        sys.stderr.write("camd: no camera found: no capture device gave a picture\n")
        return 1
    return _probe_source(settings, source, args.output)


def _describe_device(path: str) -> bool:
    """Print what the node at ``path`` offers; True for a video capture node."""
    from camd import v4l2

    try:
        info = v4l2.describe(path)
    except OSError as exc:
        sys.stdout.write(f"{path}: {exc.strerror or exc}\n")
        return False
    where = ", ".join(part for part in (info.driver, info.bus) if part)
    skipped = "" if info.capture else ", skipped"
    sys.stdout.write(f"{path}: {info.card} ({where}): {info.kinds}{skipped}\n")
    if not info.capture:
        return False
    sys.stdout.write("  formats:\n")
    for fmt in info.formats:
        sizes = ", ".join(
            f"{width}x{height}" + (f" ({', '.join(f'{rate:g}' for rate in rates)} fps)" if rates else "")
            for width, height, rates in fmt.sizes
        )
        sys.stdout.write(f"    {fmt.fourcc} {fmt.description}: {sizes or 'no sizes listed'}\n")
    sys.stdout.write("  controls:\n" if info.controls else "  controls: none\n")
    for control in info.controls:
        sys.stdout.write(f"    {control.describe()}\n")
    return True


def _probe_source(settings: Settings, source: Source, output: Path | None) -> int:
    """Open ``source`` the way the daemon does (warm-up and gate included) and report what it gives."""
    from camd.capture import Capture
    from camd.hub import LIVE, OFFLINE, Hub
    from camd.redact import redact_url

    hub = Hub(settings.jpeg_quality)
    capture = Capture(settings, lambda: source, hub)
    limit = settings.warmup_delay + settings.warmup_max + settings.stall_timeout + 5
    capture.start()
    try:
        deadline = time.monotonic() + limit
        # A source that fails to open is reported at once, not after the daemon's reopen backoff.
        while hub.camera.state not in (LIVE, OFFLINE) and time.monotonic() < deadline:
            time.sleep(0.05)
        frame = hub.latest_live
        camera = hub.camera
    finally:
        capture.stop()
    if frame is None:
        why = camera.error or (f"no valid frame within {limit:.0f}s" if camera.state != OFFLINE else camera.state)
        sys.stderr.write(f"camd: {redact_url(settings.source)}: {why}\n")
        return 1
    lines = [
        f"source:       {camera.source}",
        f"backend:      {camera.backend}",
        f"resolution:   {camera.width}x{camera.height}",
        f"fps:          {camera.fps:g}",
        f"pixel format: {camera.pixel_format or 'BGR'}{' (JPEG passthrough)' if camera.passthrough else ''}",
        f"warm-up:      {camera.warmup_frames} frames in {camera.warmup_seconds:.2f}s, "
        f"{'settled' if camera.warmup_settled else 'did not settle'}",
    ]
    if output is not None:
        output.write_bytes(frame.jpeg())
        lines.append(f"still:        {os.path.abspath(output)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# --- camd still ----------------------------------------------------------------------


def cmd_still(args: argparse.Namespace) -> int:
    """SIGUSR1 to the daemon that holds the state directory's lock, then wait for the new file."""
    from camd.lock import running_pid
    from camd.stills_index import day_of

    settings = settings_from(args)
    state = settings.state_path
    pid = running_pid(state)
    if pid is None:
        sys.stderr.write(f"camd: no camd is running with state_dir={str(state)!r}\n")
        return 1
    started = time.time()
    folders = {settings.stills_path / day_of(started), settings.stills_path / day_of(started + args.wait)}
    before = {path for folder in folders for path in folder.glob("*.jpg")}
    try:
        os.kill(pid, signal.SIGUSR1)
    except PermissionError:
        sys.stderr.write(f"camd: not allowed to signal camd (pid {pid}); run this as its user or root\n")
        return 1
    except ProcessLookupError:
        sys.stderr.write(f"camd: camd (pid {pid}) has just stopped\n")
        return 1
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        new = sorted(path for folder in folders for path in folder.glob("*.jpg") if path not in before)
        if new:
            sys.stdout.write(f"{new[-1]}\n")
            return 0
        time.sleep(0.1)
    waited = settings_module.format_duration(args.wait)
    sys.stderr.write(
        f"camd: asked camd (pid {pid}) for a still, but none was saved within {waited}"
        " (is the camera live? its log says why)\n"
    )
    return 1
