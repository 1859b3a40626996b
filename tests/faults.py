"""Fault injection for end-to-end tests: the real daemon with a camera that misbehaves on command.

``python -m tests.faults run ...`` is ``camd run ...`` with every source camd
opens wrapped in :class:`FaultySource`. The test steers it by writing one word to
the file named by ``$CAMD_TEST_FAULTS`` (read on every open and read):

- ``ok``: the wrapped source as it is;
- ``flaky``: every 3rd frame is one flat green colour and every 5th is truncated
  (half a JPEG, or half the rows of pixels), the rest are good;
- ``gone``: the camera is unplugged: opens raise, reads raise;
- ``hang``: opens and reads block until the word changes (a wedged driver).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from camd import sources
from camd.settings import Settings
from camd.sources import Captured, Source, SourceError, SourceInfo

ENV = "CAMD_TEST_FAULTS"
STALL = "1"  # the --stall-timeout, seconds, of a daemon the tests start under these faults: a hang shows soon
MODES = ("ok", "flaky", "gone", "hang")


def set_mode(path: Path, mode: str) -> None:
    """Switch every FaultySource of the daemon watching ``path`` to ``mode`` (atomically)."""
    assert mode in MODES, mode
    tmp = path.with_suffix(".tmp")
    tmp.write_text(mode)
    os.replace(tmp, path)


class FaultySource:
    """Wraps a real source and injects the faults the control file asks for."""

    def __init__(self, inner: Source, control: Path) -> None:
        self.inner = inner
        self.control = control
        self.description = inner.description
        self.device: str | None = getattr(inner, "device", None)
        self._count = 0

    def mode(self) -> str:
        try:
            mode = self.control.read_text().strip()
        except OSError:
            return "ok"
        return mode if mode in MODES else "ok"

    def _hang(self) -> None:
        """Block like a wedged driver: until the mode changes (then the call returns a failure)."""
        while self.mode() == "hang":
            time.sleep(0.05)

    def open(self) -> SourceInfo:
        mode = self.mode()
        if mode == "gone":
            raise SourceError(f"{self.description}: no such device (injected)")
        if mode == "hang":
            self._hang()
            raise SourceError(f"{self.description}: open hung (injected)")
        return self.inner.open()

    def read(self) -> Captured | None:
        mode = self.mode()
        if mode == "gone":
            time.sleep(0.01)
            raise OSError(19, "No such device (injected)")
        if mode == "hang":
            self._hang()
            return None
        frame = self.inner.read()
        if frame is None or mode != "flaky":
            return frame
        self._count += 1
        if self._count % 3 == 0:
            return flat(frame)
        if self._count % 5 == 0:
            return truncated(frame)
        return frame

    def close(self) -> None:
        self.inner.close()


def flat(frame: Captured) -> Captured:
    """The frame as the flat green a broken webcam emits, in the frame's own form."""
    if frame.pixels is not None:
        return Captured(frame.timestamp, pixels=np.full_like(frame.pixels, (0, 255, 0)))
    import cv2

    assert frame.jpeg is not None
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    ok, data = cv2.imencode(".jpg", np.full_like(image, (0, 255, 0)))
    assert ok
    return Captured(frame.timestamp, jpeg=data.tobytes())


def truncated(frame: Captured) -> Captured:
    """Half of the frame: a JPEG cut in the middle, or the top half of the rows."""
    if frame.pixels is not None:
        return Captured(frame.timestamp, pixels=frame.pixels[: frame.pixels.shape[0] // 2])
    assert frame.jpeg is not None
    return Captured(frame.timestamp, jpeg=frame.jpeg[: len(frame.jpeg) // 2])


def main() -> int:
    control = Path(os.environ[ENV])
    real = sources.make_source

    def make_source(settings: Settings, device: str | None = None) -> Source:
        return FaultySource(real(settings, device=device), control)

    sources.make_source = make_source  # sources.Opener looks it up at every open
    from camd.__main__ import main as camd_main

    return camd_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
