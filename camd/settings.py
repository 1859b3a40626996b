"""Every setting camd has, with its default, its range and where it came from.

Precedence is flag > environment (``CAMD_<NAME>``) > TOML file > default. All
values are parsed and checked here, once, at start; the rest of the daemon
reads a frozen :class:`Settings` and never re-validates.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camd.redact import redact_url

DEFAULT_CONFIG = Path("/etc/camd/camd.toml")
ENV_PREFIX = "CAMD_"


class SettingsError(ValueError):
    """A setting has a value camd cannot use; the message is one line for the user."""


# --- value parsers --------------------------------------------------------------
# Each takes the raw value (a str from a flag or the environment, or a TOML value)
# and returns the typed value or raises ValueError with what is allowed.

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(raw: Any) -> float:
    """Seconds from ``90``, ``1.5``, ``250ms``, ``90s``, ``5m``, ``12h``, ``7d`` or ``1h30m``."""
    if isinstance(raw, bool):
        raise ValueError("a duration such as 90s, 5m, 12h or 7d")
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        text = str(raw).strip()
        if _NUMBER.fullmatch(text):
            value = float(text)
        elif _DURATION.fullmatch(text):
            value = sum(float(number) * _UNITS[unit] for number, unit in _DURATION_PART.findall(text))
        else:
            raise ValueError("a duration such as 90s, 5m, 12h or 7d")
    if not math.isfinite(value) or value < 0:
        raise ValueError("a duration such as 90s, 5m, 12h or 7d")
    return value


_SHOWN_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


def format_duration(seconds: float) -> str:
    """A duration as people write it: ``5m``, ``7d``, ``1h30m``, ``2.5s``, ``250ms`` (reads back to the same value)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms" if seconds else "0s"
    parts: list[str] = []
    rest = seconds
    for unit, size in _SHOWN_UNITS[:-1]:
        count = math.floor(rest / size)
        if count:
            parts.append(f"{count}{unit}")
            rest -= count * size
    if rest:
        parts.append(f"{round(rest, 3):g}s")
    return "".join(parts)


def parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("a whole number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d+\s*", raw):
        return int(raw)
    raise ValueError("a whole number")


def parse_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError("a number") from None
    if not math.isfinite(value):
        raise ValueError("a number")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("on or off")


def parse_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError("a string")
    return raw


def parse_path(raw: Any) -> Path | None:
    if not isinstance(raw, str):
        raise ValueError("a path")
    if raw.strip() in ("", "none"):
        return None
    return Path(raw).expanduser()


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        text = str(raw).strip().lower()
        if isinstance(raw, bool) or text not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return text

    return parse


def parse_rotation(raw: Any) -> int:
    text = str(raw).strip()
    if isinstance(raw, bool) or text not in ("0", "90", "180", "270"):
        raise ValueError("0, 90, 180 or 270 (degrees clockwise)")
    return int(text)


def parse_optional_bool(raw: Any) -> bool | None:
    """on/off, or ``camera`` (the default): leave the camera's own setting."""
    if isinstance(raw, str) and raw.strip().lower() in ("camera", ""):
        return None
    try:
        return parse_bool(raw)
    except ValueError:
        raise ValueError("on, off or camera (leave the camera's own)") from None


def parse_optional_int(raw: Any) -> int | None:
    if isinstance(raw, str) and raw.strip().lower() in ("camera", ""):
        return None
    try:
        return parse_int(raw)
    except ValueError:
        raise ValueError("a whole number, or camera (leave the camera's own)") from None


def parse_power_line(raw: Any) -> str | None:
    text = str(raw).strip().lower().removesuffix("hz").strip()
    if isinstance(raw, str) and text in ("camera", ""):
        return None
    if isinstance(raw, bool) or text not in ("50", "60", "off", "auto"):
        raise ValueError("50, 60, off, auto, or camera (leave the camera's own)")
    return text


