"""Recordings with known truth for the activity score: what moved when, and which parts must stay quiet.

A textured static room with sensor-like noise (Gaussian, every pixel, every
frame), then camera JPEG encoding. Into it: an object that moves during known
intervals, a slow light ramp, 50 Hz flicker seen by a camera whose frame clock
drifts against the mains, and a lamp switched on once (brighter on one side).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Part:
    """A stretch of the recording: what happens in it and whether it is true activity."""

    name: str
    start: float
    end: float
    moving: bool = False


# The timeline, in seconds. Motion parts are the truth; the rest must give no event.
TIMELINE = (
    Part("static", 0.0, 10.0),
    Part("object moves", 10.0, 14.0, moving=True),
    Part("static", 14.0, 22.0),
    Part("slow light ramp (-45%)", 22.0, 42.0),
    Part("static (dim)", 42.0, 46.0),
    Part("50 Hz flicker (+-15%)", 46.0, 58.0),
    Part("object moves", 58.0, 60.5, moving=True),
    Part("static", 60.5, 66.0),
    Part("light switched on at 66 s", 66.0, 72.0),
    Part("object moves (lit)", 72.0, 75.0, moving=True),
    Part("static (lit)", 75.0, 84.0),
)
DURATION = TIMELINE[-1].end
SWITCH_AT = 66.0
NOISE_SIGMA = 4.0


def truth() -> list[tuple[float, float]]:
    return [(part.start, part.end) for part in TIMELINE if part.moving]


def _room(width: int, height: int) -> np.ndarray:
    """A static, textured scene: smooth shapes of different greys and colours, like furniture."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(40, 200, (9, 12, 3)).astype(np.uint8)
    room = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        cv2.rectangle(room, (x, y), (x + width // 8, y + height // 10), colour, -1)
    return cv2.GaussianBlur(room, (5, 5), 0).astype(np.float32)


def _object(size: int) -> np.ndarray:
    """A textured thing (a dog, say): blotches, so its inside changes as it moves too."""
    rng = np.random.default_rng(11)
    blotches = rng.integers(10, 245, (6, 6, 3)).astype(np.uint8)
    return cv2.resize(blotches, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _brightness(when: float, width: int) -> tuple[float, np.ndarray | None]:
    """The light at ``when``: an overall gain, and a per-column gain once the lamp is on."""
    gain = 1.0
    if 22.0 <= when < 42.0:
        gain = 1.0 - 0.45 * (when - 22.0) / 20.0
    elif 42.0 <= when < 66.0:
        gain = 0.55
    if 46.0 <= when < 58.0:
        gain *= 1.0 + 0.15 * math.sin(2 * math.pi * 50.0 * when)
    if when >= SWITCH_AT:
        # A lamp on the right: the right side gets much brighter than the left.
        return 1.0, np.linspace(0.75, 1.6, width, dtype=np.float32)[None, :, None]
    return gain, None


def object_position(when: float, width: int, height: int, size: int) -> tuple[int, int] | None:
    """Where the object's top-left corner is, or None while it is out of sight."""
    for part in TIMELINE:
        if part.moving and part.start <= when < part.end:
            progress = (when - part.start) / (part.end - part.start)
            x = int(width * 0.1 + progress * width * 0.6)
            return x, height // 2 - size // 2
    return None


def frames(width: int = 640, height: int = 480, fps: float = 5.03, quality: int = 80) -> Iterator[tuple[float, bytes]]:
    """``(time, camera JPEG)`` for the whole timeline, ``fps`` pictures a second.

    5.03 rather than 5: a real camera's clock drifts against the mains, which is
    what makes 50 Hz flicker visible from frame to frame.
    """
    room = _room(width, height)
    size = max(16, height // 6)
    thing = _object(size)
    rng = np.random.default_rng(3)
    # The object rests at its last place between its moves, like a dog lying down.
    resting: tuple[int, int] | None = None
    for number in range(int(DURATION * fps)):
        when = number / fps
        image = room.copy()
        position = object_position(when, width, height, size) or resting
        if position is not None:
            x, y = position
            image[y : y + size, x : x + size] = thing
            resting = position
        gain, lamp = _brightness(when, width)
        image *= gain
        if lamp is not None:
            image *= lamp
        image += rng.standard_normal(image.shape, dtype=np.float32) * NOISE_SIGMA
        picture = np.clip(image, 0, 255).astype(np.uint8)
        ok, buffer = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        yield when, buffer.tobytes()
