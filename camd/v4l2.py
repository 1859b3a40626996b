"""What a V4L2 device node is and offers: capabilities, formats, sizes, frame rates and controls.

OpenCV opens and streams the camera; it cannot list what a camera offers nor tell a
capture node from the metadata-only node UVC cameras also create, so camd asks the
driver itself with the ioctls of ``<linux/videodev2.h>`` (structures mirrored here
with ctypes). Only queries and ``S_CTRL``: nothing here streams.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# --- <linux/videodev2.h> ------------------------------------------------------------------

CAP_VIDEO_CAPTURE = 0x00000001
CAP_META_CAPTURE = 0x00800000
CAP_DEVICE_CAPS = 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
MEMORY_MMAP = 1
FRMSIZE_TYPE_DISCRETE = 1
FRMIVAL_TYPE_DISCRETE = 1
CTRL_FLAG_DISABLED = 0x0001
CTRL_FLAG_INACTIVE = 0x0010
CTRL_FLAG_NEXT_CTRL = 0x80000000
CTRL_TYPE_INTEGER, CTRL_TYPE_BOOLEAN, CTRL_TYPE_MENU, CTRL_TYPE_BUTTON = 1, 2, 3, 4
CTRL_TYPE_INTEGER_MENU = 9
CTRL_TYPE_CTRL_CLASS = 6

CID_BRIGHTNESS = 0x00980900
CID_AUTO_WHITE_BALANCE = 0x0098090C
CID_POWER_LINE_FREQUENCY = 0x00980918
CID_EXPOSURE_AUTO = 0x009A0901
CID_EXPOSURE_ABSOLUTE = 0x009A0902
CID_FOCUS_ABSOLUTE = 0x009A090A
CID_FOCUS_AUTO = 0x009A090C


class Capability(ctypes.Structure):
    _fields_ = [
        ("driver", ctypes.c_char * 16), ("card", ctypes.c_char * 32), ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32), ("capabilities", ctypes.c_uint32), ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]  # fmt: skip


class FmtDesc(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32), ("type", ctypes.c_uint32), ("flags", ctypes.c_uint32),
        ("description", ctypes.c_char * 32), ("pixelformat", ctypes.c_uint32), ("mbus_code", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]  # fmt: skip


class FrmSizeDiscrete(ctypes.Structure):
    _fields_ = [("width", ctypes.c_uint32), ("height", ctypes.c_uint32)]


class FrmSizeStepwise(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("min_w", "max_w", "step_w", "min_h", "max_h", "step_h")]


class FrmSizeUnion(ctypes.Union):
    _fields_ = [("discrete", FrmSizeDiscrete), ("stepwise", FrmSizeStepwise)]


class FrmSizeEnum(ctypes.Structure):
    _anonymous_ = ("size",)
    _fields_ = [
        ("index", ctypes.c_uint32), ("pixel_format", ctypes.c_uint32), ("type", ctypes.c_uint32),
        ("size", FrmSizeUnion), ("reserved", ctypes.c_uint32 * 2),
    ]  # fmt: skip


class Fract(ctypes.Structure):
    _fields_ = [("numerator", ctypes.c_uint32), ("denominator", ctypes.c_uint32)]


class FrmIvalStepwise(ctypes.Structure):
    _fields_ = [("min", Fract), ("max", Fract), ("step", Fract)]


class FrmIvalUnion(ctypes.Union):
    _fields_ = [("discrete", Fract), ("stepwise", FrmIvalStepwise)]


class FrmIvalEnum(ctypes.Structure):
    _anonymous_ = ("interval",)
    _fields_ = [
        ("index", ctypes.c_uint32), ("pixel_format", ctypes.c_uint32), ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32), ("type", ctypes.c_uint32), ("interval", FrmIvalUnion),
        ("reserved", ctypes.c_uint32 * 2),
    ]  # fmt: skip


class QueryCtrl(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint32), ("type", ctypes.c_uint32), ("name", ctypes.c_char * 32),
        ("minimum", ctypes.c_int32), ("maximum", ctypes.c_int32), ("step", ctypes.c_int32),
        ("default_value", ctypes.c_int32), ("flags", ctypes.c_uint32), ("reserved", ctypes.c_uint32 * 2),
    ]  # fmt: skip


class QueryMenuUnion(ctypes.Union):
    _pack_ = 1
    _fields_ = [("name", ctypes.c_char * 32), ("value", ctypes.c_int64)]


class QueryMenu(ctypes.Structure):
    _pack_ = 1  # packed in the kernel's header
    _anonymous_ = ("item",)
    _fields_ = [("id", ctypes.c_uint32), ("index", ctypes.c_uint32), ("item", QueryMenuUnion),
                ("reserved", ctypes.c_uint32)]  # fmt: skip


class RequestBuffers(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_uint32), ("type", ctypes.c_uint32), ("memory", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32), ("flags", ctypes.c_uint8), ("reserved", ctypes.c_uint8 * 3),
    ]  # fmt: skip


class Control(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("value", ctypes.c_int32)]


def _ioc(direction: int, number: int, struct: type[ctypes.Structure]) -> int:
    return (direction << 30) | (ctypes.sizeof(struct) << 16) | (ord("V") << 8) | number


_READ, _READ_WRITE = 2, 3
VIDIOC_QUERYCAP = _ioc(_READ, 0, Capability)
VIDIOC_ENUM_FMT = _ioc(_READ_WRITE, 2, FmtDesc)
VIDIOC_REQBUFS = _ioc(_READ_WRITE, 8, RequestBuffers)
VIDIOC_G_CTRL = _ioc(_READ_WRITE, 27, Control)
VIDIOC_S_CTRL = _ioc(_READ_WRITE, 28, Control)
VIDIOC_QUERYCTRL = _ioc(_READ_WRITE, 36, QueryCtrl)
VIDIOC_QUERYMENU = _ioc(_READ_WRITE, 37, QueryMenu)
VIDIOC_ENUM_FRAMESIZES = _ioc(_READ_WRITE, 74, FrmSizeEnum)
VIDIOC_ENUM_FRAMEINTERVALS = _ioc(_READ_WRITE, 75, FrmIvalEnum)

# --- what camd reports -----------------------------------------------------------------------


@dataclass(frozen=True)
class ControlInfo:
    """One control: its range, default and current value (menus with their item names)."""

    key: str  # the name v4l2-ctl shows, e.g. power_line_frequency
    id: int
    kind: str  # int, bool, menu, button, ...
    minimum: int
    maximum: int
    step: int
    default: int
    value: int | None
    inactive: bool
    menu: dict[int, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: ``brightness (int): -64 to 64 step 1, default 0, now 0``."""
        if self.kind == "menu":
            items = ", ".join(f"{index}={name}" for index, name in self.menu.items())
            span = f"menu {items}"
        elif self.kind == "bool":
            span = "on/off"
        else:
            span = f"{self.minimum} to {self.maximum}" + (f" step {self.step}" if self.step > 1 else "")
        now = "unreadable" if self.value is None else _value_text(self, self.value)
        inactive = " (inactive while the automatic mode is on)" if self.inactive else ""
        return f"{self.key} ({self.kind}): {span}, default {_value_text(self, self.default)}, now {now}{inactive}"


