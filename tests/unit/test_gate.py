"""camd.gate: which captured frames may be published, and the reason for each one that may not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camd import gate
from camd.sources import Captured

WIDTH, HEIGHT = 160, 120


def textured(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)


def flat(colour: tuple[int, int, int], width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return np.full((height, width, 3), colour, np.uint8)


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def pixels_frame(pixels: np.ndarray) -> Captured:
    return Captured(timestamp=1.0, pixels=pixels)


def jpeg_frame(data: bytes) -> Captured:
    return Captured(timestamp=1.0, jpeg=data)


CASES = {
    "no frame": (None, gate.READ_FAILED),
    "no pixels": (pixels_frame(np.zeros((0, 0, 3), np.uint8)), gate.EMPTY),
    "one channel": (pixels_frame(textured()[:, :, 0]), gate.BAD_SHAPE),
    "four channels": (pixels_frame(np.dstack([textured(), textured()[:, :, :1]])), gate.BAD_SHAPE),
    "float pixels": (pixels_frame(textured().astype(np.float32)), gate.BAD_SHAPE),
    "not the size opened": (pixels_frame(textured(WIDTH // 2, HEIGHT)), gate.BAD_SHAPE),
    "green": (pixels_frame(flat((0, 160, 0))), gate.FLAT),  # what a broken webcam sends
    "grey": (pixels_frame(flat((128, 128, 128))), gate.FLAT),
    "picture": (pixels_frame(textured()), None),
    "no bytes": (jpeg_frame(b""), gate.EMPTY),
    "tiny jpeg": (jpeg_frame(b"\xff\xd8" + b"\0" * 100 + b"\xff\xd9"), gate.TOO_SMALL),
    "no start marker": (jpeg_frame(b"\0\0" + jpeg(textured())[2:]), gate.BAD_JPEG),
    "cut off": (jpeg_frame(jpeg(textured())[:-40]), gate.BAD_JPEG),
    "green jpeg": (jpeg_frame(jpeg(flat((0, 160, 0)))), gate.FLAT),
    "markers but no jpeg": (jpeg_frame(b"\xff\xd8" + bytes(range(256)) * 2 + b"\xff\xd9"), gate.BAD_JPEG),
    "jpeg picture": (jpeg_frame(jpeg(textured())), None),
}


@pytest.mark.parametrize(("frame", "reason"), CASES.values(), ids=CASES.keys())
def test_check(frame: Captured | None, reason: str | None) -> None:
    assert gate.check(frame, WIDTH, HEIGHT) == reason


def test_any_size_passes_when_the_source_did_not_say() -> None:
    assert gate.check(pixels_frame(textured(90, 70)), 0, 0) is None


def test_a_large_camera_jpeg_is_passed_without_decoding_it() -> None:
    # Big enough that it cannot be one flat colour: the gate must not spend a decode on it.
    data = jpeg(textured())
    assert len(data) >= (WIDTH * HEIGHT // 64) * gate.FLAT_SUSPECT_BYTES_PER_BLOCK
    garbage_inside = data[:600] + bytes(len(data) - 600 - 2) + b"\xff\xd9"
    assert gate.check(jpeg_frame(garbage_inside), WIDTH, HEIGHT) is None


@pytest.mark.parametrize("value", [0, 37, 200, 255])
def test_brightness_is_the_mean_grey_level(value: int) -> None:
    frame = flat((value, value, value))
    assert gate.brightness(pixels_frame(frame)) == pytest.approx(value, abs=1)
    assert gate.brightness(jpeg_frame(jpeg(frame, 95))) == pytest.approx(value, abs=2)


def test_brightness_of_a_jpeg_that_does_not_decode_is_zero() -> None:
    assert gate.brightness(jpeg_frame(b"\xff\xd8 not a picture \xff\xd9")) == 0.0


def test_thumbnail_is_small_whatever_the_frame() -> None:
    big = textured(1280, 720)
    for frame in (pixels_frame(big), jpeg_frame(jpeg(big))):
        small = gate.thumbnail(frame)
        assert small is not None and small.ndim == 2
        assert max(small.shape) <= 200


def test_a_dark_picture_with_one_bright_window_is_not_flat() -> None:
    picture = flat((40, 40, 40))
    assert gate.is_flat(picture)
    picture[:, : WIDTH // 4] = 200  # a bright window in a dark room
    assert not gate.is_flat(picture)
