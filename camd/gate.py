"""The frame gate: which captured frames are fit to publish, and why the others are not."""

from __future__ import annotations

import cv2
import numpy as np

from camd.sources import Captured

MIN_JPEG_BYTES = 256
# A flat-colour JPEG costs about one byte per 8x8 block (all AC coefficients are
# zero); a frame with several times that cannot be one flat colour, so the gate
# only decodes camera JPEGs that are small enough to be suspicious.
FLAT_SUSPECT_BYTES_PER_BLOCK = 4
FLAT_STDDEV = 3.0

# Reasons a frame is dropped; the status API and metrics count each one.
READ_FAILED = "read_failed"
EMPTY = "empty"
BAD_SHAPE = "bad_shape"
BAD_JPEG = "bad_jpeg"
TOO_SMALL = "too_small"
FLAT = "flat"


def thumbnail(frame: Captured) -> np.ndarray | None:
    """A tiny greyscale view of the frame (cheap for JPEGs: decoded at 1/8 scale)."""
    if frame.pixels is not None:
        step = max(1, min(frame.pixels.shape[:2]) // 60)
        small = frame.pixels[::step, ::step]
        return cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_BGR2GRAY)
    assert frame.jpeg is not None
    return cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)


def brightness(frame: Captured) -> float:
    """Mean brightness 0-255, for deciding when the picture has settled."""
    small = thumbnail(frame)
    return float(small.mean()) if small is not None else 0.0


def is_flat(pixels: np.ndarray) -> bool:
    """True for a frame of one flat colour: the green or grey frames broken webcams emit."""
    step = max(1, min(pixels.shape[:2]) // 60)
    _, stddev = cv2.meanStdDev(np.ascontiguousarray(pixels[::step, ::step]))
    return bool(float(stddev.max()) < FLAT_STDDEV)


def check(frame: Captured | None, width: int, height: int) -> str | None:
    """Why ``frame`` must not be published, or None when it may be.

    ``width`` and ``height`` are what the source said it opened (0 when unknown).
    """
    if frame is None:
        return READ_FAILED
    if frame.pixels is not None:
        pixels = frame.pixels
        if pixels.size == 0:
            return EMPTY
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            return BAD_SHAPE
        if width and height and pixels.shape[:2] != (height, width):
            return BAD_SHAPE
        return FLAT if is_flat(pixels) else None
    data = frame.jpeg
    if not data:
        return EMPTY
    if len(data) < MIN_JPEG_BYTES:
        return TOO_SMALL
    if not data.startswith(b"\xff\xd8") or b"\xff\xd9" not in data[-32:]:
        return BAD_JPEG
    blocks = max(1, (width * height) // 64)
    if len(data) < blocks * FLAT_SUSPECT_BYTES_PER_BLOCK:
        small = thumbnail(frame)
        if small is None:
            return BAD_JPEG
        if float(small.std()) < FLAT_STDDEV:
            return FLAT
    return None
