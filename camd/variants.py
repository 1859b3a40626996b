"""Smaller or lighter JPEGs of the published frame (``?width=``, ``?quality=``), made once per frame for all viewers.

A variant is a (width, quality) pair snapped to a short ladder, so that viewers
who ask for similar pictures share one encode. Nothing is made on publish: the
first viewer who asks for a variant of a frame pays for it, everyone else gets the
same bytes, and only the newest frame's variants are kept. One decode of a JPEG
frame serves every variant: libjpeg's reduced-size decoding (1/2, 1/4, 1/8) is
chosen for the largest variant that is watched, then each variant is resized to
its exact width. A full-width variant at the default quality is the frame's own
JPEG (the camera's bytes when it gives JPEG).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from camd.frames import Frame
from camd.stats import Counters

log = logging.getLogger(__name__)

LADDER = (320, 480, 640, 960)
MAX_WIDTH = 16384  # no camera is wider; anything above is a typo, not a request
QUALITY_MIN, QUALITY_MAX = 1, 95
QUALITY_NAMES = {"low": 30, "medium": 50, "high": 70}
# libjpeg decodes straight to 1/N of the size for these N, at a fraction of a full decode's cost.
REDUCED_FLAGS = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2}


class VariantError(ValueError):
    """A ``?width=`` or ``?quality=`` value that is not allowed; the message is fit for a 400 answer."""


@dataclass(frozen=True, order=True)
class VariantKey:
    """What a viewer asked for, snapped: a ladder width (None = the full width) and a JPEG quality."""

    width: int | None
    quality: int

    @property
    def label(self) -> str:
        """``full`` or the width, for logs, status and metric labels."""
        return "full" if self.width is None else str(self.width)


def snap_width(width: int, source_width: int) -> int | None:
    """The ladder step for a requested width: the largest step not above it (at least the smallest).

    None means the full width: asked for at least the source's width, or a step the
    source is not wider than. ``source_width`` 0 (not known yet) snaps to the ladder only.
    """
    if source_width and width >= source_width:
        return None
    steps = [step for step in LADDER if step <= width]
    step = steps[-1] if steps else LADDER[0]
    if source_width and step >= source_width:
        return None
    return step


def parse_variant(width: str | None, quality: str | None, *, source_width: int, default_quality: int) -> VariantKey:
    """The variant for a request's ``?width=`` and ``?quality=`` values; raises VariantError for bad ones.

    An absent or empty value, or ``full``/``default``, means the full width and the
    default quality. A quality above the default is the default: ``?quality=`` only lowers it.
    """
    return VariantKey(_parse_width(width, source_width), _parse_quality(quality, default_quality))


def _parse_width(raw: str | None, source_width: int) -> int | None:
    text = (raw or "").strip().lower()
    if text in ("", "full"):
        return None
    try:
        width = int(text)
    except ValueError:
        raise VariantError(f"width must be a number of pixels (1-{MAX_WIDTH}) or 'full'") from None
    if not 1 <= width <= MAX_WIDTH:
        raise VariantError(f"width must be from 1 to {MAX_WIDTH} pixels or 'full'")
    return snap_width(width, source_width)


def _parse_quality(raw: str | None, default_quality: int) -> int:
    text = (raw or "").strip().lower()
    if text in ("", "default"):
        return default_quality
    if text in QUALITY_NAMES:
        return min(QUALITY_NAMES[text], default_quality)
    allowed = f"quality must be from {QUALITY_MIN} to {QUALITY_MAX} or one of {', '.join(QUALITY_NAMES)}"
    try:
        quality = int(text)
    except ValueError:
        raise VariantError(allowed) from None
    if not QUALITY_MIN <= quality <= QUALITY_MAX:
        raise VariantError(allowed)
    return min(quality, default_quality)


def target_width(key: VariantKey, frame_width: int) -> int:
    """The width a variant has for a frame of this width: never wider than the frame."""
    return frame_width if key.width is None else min(key.width, frame_width)


def is_own(key: VariantKey | None, frame: Frame) -> bool:
    """Whether this variant of ``frame`` is the frame's own JPEG (nothing to make); None is the full stream."""
    return key is None or (target_width(key, frame.width) >= frame.width and key.quality >= frame.quality)


