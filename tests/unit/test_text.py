"""Text on pictures: drawn where it is asked for, and on one thread whichever thread asks.

OpenCV 5 keeps a font engine per thread that drew text (about 6 MB of inflated
fonts); before camd.text every thread that took a still or drew the offline frame
kept one, and the soak's RSS grew with each.
"""

from __future__ import annotations

import ctypes
import threading
import time

import numpy as np
import pytest

from camd.frames import render_text_frame
from camd.sources import TestPatternSource
from camd.stills import draw_banner
from camd.text import put_text, stop, text_size

MB = 1 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")
    ]  # fmt: skip


def malloc_in_use() -> int:
    """Bytes the C heap has handed out and not had back (glibc's mallinfo2: arenas plus mmapped chunks)."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except AttributeError:
        pytest.skip("needs glibc 2.33 or later (mallinfo2)")
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def test_text_is_drawn_where_asked_with_its_outline() -> None:
    image = np.zeros((120, 400, 3), np.uint8)
    width, height, baseline = text_size("camd 12:34", 1.0, 2)
    assert 100 < width < 300 and 15 < height < 40 and 0 < baseline < 20
    put_text(image, [("camd 12:34", (10, 60))], 1.0, (255, 255, 255), thickness=2, outline=(0, 0, 255))
    rows, columns = np.nonzero(image.any(axis=2))
    assert columns.min() >= 7 and columns.max() <= 10 + width + 3
    assert 60 - height - 3 <= rows.min() and rows.max() <= 60 + baseline + 3
    white = np.all(image == (255, 255, 255), axis=2).sum()
    reddish = (image[:, :, 2].astype(int) - image[:, :, 1] > 60).sum()  # the outline shows at the letters' edges
    assert white > 100 and reddish > 50


def test_threads_that_draw_text_share_one_copy_of_the_fonts() -> None:
    picture = np.random.default_rng(1).integers(0, 256, (480, 640, 3), np.uint8)
    pattern = TestPatternSource(640, 480, 15)
    draw_banner(picture, time.time())  # the first copy of the fonts, wherever it lives
    release = threading.Event()
    drawn: list[threading.Thread] = []

    def draw() -> None:
        draw_banner(picture, time.time(), "camd")
        render_text_frame(640, 480, ["CAMERA OFFLINE", "since 12:00"])
        pattern.render(7, time.time())
        drawn.append(threading.current_thread())
        release.wait(10)

    before = malloc_in_use()
    # Kept alive while measured: a thread's copy goes when the thread ends.
    threads = [threading.Thread(target=draw) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(drawn) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(drawn) == len(threads)
        grown = malloc_in_use() - before
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    # One copy per thread was about 6 MB each, 36 MB here.
    assert grown < 3 * MB, f"the C heap grew by {grown / MB:.1f} MB for six threads that drew text"


def test_stop_ends_the_drawing_thread_and_a_later_call_starts_another() -> None:
    def drawing() -> list[threading.Thread]:
        return [thread for thread in threading.enumerate() if thread.name.startswith("text_")]

    assert text_size("camd", 1.0, 1)[0] > 0
    assert len(drawing()) == 1
    stop()
    assert drawing() == []
    assert text_size("camd", 1.0, 1)[0] > 0
    assert len(drawing()) == 1