def parse_fourcc(raw: Any) -> str:
    text = str(raw).strip()
    if text.lower() == "auto":
        return "auto"
    if isinstance(raw, str) and len(text) == 4 and text.isascii() and text.isprintable():
        return text.upper()
    raise ValueError("auto or four characters such as MJPG or YUYV")


def parse_mask(raw: Any) -> str:
    """Activity mask rectangles, checked here and parsed again by the detector."""
    from camd.activity import MaskError
    from camd.activity import parse_mask as parse_rects

    if not isinstance(raw, str):
        raise ValueError("rectangles 'x,y,w,h' in percent of the frame, separated by ';'")
    try:
        parse_rects(raw)
    except MaskError as exc:
        raise ValueError(str(exc)) from None
    return raw.strip()


# --- the table of settings ---------------------------------------------------------


def _setting(
    default: Any,
    parse: Callable[[Any], Any],
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field carrying how to parse and check it and the --help text."""
    meta = {"parse": parse, "help": help, "low": low, "high": high, "metavar": metavar}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """The settings in effect; build it with :func:`load`."""

    host: str = _setting("0.0.0.0", parse_str, "address to listen on", metavar="ADDR")
    port: int = _setting(8080, parse_int, "port to listen on (0: any free one)", low=0, high=65535)
    state_dir: Path | None = _setting(
        None, parse_path, "where camd keeps its files [$STATE_DIRECTORY, else ~/.local/share/camd]"
    )
    users_file: Path | None = _setting(None, parse_path, "basic-auth users [<state_dir>/users]")
    source: str = _setting(
        "auto", parse_str, "auto, test, /dev/videoN, N, file:PATH, rtsp://..., http://...", metavar="SPEC"
    )
    width: int = _setting(1280, parse_int, "width to ask the camera for", low=16, high=7680)
    height: int = _setting(720, parse_int, "height to ask the camera for", low=16, high=4320)
    fps: float = _setting(30.0, parse_float, "frame rate to ask the camera for", low=0.1, high=240)
    fourcc: str = _setting("auto", parse_fourcc, "pixel format to ask for (MJPG, YUYV, ...)")
    passthrough: str = _setting(
        "auto", choice("auto", "on", "off"), "serve a JPEG source's bytes as they are: auto, on, off"
    )
    rotate: int = _setting(
        0,
        parse_rotation,
        "turn the picture clockwise by 0, 90, 180 or 270 degrees (not 0: no JPEG passthrough)",
        metavar="DEGREES",
    )
    flip: str = _setting(
        "none",
        choice("none", "horizontal", "vertical"),
        "mirror the picture: none, horizontal, vertical (not none: no JPEG passthrough)",
    )
    power_line_frequency: str | None = _setting(
        None,
        parse_power_line,
        "mains frequency, against flicker: 50, 60, off, auto (default: the camera's own)",
        metavar="HZ",
    )
    auto_exposure: bool | None = _setting(
        None, parse_optional_bool, "automatic exposure: on, off (default: the camera's own)", metavar="ON|OFF"
    )
    exposure: int | None = _setting(
        None, parse_optional_int,
        "fixed exposure time in units of 100 microseconds (turns auto_exposure off; default: the camera's own)",
        low=1, high=100000, metavar="N",
    )  # fmt: skip
    brightness: int | None = _setting(
        None, parse_optional_int, "brightness, in the camera's own range (see camd probe; default: the camera's own)",
        low=-100000, high=100000, metavar="N",
    )  # fmt: skip
    auto_white_balance: bool | None = _setting(
        None, parse_optional_bool, "automatic white balance: on, off (default: the camera's own)", metavar="ON|OFF"
    )
    focus: int | None = _setting(
        None, parse_optional_int,
        "fixed focus, in the camera's own range (turns autofocus off; see camd probe; default: the camera's own)",
        low=0, high=100000, metavar="N",
    )  # fmt: skip
    autofocus: bool | None = _setting(
        None, parse_optional_bool, "continuous autofocus: on, off (default: the camera's own)", metavar="ON|OFF"
    )
    jpeg_quality: int = _setting(80, parse_int, "quality of the JPEGs camd encodes", low=1, high=100)
    warmup_delay: float = _setting(2.0, parse_duration, "seconds of frames to discard after open", high=300)
    warmup_frames: int = _setting(13, parse_int, "frames to discard after the delay", low=0, high=10000)
    warmup_max: float = _setting(10.0, parse_duration, "longest wait for the picture to settle", high=600)
    stall_timeout: float = _setting(
        5.0, parse_duration, "no valid frame for this long = camera lost", low=0.5, high=600
    )
    max_clients: int = _setting(64, parse_int, "concurrent stream viewers", low=1, high=10000)
    stills_interval: float = _setting(
        300.0, parse_duration, "save a still every so often, on the clock (0: only when asked)", high=7 * 86400
    )
    stills_dir: Path | None = _setting(None, parse_path, "where stills go [<state_dir>/stills]")
    stills_quality: int = _setting(90, parse_int, "JPEG quality of stills", low=1, high=100)
    stills_banner: bool = _setting(True, parse_bool, "draw a timestamp banner on stills")
    stills_max_age: float = _setting(
        7 * 86400.0, parse_duration, "delete stills older than this (0: keep)", high=3650 * 86400
    )
    stills_max_count: int = _setting(0, parse_int, "keep at most this many stills (0: no limit)", low=0)
    stills_min_free_mb: int = _setting(
        200, parse_int, "delete old stills to keep this much disk free", low=0, high=10_000_000
    )
    activity: bool = _setting(True, parse_bool, "measure activity (change in the picture) and log its events")
    activity_rate: float = _setting(
        5.0, parse_float, "pictures per second the activity score looks at", low=0.2, high=30
    )
    activity_sensitivity: int = _setting(
        50, parse_int, "how small a change counts (100: the smallest above the noise)", low=1, high=100
    )
    activity_min_area: float = _setting(
        0.5, parse_float, "percent of the picture that must change to count as activity", low=0.01, high=50
    )
    activity_mask: str = _setting(
        "", parse_mask, "regions to ignore: 'x,y,w,h' in percent of the frame, ';' between them", metavar="RECTS"
    )
    activity_quiet: float = _setting(
        5.0, parse_duration, "an event ends after this long without activity", low=0.5, high=3600
    )
    activity_min_gap: float = _setting(60.0, parse_duration, "at most one event still per this long", high=86400)
    activity_stills: bool = _setting(True, parse_bool, "save a still at each activity event's peak")
    timelapse_fps: float = _setting(10.0, parse_float, "frames per second of a day's timelapse", low=1, high=60)
    title: str = _setting("camd", parse_str, "title of the landing page")
    description: str = _setting("", parse_str, "text of the landing page")
    log_level: str = _setting("info", choice("debug", "info", "warning", "error"), "debug, info, warning, error")
    tls_cert: Path | None = _setting(None, parse_path, "PEM certificate: serve https")
    tls_key: Path | None = _setting(None, parse_path, "PEM private key for tls_cert")

    # --- derived paths ---------------------------------------------------------

    @property
    def state_path(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        systemd_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        if systemd_dir:
            return Path(systemd_dir)
        return Path.home() / ".local" / "share" / "camd"

    @property
    def users_path(self) -> Path:
        return self.users_file or self.state_path / "users"

    @property
    def stills_path(self) -> Path:
        return self.stills_dir or self.state_path / "stills"

    def public_view(self) -> dict[str, Any]:
        """The settings as plain values, for the start-up log: a password in the source URL is hidden."""
        view = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        view["source"] = redact_url(self.source)
        return view

    def describe(self, only_changed: bool = False) -> str:
        """``name=value`` pairs as people write them (``stills_interval=5m``), for the log; no secrets."""
        pairs = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if only_changed and value == f.default:
                continue
            pairs.append(f"{f.name}={show(f.name, value)}")
        return " ".join(pairs)


def is_duration(name: str) -> bool:
    return FIELDS[name].metadata["parse"] is parse_duration


def show(name: str, value: Any) -> str:
    """One setting's value as it would be written in a flag: durations in units, on/off, quoted text."""
    if value is None:
        return "none"
    if name == "source":
        value = redact_url(value)
    if is_duration(name):
        return format_duration(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return repr(text) if (not text or any(ch.isspace() for ch in text)) else text


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Settings)}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def describe_range(name: str) -> str:
    meta = FIELDS[name].metadata
    low, high = meta["low"], meta["high"]
    if is_duration(name):
        low = format_duration(low) if low is not None else None
        high = format_duration(high) if high is not None else None
    if low is not None and high is not None:
        return f"{_fmt(low)} to {_fmt(high)}"
    if low is not None:
        return f"at least {_fmt(low)}"
    if high is not None:
        return f"at most {_fmt(high)}"
    return ""