def reduction_for(source_width: int, width: int) -> int:
    """The largest libjpeg reduction (8, 4, 2 or 1) whose output is still at least ``width`` wide."""
    for factor in REDUCED_FLAGS:
        if -(-source_width // factor) >= width:  # libjpeg rounds scaled sizes up
            return factor
    return 1


def scaled_height(width: int, height: int, new_width: int) -> int:
    return max(1, round(height * new_width / width))


class _FrameWork:
    """The variants made so far from one frame, with the locks that make each one exactly once."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.lock = threading.Lock()
        self.made: dict[VariantKey, bytes] = {}
        self.key_locks: dict[VariantKey, threading.Lock] = {}
        self.decode_lock = threading.Lock()
        self.base: np.ndarray | None = None  # the one decode (or the frame's pixels), possibly reduced

    def key_lock(self, key: VariantKey) -> threading.Lock:
        with self.lock:
            return self.key_locks.setdefault(key, threading.Lock())


class Variants:
    """Makes and counts the variants of the hub's frames; one object for the whole daemon.

    ``watch(key)`` tells it a viewer receives that variant (the fan-out does so for
    as long as a viewer is connected): the watched set decides how small the one
    decode of a frame can be, and is the viewers count per variant.
    """

    def __init__(self, counters: Counters | None = None) -> None:
        self.counters = counters  # the hub's: variant encodes and decodes are JPEG work camd did too
        self._lock = threading.Lock()
        self._work: _FrameWork | None = None
        self._watchers: Counter[VariantKey] = Counter()
        self._encodes: Counter[VariantKey] = Counter()
        self._bytes: Counter[VariantKey] = Counter()
        self._decodes: Counter[int] = Counter()
        self._frames_sent: Counter[VariantKey] = Counter()
        self._bytes_sent: Counter[VariantKey] = Counter()

    # --- viewers -------------------------------------------------------------------

    def watch(self, key: VariantKey) -> None:
        with self._lock:
            self._watchers[key] += 1

    def unwatch(self, key: VariantKey) -> None:
        with self._lock:
            self._watchers[key] -= 1
            if self._watchers[key] <= 0:
                del self._watchers[key]

    @contextmanager
    def watching(self, key: VariantKey) -> Iterator[VariantKey]:
        """Count a viewer of ``key`` for the duration of the block."""
        self.watch(key)
        try:
            yield key
        finally:
            self.unwatch(key)

    # --- making --------------------------------------------------------------------

    def jpeg(self, frame: Frame, key: VariantKey) -> bytes:
        """The frame as this variant, made on the first request and shared by every later one."""
        if is_own(key, frame):
            return frame.jpeg()
        width = target_width(key, frame.width)
        work = self._work_for(frame)
        with work.key_lock(key):
            made = work.made.get(key)
            if made is None:
                made = self._encode(work, key, width)
                work.made[key] = made
        return made

    def _work_for(self, frame: Frame) -> _FrameWork:
        """The newest frame's work, started afresh when a newer frame comes; an older frame's is not kept."""
        with self._lock:
            work = self._work
            if work is not None and work.frame is frame:
                return work
            if work is None or frame.seq > work.frame.seq:
                self._work = _FrameWork(frame)
                return self._work
        return _FrameWork(frame)  # a late caller with an older frame: made for it alone

    def _encode(self, work: _FrameWork, key: VariantKey, width: int) -> bytes:
        frame = work.frame
        picture = self._base(work, width)
        if picture.shape[1] != width:
            size = (width, scaled_height(frame.width, frame.height, width))
            picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, key.quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        data = buf.tobytes()
        with self._lock:
            self._encodes[key] += 1
            self._bytes[key] += len(data)
        if self.counters is not None:
            self.counters.incr("jpeg_encodes")
        return data

    def _base(self, work: _FrameWork, width: int) -> np.ndarray:
        """The picture every variant of this frame is resized from: decoded once, as small as the watched set allows."""
        frame = work.frame
        if not frame.passthrough:
            return frame.pixels()
        with work.decode_lock:
            base = work.base
            if base is not None and base.shape[1] >= width:
                return base
            # Decode for the widest variant anyone watches, so that the next variant needs no decode of its own.
            with self._lock:
                # Viewers of the frame's own bytes need no decode: they do not widen it.
                watched = [target_width(key, frame.width) for key in self._watchers if not is_own(key, frame)]
            widest = max([width, *watched])
            factor = reduction_for(frame.width, widest)
            decoded: np.ndarray | None
            if factor == 1:
                decoded = frame.pixels()  # kept by the frame: a still of this frame needs no decode either
            else:
                decoded = cv2.imdecode(np.frombuffer(frame.jpeg(), np.uint8), REDUCED_FLAGS[factor])
                if decoded is None:
                    raise ValueError("the JPEG does not decode")
                if self.counters is not None:
                    self.counters.incr("jpeg_decodes")
            with self._lock:
                self._decodes[factor] += 1
            work.base = decoded
            return decoded

    # --- counting ------------------------------------------------------------------

    def count_sent(self, key: VariantKey, frames: int, nbytes: int) -> None:
        """Add what the fan-out sent to viewers of ``key``; called in batches, not once per send."""
        with self._lock:
            self._frames_sent[key] += frames
            self._bytes_sent[key] += nbytes

    def sent(self) -> dict[VariantKey, tuple[int, int]]:
        """(frames, bytes) sent to viewers, per variant."""
        with self._lock:
            return {
                key: (self._frames_sent[key], self._bytes_sent[key]) for key in sorted(self._frames_sent, key=_order)
            }

    def viewers(self) -> dict[VariantKey, int]:
        with self._lock:
            return dict(self._watchers)

    def counts(self) -> dict[VariantKey, tuple[int, int]]:
        """(encodes, bytes encoded) per variant ever made."""
        with self._lock:
            return {key: (self._encodes[key], self._bytes[key]) for key in sorted(self._encodes, key=_order)}

    def decodes(self) -> dict[int, int]:
        """Decodes done for variants, by libjpeg reduction factor (1 = full size)."""
        with self._lock:
            return dict(sorted(self._decodes.items()))

    def status(self) -> dict[str, Any]:
        """For /api/status: the ladder, and every variant watched, made or sent, with its counts."""
        with self._lock:
            keys = sorted(set(self._watchers) | set(self._encodes) | set(self._frames_sent), key=_order)
            return {
                "ladder": [*LADDER, "full"],
                "qualities": dict(QUALITY_NAMES),
                "served": [
                    {
                        "width": key.label,
                        "quality": key.quality,
                        "viewers": self._watchers.get(key, 0),
                        "encodes": self._encodes.get(key, 0),
                        "bytes": self._bytes.get(key, 0),
                        "frames_sent": self._frames_sent.get(key, 0),
                        "bytes_sent": self._bytes_sent.get(key, 0),
                    }
                    for key in keys
                ],
                "decodes": {f"1/{factor}": count for factor, count in sorted(self._decodes.items())},
            }


def _order(key: VariantKey) -> tuple[int, int]:
    return (MAX_WIDTH + 1 if key.width is None else key.width, key.quality)