def _value_text(control: ControlInfo, value: int) -> str:
    if control.kind == "bool":
        return "on" if value else "off"
    if control.kind == "menu" and value in control.menu:
        return f"{value} ({control.menu[value]})"
    return str(value)


@dataclass(frozen=True)
class FormatInfo:
    fourcc: str
    description: str
    sizes: tuple[tuple[int, int, tuple[float, ...]], ...]  # width, height, frame rates


@dataclass(frozen=True)
class DeviceInfo:
    path: str
    driver: str
    card: str
    bus: str
    capture: bool  # a video capture node (not metadata-only, not output)
    kinds: str  # what the node is, in words
    formats: tuple[FormatInfo, ...] = ()
    controls: tuple[ControlInfo, ...] = ()


_KINDS = {CTRL_TYPE_INTEGER: "int", CTRL_TYPE_BOOLEAN: "bool", CTRL_TYPE_MENU: "menu",
          CTRL_TYPE_BUTTON: "button", CTRL_TYPE_INTEGER_MENU: "intmenu"}  # fmt: skip


def node_path(spec: str) -> str:
    """The device node a ``source`` names: ``/dev/videoN`` for ``N``, else the path as given."""
    return f"/dev/video{spec}" if spec.isdigit() else spec


def devices() -> list[str]:
    """The V4L2 nodes on this machine, /dev/video0 first."""
    return sorted(glob.glob("/dev/video[0-9]*"), key=lambda p: int(re.sub(r"\D", "", p) or 0))


