"""camd.frames: a frame's pixels and JPEG, each made at most once, and the text frame."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from camd import gate
from camd.frames import Frame, render_text_frame
from camd.stats import Counters


def textured(width: int = 64, height: int = 48) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)


def frame_of(*, pixels: np.ndarray | None = None, jpeg: bytes | None = None, quality: int = 80) -> Frame:
    return Frame(1, 1.0, pixels=pixels, jpeg=jpeg, width=64, height=48, live=True, quality=quality, counters=Counters())


def test_a_frame_needs_pixels_or_jpeg() -> None:
    with pytest.raises(ValueError, match="pixels or JPEG"):
        frame_of()


def test_pixels_are_encoded_once_and_the_bytes_shared() -> None:
    frame = frame_of(pixels=textured())
    first = frame.jpeg()
    assert first.startswith(b"\xff\xd8") and first.endswith(b"\xff\xd9")
    assert frame.jpeg() is first
    assert frame._counters.get("jpeg_encodes") == 1
    decoded = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (48, 64, 3)


def test_quality_sets_the_size_of_the_encoded_jpeg() -> None:
    low = frame_of(pixels=textured(), quality=10).jpeg()
    high = frame_of(pixels=textured(), quality=95).jpeg()
    assert len(low) < len(high)


def test_many_threads_asking_at_once_cost_one_encode() -> None:
    frame = frame_of(pixels=textured(640, 480))
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        results.append(frame.jpeg())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(result is results[0] for result in results)
    assert frame._counters.get("jpeg_encodes") == 1


def test_camera_jpeg_is_served_as_it_is_and_decoded_once_on_demand() -> None:
    ok, buffer = cv2.imencode(".jpg", textured())
    assert ok
    data = buffer.tobytes()
    frame = frame_of(jpeg=data)
    assert frame.jpeg() is data
    pixels = frame.pixels()
    assert pixels.shape == (48, 64, 3)
    assert frame.pixels() is pixels
    assert frame._counters.get("jpeg_decodes") == 1
    assert frame._counters.get("jpeg_encodes") == 0


@pytest.mark.parametrize("data", [b"\xff\xd8 not a picture \xff\xd9", b""])
def test_pixels_of_a_jpeg_that_does_not_decode_raise_value_error(data: bytes) -> None:
    frame = frame_of(jpeg=data)
    with pytest.raises(ValueError, match="does not decode"):
        frame.pixels()
    assert frame._counters.get("jpeg_decodes") == 0


@pytest.mark.parametrize(
    ("width", "height", "lines"),
    [(1280, 720, ["CAMERA OFFLINE", "since 12:00:00"]), (320, 240, ["one"]), (64, 48, []), (16, 16, ["x" * 80])],
)
def test_text_frame_has_the_size_asked_and_passes_the_gate(width: int, height: int, lines: list[str]) -> None:
    image = render_text_frame(width, height, lines)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert not gate.is_flat(image)


def test_text_frame_shows_its_text() -> None:
    blank = render_text_frame(640, 480, [])
    written = render_text_frame(640, 480, ["CAMERA OFFLINE"])
    middle = slice(200, 280)
    assert written[middle].max() > blank[middle].max() + 100
