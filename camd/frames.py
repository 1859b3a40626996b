"""A published frame: pixels and/or JPEG bytes, each made at most once, on demand."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from camd.stats import Counters
from camd.text import put_text, text_size


class Frame:
    """One image as the hub hands it out; immutable once published.

    A frame starts as pixels (a BGR array) or as JPEG bytes straight from the
    camera. The other form is built the first time someone asks and then shared
    by everyone.
    """

    __slots__ = (
        "_counters",
        "_jpeg",
        "_lock",
        "_pixels",
        "height",
        "live",
        "quality",
        "seq",
        "timestamp",
        "width",
    )

    def __init__(
        self,
        seq: int,
        timestamp: float,
        *,
        pixels: np.ndarray | None = None,
        jpeg: bytes | None = None,
        width: int,
        height: int,
        live: bool,
        quality: int,
        counters: Counters,
    ) -> None:
        if pixels is None and jpeg is None:
            raise ValueError("a frame needs pixels or JPEG bytes")
        self.seq = seq
        self.timestamp = timestamp
        self.live = live
        self.width = width
        self.height = height
        self.quality = quality
        self._counters = counters
        self._pixels = pixels
        self._jpeg = jpeg
        self._lock = threading.Lock()

    @property
    def age(self) -> float:
        return time.time() - self.timestamp

    @property
    def passthrough(self) -> bool:
        """True when the JPEG bytes came from the camera rather than from camd."""
        return self._pixels is None

    def jpeg(self) -> bytes:
        """The frame as JPEG, encoded on first use."""
        jpeg = self._jpeg
        if jpeg is not None:
            return jpeg
        with self._lock:
            if self._jpeg is None:
                assert self._pixels is not None
                ok, buf = cv2.imencode(".jpg", self._pixels, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    raise RuntimeError("JPEG encoding failed")
                self._jpeg = buf.tobytes()
                self._counters.incr("jpeg_encodes")
            return self._jpeg

    def pixels(self) -> np.ndarray:
        """The frame as a BGR array, decoded on first use; raises ValueError if it cannot."""
        pixels = self._pixels
        if pixels is not None:
            return pixels
        with self._lock:
            if self._pixels is None:
                assert self._jpeg is not None
                # imdecode raises on an empty buffer rather than returning None.
                decoded = cv2.imdecode(np.frombuffer(self._jpeg, np.uint8), cv2.IMREAD_COLOR) if self._jpeg else None
                if decoded is None:
                    raise ValueError("the JPEG does not decode")
                self._counters.incr("jpeg_decodes")
                self._pixels = decoded
            return self._pixels


def render_text_frame(width: int, height: int, lines: list[str]) -> np.ndarray:
    """A dark frame with centred lines of text: the 'no picture' frame viewers see."""
    image = np.full((height, width, 3), 32, np.uint8)
    scale = max(0.4, min(width, height) / 480)
    thickness = max(1, round(scale * 2))
    line_height = int(40 * scale)
    top = height // 2 - line_height * (len(lines) - 1) // 2
    placed = []
    for index, line in enumerate(lines):
        text_width, _, _ = text_size(line, scale, thickness)
        placed.append((line, (max(4, (width - text_width) // 2), top + index * line_height)))
    put_text(image, placed, scale, (220, 220, 220), thickness=thickness)
    # A thin bar so the frame is never one flat colour, even with no text.
    cv2.rectangle(image, (0, height - 6), (width - 1, height - 1), (0, 0, 160), -1)
    return image
