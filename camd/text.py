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

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX

Colour = tuple[int, int, int]
Line = tuple[str, tuple[int, int]]  # the text and the left end of its baseline
T = TypeVar("T")

_lock = threading.Lock()
_drawer: ThreadPoolExecutor | None = None


def _on_drawing_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    global _drawer
    with _lock:
        if _drawer is None:
            _drawer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="text")
        future = _drawer.submit(function, *args, **kwargs)
    return future.result()


def stop() -> None:
    """End the drawing thread once whatever was asked of it is drawn (the daemon stops); a later call starts one."""
    global _drawer
    with _lock:
        drawer, _drawer = _drawer, None
    if drawer is not None:
        drawer.shutdown(wait=True)


def text_size(text: str, scale: float, thickness: int) -> tuple[int, int, int]:
    """Width, height above the baseline and depth below it, in pixels, of ``text`` at ``scale``."""
    (width, height), baseline = _on_drawing_thread(cv2.getTextSize, text, FONT, scale, thickness)
    return width, height, baseline


def put_text(
    image: np.ndarray, lines: Sequence[Line], scale: float, colour: Colour, *, thickness: int,
    outline: Colour | None = None,
) -> None:  # fmt: skip
    """Draw each line on ``image`` in place; with ``outline``, over a stroke two pixels wider in that colour."""
    _on_drawing_thread(_draw, image, lines, scale, colour, thickness=thickness, outline=outline)


def _draw(
    image: np.ndarray, lines: Sequence[Line], scale: float, colour: Colour, *, thickness: int, outline: Colour | None
) -> None:
    for text, origin in lines:
        if outline is not None:
            cv2.putText(image, text, origin, FONT, scale, outline, thickness + 2, cv2.LINE_AA)
        cv2.putText(image, text, origin, FONT, scale, colour, thickness, cv2.LINE_AA)