def _fmt(number: float | str) -> str:
    if isinstance(number, str):
        return number
    return str(int(number)) if float(number).is_integer() else str(number)


def check_value(name: str, raw: Any, origin: str) -> Any:
    """Parse and range-check one raw value; raise SettingsError naming the setting."""
    meta = FIELDS[name].metadata
    try:
        value = meta["parse"](raw)
    except ValueError as exc:
        raise SettingsError(f"{origin}: {name}={raw!r} is not valid: expected {exc}") from None
    low, high = meta["low"], meta["high"]
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and ((low is not None and value < low) or (high is not None and value > high)):
        raise SettingsError(f"{origin}: {name}={raw!r} is out of range: allowed {describe_range(name)}")
    return value


def suggest(key: str) -> str:
    close = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def read_config(path: Path) -> dict[str, Any]:
    """The TOML file's keys, checked to be known settings."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config: {path} does not exist") from None
    except PermissionError:
        raise SettingsError(f"config: {path} is not readable by this user") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config: {path} is not valid TOML: {exc}") from None
    for key, value in data.items():
        if key not in FIELDS:
            raise SettingsError(f"{path}: unknown setting {key!r}{suggest(key)}")
        if isinstance(value, dict | list):
            raise SettingsError(f"{path}: {key} must be a single value, not a table or list")
    return data


def load(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config: Path | None = None,
) -> Settings:
    """Merge defaults, the TOML file, ``CAMD_*`` variables and flags, and check them all.

    ``config`` is the file given with ``--config``; without it the system file is
    read when it exists. ``flags`` holds only the flags the user actually gave.
    """
    environ = os.environ if environ is None else environ
    flags = flags or {}
    if config is None and environ.get(ENV_PREFIX + "CONFIG"):
        config = Path(environ[ENV_PREFIX + "CONFIG"])
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG

    values: dict[str, Any] = {}
    if config is not None:
        for key, raw in read_config(config).items():
            values[key] = check_value(key, raw, str(config))
    for name in FIELDS:
        if env_name(name) in environ:
            values[name] = check_value(name, environ[env_name(name)], env_name(name))
    for name, raw in flags.items():
        values[name] = check_value(name, raw, flag_name(name))

    settings = Settings(**values)
    _check_together(settings)
    return settings


def _check_together(settings: Settings) -> None:
    """Checks that involve more than one setting."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SettingsError("tls_cert and tls_key: give both to serve https, or neither")
    for name in ("tls_cert", "tls_key"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise SettingsError(f"{name}={str(path)!r}: no such file")
    if settings.exposure is not None and settings.auto_exposure:
        raise SettingsError("exposure and auto_exposure=on: a fixed exposure needs auto_exposure off (or unset)")
    if settings.focus is not None and settings.autofocus:
        raise SettingsError("focus and autofocus=on: a fixed focus needs autofocus off (or unset)")
    if settings.passthrough == "on" and (settings.rotate or settings.flip != "none"):
        raise SettingsError("passthrough=on cannot rotate or flip the picture: that needs its pixels; use auto or off")
    if not settings.host.strip():
        raise SettingsError("host='': give an address such as 0.0.0.0 or 127.0.0.1")
