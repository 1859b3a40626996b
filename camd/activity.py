"""The activity score: how much of the picture changed since the last sample, robust to noise and light.

Each sample is a small greyscale picture (a camera JPEG decoded at 1/8 scale,
raw frames downscaled). It is compared with the previous sample after both are
brought to the same overall brightness (so slow light changes and flicker that
brighten or darken the whole picture cancel out). A pixel counts as changed when
its difference is well above the noise that pixel usually shows (learned from
the scene while it is quiet). The level is the changed fraction of the picture
outside the masks; below ``min_area`` it is not activity. A sudden change of
most of the picture at once is a light switched on or off (or the camera
adjusting its exposure): the detector starts learning afresh instead of
reporting it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import cv2
import numpy as np

ANALYSIS_WIDTH = 160  # pixels across of the picture the score is computed on
LEARN_SAMPLES = 5  # samples after a (re)start that only teach the noise floor
NOISE_START = 2.0  # first guess of a pixel's usual difference, in grey levels
NOISE_MIN = 0.5
MIN_DIFFERENCE = (2.0, 12.0)  # grey levels a pixel must change at least: most and least sensitive
NOISE_ADAPT_SECONDS = 10.0  # how fast the noise floor follows the scene
LIGHT_SWITCH_FRACTION = 0.6  # this much of the picture changing at once is a light, not activity
# ... and so is this much when the whole picture also got this much brighter or darker at once.
LIGHT_SWITCH_WITH_GAIN = (0.2, 0.1)  # (fraction, |log gain|)
GAIN_LIMITS = (0.25, 4.0)  # larger brightness jumps than this between samples are not corrected


class MaskError(ValueError):
    """An activity mask that does not parse; the message says what is allowed."""


@dataclass(frozen=True)
class Rect:
    """A region to ignore, in percent of the frame: left, top, width, height."""

    x: float
    y: float
    w: float
    h: float


_NUMBER = r"\s*(\d+(?:\.\d+)?)\s*"
_RECT = re.compile(",".join([_NUMBER] * 4))


def parse_mask(text: str) -> tuple[Rect, ...]:
    """Rectangles from ``"x,y,w,h; x,y,w,h"`` (percent of the frame); raises MaskError."""
    rects = []
    for part in text.split(";"):
        if not part.strip():
            continue
        match = _RECT.fullmatch(part)
        if match is None:
            raise MaskError("rectangles 'x,y,w,h' in percent of the frame, separated by ';', e.g. '0,0,25,40'")
        x, y, w, h = (float(group) for group in match.groups())
        if w <= 0 or h <= 0 or x + w > 100 or y + h > 100:
            raise MaskError(f"each rectangle must lie inside the frame (x+w and y+h at most 100), not {part.strip()!r}")
        rects.append(Rect(x, y, w, h))
    return tuple(rects)


def sensitivity_factor(sensitivity: int) -> float:
    """How many times its usual noise a pixel must change to count: 3 (most sensitive) to 11."""
    return 3.0 + 8.0 * (100 - sensitivity) / 99


def minimum_difference(sensitivity: int) -> float:
    """Grey levels a pixel must change at least, however quiet the scene: 2 (most sensitive) to 12."""
    low, high = MIN_DIFFERENCE
    return low + (high - low) * (100 - sensitivity) / 99


def small_grey(jpeg: bytes | None = None, pixels: np.ndarray | None = None) -> np.ndarray | None:
    """The small greyscale picture the score uses; None when a JPEG does not decode."""
    if jpeg is not None:
        small = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if small is None:
            return None
    else:
        assert pixels is not None
        height, width = pixels.shape[:2]
        if width > ANALYSIS_WIDTH * 2:
            # Every n-th pixel first keeps the cost independent of the frame size (OpenCV's nearest-neighbour
            # loop: 0.35 ms at 720p, against 0.8 ms for numpy striding); INTER_AREA then averages away noise.
            size = (ANALYSIS_WIDTH * 2, max(1, round(height * ANALYSIS_WIDTH * 2 / width)))
            pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_NEAREST)
        grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
        target = min(ANALYSIS_WIDTH, grey.shape[1])
        size = (target, max(1, round(grey.shape[0] * target / grey.shape[1])))
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    if small.shape[1] > ANALYSIS_WIDTH:
        height = max(1, round(small.shape[0] * ANALYSIS_WIDTH / small.shape[1]))
        small = cv2.resize(small, (ANALYSIS_WIDTH, height), interpolation=cv2.INTER_AREA)
    return small


@dataclass(frozen=True)
class Sample:
    """The score of one analysed picture."""

    level: float  # changed fraction of the unmasked picture, 0-1
    active: bool  # level is at least min_area
    learning: bool = False  # the detector is (re)learning the scene; level is 0
    light_switch: bool = False  # most of the picture changed at once


class Detector:
    """Turns a sequence of small greyscale pictures into activity levels; one instance per camera."""

    def __init__(self, *, rate: float, sensitivity: int = 50, min_area: float = 0.5, mask: tuple[Rect, ...] = ()):
        self.rate = rate
        self.factor = sensitivity_factor(sensitivity)
        self.min_difference = minimum_difference(sensitivity)
        self.min_area = min_area / 100
        self.mask_rects = mask
        self.noise_alpha = min(1.0, 1.0 / max(1.0, NOISE_ADAPT_SECONDS * rate))
        self.light_switches = 0
        self._previous: np.ndarray | None = None
        self._noise: np.ndarray | None = None
        self._mask_u8: np.ndarray | None = None  # 255 where the picture is not masked; None without masks
        self._area = 0
        self._previous_mean = 0.0
        self._learning = 0

    def reset(self) -> None:
        """Forget the scene (a new camera, a new resolution): learn it again."""
        self._previous = None

    def _start(self, small: np.ndarray) -> None:
        self._previous = small.astype(np.float32)
        if self._noise is None or self._noise.shape != small.shape:
            self._noise = np.full(small.shape, NOISE_START, np.float32)
            keep = self._mask_for(small.shape)
            self._area = int(np.count_nonzero(keep))
            self._mask_u8 = None if self._area == keep.size else keep.astype(np.uint8) * 255
        self._previous_mean = cv2.mean(small, mask=self._mask_u8)[0]  # mask=None: the whole picture
        self._learning = LEARN_SAMPLES

    def _mask_for(self, shape: tuple[int, ...]) -> np.ndarray:
        keep = np.ones(shape[:2], bool)
        height, width = shape[:2]
        for rect in self.mask_rects:
            left, top = math.floor(rect.x * width / 100), math.floor(rect.y * height / 100)
            right, bottom = math.ceil((rect.x + rect.w) * width / 100), math.ceil((rect.y + rect.h) * height / 100)
            keep[top:bottom, left:right] = False
        return keep

    def feed(self, small: np.ndarray) -> Sample:
        """Score one picture against the one before it."""
        previous, noise = self._previous, self._noise
        if previous is None or noise is None or previous.shape != small.shape:
            self._start(small)
            return Sample(0.0, False, learning=True)
        # Whole-picture OpenCV operations only, as few as will do: this runs several times a second.
        current = small.astype(np.float32)
        area = self._area
        if area == 0:
            self._previous = current
            return Sample(0.0, False)
        # Whole-picture brightness changes (clouds, dusk, flicker, auto exposure) scale every pixel alike.
        now = cv2.mean(small, mask=self._mask_u8)[0]
        gain = (self._previous_mean + 1.0) / (now + 1.0)
        current_matched = current * gain if GAIN_LIMITS[0] <= gain <= GAIN_LIMITS[1] else current
        difference = cv2.absdiff(current_matched, previous)
        threshold = noise * self.factor
        np.maximum(threshold, self.min_difference, out=threshold)
        changed = cv2.compare(difference, threshold, cv2.CMP_GT)  # 255 where changed
        if self._mask_u8 is not None:
            cv2.bitwise_and(changed, self._mask_u8, dst=changed)
        fraction = cv2.countNonZero(changed) / area
        self._previous, self._previous_mean = current, now
        sudden = fraction >= LIGHT_SWITCH_WITH_GAIN[0] and abs(math.log(gain)) >= LIGHT_SWITCH_WITH_GAIN[1]
        if fraction >= LIGHT_SWITCH_FRACTION or sudden:
            self.light_switches += 1
            self._learning = LEARN_SAMPLES
            return Sample(0.0, False, learning=True, light_switch=True)
        # The noise floor learns only from pixels that did not change, so activity does not raise it:
        # noise += alpha * (max(difference, NOISE_MIN) - noise) where unchanged.
        alpha = 0.3 if self._learning else self.noise_alpha
        np.maximum(difference, NOISE_MIN, out=difference)
        cv2.accumulateWeighted(difference, noise, alpha, mask=cv2.bitwise_not(changed))
        if self._learning:
            self._learning -= 1
            return Sample(0.0, False, learning=True)
        return Sample(fraction, fraction >= self.min_area)


@dataclass
class Event:
    """A stretch of activity: from its first active sample to its last one."""

    start: float
    end: float | None = None
    peak: float = 0.0
    peak_time: float = 0.0
    last_active: float = 0.0
    still: str | None = None  # ``day/name`` of the event still

    def as_record(self) -> dict[str, object]:
        return {
            "start": round(self.start, 3),
            "end": None if self.end is None else round(self.end, 3),
            "peak": round(self.peak, 4),
            "peak_time": round(self.peak_time, 3),
            "still": self.still,
        }

    def copy(self) -> Event:
        return dataclasses.replace(self)


class Events:
    """Opens an event on the first active sample and closes it after ``quiet`` seconds without one."""

    def __init__(self, quiet: float) -> None:
        self.quiet = quiet
        self.current: Event | None = None

    def feed(self, when: float, sample: Sample) -> tuple[Event | None, Event | None]:
        """``(started, ended)``: the event this sample opened and the one it closed, if any."""
        started = ended = None
        event = self.current
        if event is not None and not sample.active and when - event.last_active >= self.quiet:
            event.end = event.last_active
            ended, self.current = event, None
            event = None
        if sample.active:
            if event is None:
                event = self.current = Event(start=when, peak=sample.level, peak_time=when, last_active=when)
                started = event
            event.last_active = when
            if sample.level > event.peak:
                event.peak, event.peak_time = sample.level, when
        return started, ended

    def close(self) -> Event | None:
        """End the event going on now, if any (the daemon stops, the camera went away)."""
        event, self.current = self.current, None
        if event is not None:
            event.end = event.last_active
        return event
