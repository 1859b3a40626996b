"""Where frames come from: the test pattern, recordings, V4L2 cameras and network cameras.

Every source has the same small interface: ``open()`` returns what was opened,
``read()`` returns one :class:`Captured` frame or None when the read failed, and
``close()`` releases it. Sources do no validation or warm-up; capture does.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from camd import controls, v4l2
from camd.redact import redact_url
from camd.settings import Settings, SettingsError
from camd.text import put_text

log = logging.getLogger(__name__)

if "OPENCV_LOG_LEVEL" not in os.environ:
    # OpenCV's own "[ WARN:0@0.1] ..." lines would repeat what camd logs, in another format.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# OpenCV waits this long (whole seconds) in select() for each V4L2 frame, 10 by default; it reads the
# variable once, at the first wait in the process.
V4L2_SELECT_TIMEOUT = "OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT"
MIN_SELECT_TIMEOUT = 2  # a camera's first frame after it starts streaming can take over a second

NETWORK_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class Captured:
    """One frame as the source gave it: BGR pixels, or the camera's own JPEG bytes."""

    timestamp: float
    pixels: np.ndarray | None = None
    jpeg: bytes | None = None


@dataclass(frozen=True)
class SourceInfo:
    """What was actually opened (a camera may give less than was asked for)."""

    backend: str
    width: int
    height: int
    fps: float
    pixel_format: str
    passthrough: bool


class Source(Protocol):
    description: str

    def open(self) -> SourceInfo: ...

    def read(self) -> Captured | None: ...

    def close(self) -> None: ...


class SourceError(RuntimeError):
    """The source could not be opened."""


