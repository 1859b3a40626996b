"""Test pictures and MJPEG recordings with known content, and the checks that recognise them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_recording(
    path: Path,
    frames: int = 90,
    fps: float = 30,
    size: tuple[int, int] = (320, 240),
    first: int = 0,
    first_colour: tuple[int, int, int] = (0, 255, 0),
) -> Path:
    """An MJPEG .avi whose first ``first`` frames are flat ``first_colour``, the rest a moving picture."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPEG"
    for number in range(frames):
        if number < first:
            image = np.full((height, width, 3), first_colour, np.uint8)
        else:
            image = moving_picture(number, width, height)
        writer.write(image)
    writer.release()
    return path


def moving_picture(number: int, width: int, height: int) -> np.ndarray:
    """A grey gradient with a white square that moves with ``number``: never flat, never green."""
    ramp = np.linspace(40, 200, width, dtype=np.uint8)
    image = np.repeat(np.repeat(ramp[None, :, None], height, axis=0), 3, axis=2)
    x = (number * 7) % max(1, width - 40)
    cv2.rectangle(image, (x, height // 3), (x + 40, height // 3 + 40), (255, 255, 255), -1)
    cv2.putText(image, str(number), (10, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    return image


def marker_picture(number: int, width: int, height: int) -> np.ndarray:
    """Magenta with noise: not flat, so the gate lets it through; only warm-up may discard it."""
    noise = np.random.default_rng(number).integers(-40, 40, (height, width, 3))
    return np.clip(np.array([230, 30, 230]) + noise, 0, 255).astype(np.uint8)


def is_marker(image: np.ndarray) -> bool:
    blue, green, red = (float(c) for c in image.reshape(-1, 3).mean(axis=0))
    return blue > 150 and red > 150 and green < 90


def is_green(image: np.ndarray) -> bool:
    """True for a (mostly) flat green frame."""
    blue, green, red = (float(c) for c in image.reshape(-1, 3).mean(axis=0))
    return green > 150 and blue < 80 and red < 80
