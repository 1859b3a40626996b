"""Text on pictures (the still banner, the offline frame, the test pattern), drawn on one thread only.

OpenCV 5 measures and draws text with a font engine that lives per thread
(``thread_local``): the first text a thread touches inflates the built-in fonts,
about 6 MB, and that thread keeps them until it ends. camd draws text from several
long-lived threads (the stills writer, the activity monitor's event stills, each web
worker that takes a still on demand, the capture thread), so RSS grew by about 6 MB
each time one more of them drew its first text. Every call here runs on one thread,
which keeps a single copy; the hand-off costs tens of microseconds, and text is drawn
at most a few times per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX

Colour = tuple[int, int, int]
Line = tuple[str, tuple[int, int]]  # the text and the left end of its baseline

_drawer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="text")  # its thread starts at the first call


def text_size(text: str, scale: float, thickness: int) -> tuple[int, int, int]:
    """Width, height above the baseline and depth below it, in pixels, of ``text`` at ``scale``."""
    (width, height), baseline = _drawer.submit(cv2.getTextSize, text, FONT, scale, thickness).result()
    return width, height, baseline


def put_text(
    image: np.ndarray, lines: Sequence[Line], scale: float, colour: Colour, *, thickness: int,
    outline: Colour | None = None,
) -> None:  # fmt: skip
    """Draw each line on ``image`` in place; with ``outline``, over a stroke two pixels wider in that colour."""
    _drawer.submit(_draw, image, lines, scale, colour, thickness=thickness, outline=outline).result()


def _draw(
    image: np.ndarray, lines: Sequence[Line], scale: float, colour: Colour, *, thickness: int, outline: Colour | None
) -> None:
    for text, origin in lines:
        if outline is not None:
            cv2.putText(image, text, origin, FONT, scale, outline, thickness + 2, cv2.LINE_AA)
        cv2.putText(image, text, origin, FONT, scale, colour, thickness, cv2.LINE_AA)