class Pacer:
    """Sleeps so that successive calls happen ``fps`` times a second, without drift."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self.reset()

    def reset(self) -> None:
        self._next = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        elif now - self._next > 1.0:
            self._next = now  # far behind (a pause): start over rather than burst
        self._next += self.interval


# --- the test pattern -------------------------------------------------------------


class TestPatternSource:
    """A deterministic moving picture: colour bars, a sweeping box, frame number and time."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, width: int, height: int, fps: float, label: str = "TEST PATTERN") -> None:
        self.width, self.height, self.fps = width, height, fps
        self.label = label
        self.description = "test"
        self._pacer = Pacer(fps)
        self._background = self._bars()
        self._number = 0

    def _bars(self) -> np.ndarray:
        colours = [
            (192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0),
            (192, 0, 192), (0, 0, 192), (192, 0, 0), (16, 16, 16),
        ]  # fmt: skip
        image = np.zeros((self.height, self.width, 3), np.uint8)
        step = self.width / len(colours)
        for index, colour in enumerate(colours):
            image[:, int(index * step) : int((index + 1) * step)] = colour
        ramp = np.linspace(0, 255, self.width, dtype=np.uint8)
        image[self.height * 3 // 4 :, :] = ramp[None, :, None]
        return image

    def open(self) -> SourceInfo:
        self._pacer.reset()
        return SourceInfo("test", self.width, self.height, self.fps, "BGR3", passthrough=False)

    def render(self, number: int, when: float) -> np.ndarray:
        """Frame ``number`` of the pattern, stamped with the time ``when``."""
        image = self._background.copy()
        box = max(8, self.height // 6)
        span = max(1, self.width - box)
        position = int((number * 8) % (2 * span))
        x = position if position < span else 2 * span - position
        y = self.height // 2 - box // 2
        cv2.rectangle(image, (x, y), (x + box, y + box), (255, 255, 255), -1)
        scale = max(0.4, self.height / 480)
        thickness = max(1, round(scale * 2))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
        stamp += f".{int((when % 1) * 1000):03d}"
        lines = (self.label, f"frame {number}", stamp)
        placed = [(text, (int(12 * scale), int((index + 1) * 34 * scale))) for index, text in enumerate(lines)]
        put_text(image, placed, scale, (255, 255, 255), thickness=thickness, outline=(0, 0, 0))
        return image

    def read(self) -> Captured:
        self._pacer.wait()
        now = time.time()
        pixels = self.render(self._number, now)
        self._number += 1
        return Captured(now, pixels=pixels)

    def close(self) -> None:
        pass


# --- OpenCV-backed sources -----------------------------------------------------------


def fourcc_text(value: float) -> str:
    code = int(value) if math.isfinite(value) else 0
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text.strip("\x00 ") if text.isprintable() else ""


def is_jpeg_codec(fourcc: str) -> bool:
    return fourcc.upper() in ("MJPG", "JPEG", "AVRN", "LJPG", "MJPA", "MJPB", "JPGL")


class OpenCVSource:
    """Shared reading for sources that OpenCV opens; subclasses say how to open."""

    description = ""
    device: str | None = None  # the V4L2 node behind the source, watched for its return after an unplug

    def __init__(self, passthrough: str) -> None:
        self.passthrough = passthrough
        self._cap: cv2.VideoCapture | None = None
        self._raw = False

    def _open_capture(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def _why_not_opened(self) -> str:
        return f"cannot open {self.description}"

    def _raw_mode(self, cap: cv2.VideoCapture) -> bool:
        """Switch the capture to handing out compressed packets; True if it worked."""
        raise NotImplementedError

    def open(self) -> SourceInfo:
        cap = self._open_capture()
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._why_not_opened())
        codec = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        raw = False
        if self.passthrough != "off" and is_jpeg_codec(codec):
            raw = self._raw_mode(cap)
            if not raw:
                log.warning("%s delivers %s but raw packets are not available; decoding", self.description, codec)
        elif self.passthrough == "on":
            log.warning("passthrough=on but %s delivers %s, not JPEG; encoding", self.description, codec or "pixels")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._cap, self._raw = cap, raw
        return SourceInfo(
            backend=cap.getBackendName(),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=fps if math.isfinite(fps) and 0 < fps <= 1000 else 0.0,
            pixel_format=codec,
            passthrough=raw,
        )

    def _grab(self) -> Captured | None:
        cap = self._cap
        if cap is None:
            return None
        ok, data = cap.read()
        now = time.time()
        if not ok or data is None or data.size == 0:
            return None
        if self._raw:
            return Captured(now, jpeg=data.tobytes())
        return Captured(now, pixels=data)

    def read(self) -> Captured | None:
        return self._grab()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FFmpegSource(OpenCVSource):
    """A recording (looped, paced at its own rate) or a network stream, via FFmpeg."""

    def __init__(self, location: str, *, recording: bool, passthrough: str, fps: float) -> None:
        super().__init__(passthrough)
        self.location = location
        self.recording = recording
        self.description = f"file:{location}" if recording else redact_url(location)
        self._fallback_fps = fps
        self._pacer: Pacer | None = None

    def _open_capture(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        return cv2.VideoCapture(self.location, cv2.CAP_FFMPEG, params)

    def _raw_mode(self, cap: cv2.VideoCapture) -> bool:
        return bool(cap.set(cv2.CAP_PROP_FORMAT, -1))

    def open(self) -> SourceInfo:
        info = super().open()
        if self.recording:
            self._pacer = Pacer(info.fps or self._fallback_fps)
        return info

    def read(self) -> Captured | None:
        if self._pacer is not None:
            self._pacer.wait()
        frame = self._grab()
        if frame is None and self.recording:
            # End of the recording: start it over, as if the camera went on.
            self.close()
            try:
                super().open()
            except SourceError:
                return None
            frame = self._grab()
        return frame


class V4L2Source(OpenCVSource):
    """A V4L2 camera: asks for size, rate and format, with the smallest driver queue, and sets its controls."""

    def __init__(self, device: str, settings: Settings, passthrough: str | None = None) -> None:
        super().__init__(settings.passthrough if passthrough is None else passthrough)
        self.node = device
        self.device: str = v4l2.node_path(device)
        self.description = device
        self.settings = settings
        # A read of a camera that stopped sending holds it until OpenCV gives up; the supervisor gives up
        # after stall_timeout and reopens, which finds the camera busy until then. Same length, so
        # a camera that a reopen revives is back at the first try rather than after OpenCV's 10 s.
        # An explicit setting in the environment wins; a reload cannot change what OpenCV has read.
        os.environ.setdefault(V4L2_SELECT_TIMEOUT, str(max(MIN_SELECT_TIMEOUT, math.ceil(settings.stall_timeout))))

    def _open_capture(self) -> cv2.VideoCapture:
        target: int | str = int(self.node) if self.node.isdigit() else self.node
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        if not cap.isOpened():
            return cap
        fourcc = self.settings.fourcc
        if fourcc == "auto":
            # Most UVC cameras reach their full size and rate only in MJPG.
            fourcc = "YUYV" if self.settings.passthrough == "off" else "MJPG"
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.settings.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height)
        cap.set(cv2.CAP_PROP_FPS, self.settings.fps)
        # One buffer in the driver: a frame read is the newest one, never a stale queue.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        camera_controls = controls.for_settings(self.settings)
        if (width, height) != (self.settings.width, self.settings.height):
            asked = f"{self.settings.width}x{self.settings.height}"
            message = f"{self.description} has no {asked}; it gives {width}x{height} (camd probe lists its sizes)"
            camera_controls.warn_once("size", message, log)
        camera_controls.apply(self.device, cap)
        return cap

    def _why_not_opened(self) -> str:
        path = self.device
        if not os.path.exists(path):
            return f"{path}: no such device (unplugged?)"
        if v4l2.busy(path):
            return f"{path} is busy: another program (or a hung read) holds it; fuser -v {path} shows which"
        return f"cannot open {path}"

    def _raw_mode(self, cap: cv2.VideoCapture) -> bool:
        # The V4L2 backend hands out the driver's MJPG buffer as-is without RGB conversion.
        return bool(cap.set(cv2.CAP_PROP_CONVERT_RGB, 0))


# --- choosing a source ---------------------------------------------------------------


def capture_nodes() -> list[str]:
    """The V4L2 nodes that capture video; a UVC camera's metadata-only node is skipped, and said so."""
    nodes = []
    for device in v4l2.devices():
        try:
            capture, kind = v4l2.is_capture_node(device)
        except OSError as exc:
            log.info("skipping %s: %s", device, exc.strerror or exc)
            continue
        if capture:
            nodes.append(device)
        else:
            log.info("skipping %s: %s", device, kind)
    return nodes


def find_camera(settings: Settings) -> Source | None:
    """The first V4L2 camera that opens and gives a frame, or None."""
    for device in capture_nodes():
        camera = make_source(settings, device=device)
        try:
            camera.open()
            ok = camera.read() is not None
        except SourceError as exc:
            log.info("%s: %s", device, exc)
            ok = False
        finally:
            camera.close()
        if ok:
            return camera
        log.info("%s did not give a frame; trying the next device", device)
    return None


def make_source(settings: Settings, device: str | None = None) -> Source:
    """The source that ``settings.source`` names (or ``device``, the camera ``auto`` chose before).

    Raises SettingsError for a bad spec.
    """
    spec = settings.source.strip()
    turned = bool(settings.rotate or settings.flip != "none")
    # Rotating or mirroring needs pixels: the camera's JPEG bytes cannot be passed through.
    passthrough = "off" if turned else settings.passthrough
    source: Source
    if device is not None or spec.isdigit() or spec.startswith("/dev/"):
        source = V4L2Source(device or spec, settings, passthrough)
    elif spec == "test":
        source = TestPatternSource(settings.width, settings.height, settings.fps)
    elif spec == "auto":
        camera = find_camera(settings)
        if camera is None:
            log.warning("source auto: no V4L2 camera opened; streaming the built-in test pattern")
            return TestPatternSource(settings.width, settings.height, settings.fps)
        log.info("source auto: using %s", camera.description)
        return camera
    elif spec.lower().startswith(NETWORK_SCHEMES):
        source = FFmpegSource(spec, recording=False, passthrough=passthrough, fps=settings.fps)
    else:
        path = spec[len("file:") :] if spec.startswith("file:") else spec
        if not (spec.startswith("file:") or os.path.sep in spec or Path(spec).suffix):
            raise SettingsError(
                f"source={redact_url(spec)!r} is not valid: "
                "expected auto, test, /dev/videoN, N, file:PATH, rtsp://... or http://..."
            )
        if not Path(path).is_file():
            raise SettingsError(f"source={redact_url(spec)!r}: no such file")
        source = FFmpegSource(path, recording=True, passthrough=passthrough, fps=settings.fps)
    return Oriented(source, settings.rotate, settings.flip) if turned else source


class Opener:
    """Hands capture a fresh source for each (re)open: first the one made at start, then the same camera again.

    ``auto`` picks a camera once; reopening that same one keeps an unplugged camera offline until it
    returns, where a new search would find none and go live with the test pattern. A fresh object each
    time, because a worker stuck in a read keeps its own.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._first: Source | None = make_source(settings)  # a bad spec raises SettingsError here, at start
        self.device: str | None = getattr(self._first, "device", None)

    def __call__(self) -> Source:
        first, self._first = self._first, None
        return first if first is not None else make_source(self.settings, device=self.device)


# --- rotating and mirroring ------------------------------------------------------------------

_ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
_FLIPS = {"horizontal": 1, "vertical": 0}


class Oriented:
    """A source whose picture is turned (``rotate``) and mirrored (``flip``) as the camera is mounted."""

    def __init__(self, inner: Source, rotate: int, flip: str) -> None:
        self.inner = inner
        self.rotate, self.flip = rotate, flip
        self.description = inner.description
        self.device: str | None = getattr(inner, "device", None)

    def open(self) -> SourceInfo:
        info = self.inner.open()
        width, height = (info.height, info.width) if self.rotate in (90, 270) else (info.width, info.height)
        return SourceInfo(info.backend, width, height, info.fps, info.pixel_format, passthrough=False)

    def read(self) -> Captured | None:
        frame = self.inner.read()
        if frame is None:
            return None
        pixels = frame.pixels
        if pixels is None and frame.jpeg is not None:
            pixels = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if pixels is None:
            return None
        if self.flip in _FLIPS:
            pixels = cv2.flip(pixels, _FLIPS[self.flip])
        if self.rotate in _ROTATIONS:
            pixels = cv2.rotate(pixels, _ROTATIONS[self.rotate])
        return Captured(frame.timestamp, pixels=pixels)

    def close(self) -> None:
        self.inner.close()