@contextmanager
def opened(path: str) -> Iterator[int]:
    """The node opened for queries; non-blocking, so a busy camera cannot stall a query."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _ioctl(fd: int, request: int, arg: ctypes.Structure) -> bool:
    """True when the driver answered; False for EINVAL/ENOTTY (no such item); other errors raise."""
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTTY):
            return False
        raise
    return True


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


def fourcc_name(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip()


def capability(fd: int) -> Capability:
    cap = Capability()
    fcntl.ioctl(fd, VIDIOC_QUERYCAP, cap)
    return cap


def node_caps(cap: Capability) -> int:
    """What this node (not the whole device) can do."""
    return int(cap.device_caps if cap.capabilities & CAP_DEVICE_CAPS else cap.capabilities)


def is_capture_node(path: str) -> tuple[bool, str]:
    """Whether ``path`` is a video capture node, and what it is in words; OSError when it cannot be asked."""
    with opened(path) as fd:
        return _kind(node_caps(capability(fd)))


def _kind(caps: int) -> tuple[bool, str]:
    """Whether a node with these capabilities captures video, and what it is in words."""
    if caps & CAP_VIDEO_CAPTURE:
        return True, "video capture"
    if caps & CAP_META_CAPTURE:
        return False, "metadata only"
    return False, "not a capture device"


def formats(fd: int) -> tuple[FormatInfo, ...]:
    found = []
    for index in range(64):
        desc = FmtDesc(index=index, type=BUF_TYPE_VIDEO_CAPTURE)
        if not _ioctl(fd, VIDIOC_ENUM_FMT, desc):
            break
        found.append(FormatInfo(fourcc_name(desc.pixelformat), _text(desc.description), _sizes(fd, desc.pixelformat)))
    return tuple(found)


def _sizes(fd: int, pixelformat: int) -> tuple[tuple[int, int, tuple[float, ...]], ...]:
    sizes = []
    for index in range(256):
        size = FrmSizeEnum(index=index, pixel_format=pixelformat)
        if not _ioctl(fd, VIDIOC_ENUM_FRAMESIZES, size):
            break
        if size.type == FRMSIZE_TYPE_DISCRETE:
            width, height = size.discrete.width, size.discrete.height
        else:  # stepwise or continuous: report the largest
            width, height = size.stepwise.max_w, size.stepwise.max_h
        sizes.append((int(width), int(height), _rates(fd, pixelformat, width, height)))
        if size.type != FRMSIZE_TYPE_DISCRETE:
            break
    return tuple(sizes)


def _rates(fd: int, pixelformat: int, width: int, height: int) -> tuple[float, ...]:
    rates: list[float] = []
    for index in range(64):
        interval = FrmIvalEnum(index=index, pixel_format=pixelformat, width=width, height=height)
        if not _ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, interval):
            break
        fraction = interval.discrete if interval.type == FRMIVAL_TYPE_DISCRETE else interval.stepwise.min
        if fraction.numerator:
            rates.append(round(fraction.denominator / fraction.numerator, 2))
        if interval.type != FRMIVAL_TYPE_DISCRETE:
            break
    return tuple(rates)


def control_key(name: str) -> str:
    """The key v4l2-ctl uses for a control's name: ``Power Line Frequency`` -> ``power_line_frequency``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def query_control(fd: int, control_id: int) -> ControlInfo | None:
    """One control by id, or None when the device does not have it."""
    query = QueryCtrl(id=control_id)
    if not _ioctl(fd, VIDIOC_QUERYCTRL, query) or query.flags & CTRL_FLAG_DISABLED:
        return None
    return _control_info(fd, query)


def controls(fd: int) -> tuple[ControlInfo, ...]:
    found: list[ControlInfo] = []
    query = QueryCtrl(id=CTRL_FLAG_NEXT_CTRL)
    while _ioctl(fd, VIDIOC_QUERYCTRL, query) and len(found) < 256:
        if not query.flags & CTRL_FLAG_DISABLED and query.type != CTRL_TYPE_CTRL_CLASS:
            found.append(_control_info(fd, query))
        query = QueryCtrl(id=query.id | CTRL_FLAG_NEXT_CTRL)
    return tuple(found)


def _control_info(fd: int, query: QueryCtrl) -> ControlInfo:
    menu: dict[int, str] = {}
    if query.type in (CTRL_TYPE_MENU, CTRL_TYPE_INTEGER_MENU):
        for index in range(query.minimum, query.maximum + 1):
            item = QueryMenu(id=query.id, index=index)
            if _ioctl(fd, VIDIOC_QUERYMENU, item):
                menu[index] = _text(item.name) if query.type == CTRL_TYPE_MENU else str(item.value)
    return ControlInfo(
        key=control_key(_text(query.name)), id=int(query.id), kind=_KINDS.get(query.type, f"type {query.type}"),
        minimum=int(query.minimum), maximum=int(query.maximum), step=int(query.step),
        default=int(query.default_value), value=get_control(fd, query.id),
        inactive=bool(query.flags & CTRL_FLAG_INACTIVE), menu=menu,
    )  # fmt: skip


def get_control(fd: int, control_id: int) -> int | None:
    control = Control(id=control_id)
    try:
        fcntl.ioctl(fd, VIDIOC_G_CTRL, control)
    except OSError:
        return None
    return int(control.value)


def set_control(fd: int, control_id: int, value: int) -> None:
    """Set one control; OSError (EINVAL, ERANGE, EACCES, ...) when the driver refuses."""
    fcntl.ioctl(fd, VIDIOC_S_CTRL, Control(id=control_id, value=value))


def describe(path: str) -> DeviceInfo:
    """Everything ``camd probe`` shows about one node; OSError when it cannot be opened or asked."""
    with opened(path) as fd:
        cap = capability(fd)
        capture, kinds = _kind(node_caps(cap))
        return DeviceInfo(
            path=path, driver=_text(cap.driver), card=_text(cap.card), bus=_text(cap.bus_info), capture=capture,
            kinds=kinds, formats=formats(fd) if capture else (), controls=controls(fd) if capture else (),
        )  # fmt: skip


def busy(path: str) -> bool:
    """True when another program streams from ``path``: the driver refuses even to free no buffers (EBUSY)."""
    try:
        with opened(path) as fd:
            fcntl.ioctl(fd, VIDIOC_REQBUFS, RequestBuffers(count=0, type=BUF_TYPE_VIDEO_CAPTURE, memory=MEMORY_MMAP))
    except OSError as exc:
        return exc.errno == errno.EBUSY
    return False
