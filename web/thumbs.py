"""Thumbnails of stills: made once, kept in a memory cache with a bound on its size."""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np

THUMB_WIDTH = 320
THUMB_QUALITY = 70
CACHE_BYTES = 24 * 1024 * 1024  # about 2,000 thumbnails of 640x480 stills


def make_thumbnail(jpeg: bytes, width: int = THUMB_WIDTH) -> bytes | None:
    """A small JPEG of ``jpeg``, or None when it does not decode.

    Decodes at 1/2, 1/4 or 1/8 scale when that is still wide enough (libjpeg does it cheaply).
    """
    if not jpeg:
        return None  # imdecode raises on an empty buffer instead of returning None
    buffer = np.frombuffer(jpeg, np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_COLOR_8)
    if image is None:
        return None
    full_width = image.shape[1] * 8
    flag: int | None = cv2.IMREAD_COLOR
    for factor, reduced in ((8, None), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if full_width // factor >= width:
            flag = reduced
            break
    if flag is not None:
        image = cv2.imdecode(buffer, flag)
        if image is None:
            return None
    height, current = image.shape[:2]
    if current > width:
        image = cv2.resize(image, (width, max(1, round(height * width / current))), interpolation=cv2.INTER_AREA)
    ok, out = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    return out.tobytes() if ok else None


class ThumbnailCache:
    """Least-recently-used thumbnails keyed by still path (and version), at most ``limit`` bytes."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.limit:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.limit:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)
