"""camd.capture with scripted sources: warm-up, loss, hangs, and a replugged camera's node."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from camd.capture import Capture, WarmUp
from camd.hub import LIVE, OFFLINE, Hub
from camd.settings import Settings, load
from camd.sources import Captured, SourceError, SourceInfo


class Plugged:
    """A camera whose device node is a file: it works while the file exists, like /dev/videoN."""

    description = "plugged"

    def __init__(self, node: Path, wedged: threading.Event, broken: threading.Event) -> None:
        self.node = node
        self.device = str(node)
        self.wedged = wedged
        self.broken = broken
        self.number = 0

    def open(self) -> SourceInfo:
        if not self.node.exists():
            raise SourceError(f"{self.node}: no such device")
        if self.wedged.is_set():
            raise SourceError("the camera does not answer")
        return SourceInfo("scripted", 64, 48, 30.0, "BGR3", passthrough=False)

    def read(self) -> Captured | None:
        time.sleep(1 / 30)
        if not self.node.exists() or self.broken.is_set():
            return None  # ENODEV, as an unplugged camera answers; or a camera that opens but gives no picture
        self.number += 1
        pixels = np.zeros((48, 64, 3), np.uint8)
        x = self.number % 48
        pixels[:, x : x + 16] = 200  # a moving bar, the same brightness in every frame
        return Captured(time.time(), pixels=pixels)

    def close(self) -> None:
        pass


@pytest.fixture
def settings() -> Settings:
    values = {"warmup_delay": "0", "warmup_frames": "0", "warmup_max": "1", "stall_timeout": "1", "width": "64",
              "height": "48"}  # fmt: skip
    return load(values, environ={}, config=None)


@pytest.fixture
def node(tmp_path: Path) -> Path:
    path = tmp_path / "video0"
    path.touch()
    return path


class Rig:
    def __init__(self, settings: Settings, node: Path) -> None:
        self.node = node
        self.wedged = threading.Event()
        self.broken = threading.Event()
        self.opens: list[float] = []
        self.hub = Hub(80)
        # The supervisor at four times its pace: backoff steps of 0.25, 0.5, 1, 2 s instead of 1, 2, 4, 8 s.
        self.capture = Capture(settings, self.source, self.hub, backoff_first=0.25, tick=0.0625)

    def source(self) -> Plugged:
        self.opens.append(time.monotonic())
        return Plugged(self.node, self.wedged, self.broken)


@pytest.fixture
def rig(settings: Settings, node: Path) -> Iterator[Rig]:
    rig = Rig(settings, node)
    rig.capture.start()
    yield rig
    rig.capture.stop()


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout}s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_replugged_camera_is_reopened_when_its_node_returns_not_at_the_next_backoff_step(rig: Rig) -> None:
    wait_for(lambda: rig.hub.camera.state == LIVE, 10)
    rig.node.unlink()
    wait_for(lambda: rig.hub.camera.state == OFFLINE, 10)
    time.sleep(0.9)  # failed reopens after 0.25 s and 0.5 s more: the backoff is now at its 1 s step
    rig.node.touch()
    took = wait_for(lambda: rig.hub.camera.state == LIVE, 10)
    assert took < 0.5, f"live {took:.2f}s after the node came back"


def test_failures_after_the_node_returns_back_off_again_from_the_first_step(rig: Rig) -> None:
    wait_for(lambda: rig.hub.camera.state == LIVE, 10)
    rig.wedged.set()  # the node comes back, but the camera does not answer yet
    rig.node.unlink()
    wait_for(lambda: rig.hub.camera.state == OFFLINE, 10)
    time.sleep(0.9)
    before = len(rig.opens)
    rig.node.touch()
    wait_for(lambda: len(rig.opens) > before, 0.25)  # reopened at once when the node returned
    returned = rig.opens[-1]
    time.sleep(0.9)
    # Then 0.25 s and 0.5 s apart again (not every tick, and not the 2 s step the backoff had reached).
    gaps = [round(b - a, 2) for a, b in zip(rig.opens, rig.opens[1:], strict=False) if a >= returned]
    assert len(gaps) == 2 and 0.22 <= gaps[0] <= 0.4 and 0.47 <= gaps[1] <= 0.65, gaps


def test_offline_since_is_since_the_camera_was_last_live_not_since_the_last_failed_warm_up(rig: Rig) -> None:
    wait_for(lambda: rig.hub.camera.state == LIVE, 10)
    rig.broken.set()  # it opens, then gives no picture: offline, warming up, offline, ...
    wait_for(lambda: rig.hub.camera.state == OFFLINE, 10)
    lost_at = rig.hub.camera.since
    cycles = len(rig.opens)
    wait_for(lambda: len(rig.opens) >= cycles + 2, 10)  # two more opens, each warming up and failing
    wait_for(lambda: rig.hub.camera.state == OFFLINE, 10)
    assert rig.hub.camera.since == lost_at


# --- the warm-up, one read at a time -----------------------------------------------------------


def frame(level: int) -> Captured:
    pixels = np.full((48, 64, 3), level, np.uint8)
    pixels[:, :8] = 255  # not flat
    return Captured(0.0, pixels=pixels)


def warm_settings(delay: float, frames: int, most: float) -> Settings:
    return load({"warmup_delay": str(delay), "warmup_frames": str(frames), "warmup_max": str(most)}, environ={},
                config=None)  # fmt: skip


def test_warmup_discards_the_delay_then_the_frames_then_until_the_picture_settles() -> None:
    warm = WarmUp(warm_settings(1.0, 2, 10.0), now=0.0)
    timeline = [(0.1, frame(10)), (0.9, None), (1.0, frame(20)), (1.1, frame(30)), (1.2, frame(40)),
                (1.3, frame(90)), (1.4, frame(91)), (1.5, frame(92))]  # fmt: skip
    results = [warm.offer(captured, at) for at, captured in timeline]
    assert results[:-1] == [None] * 7
    assert results[-1] is not None and results[-1].settled and results[-1].frames == 7
    assert results[-1].seconds == pytest.approx(1.5)


def test_an_invalid_frame_restarts_the_settling() -> None:
    warm = WarmUp(warm_settings(0, 0, 10.0), now=0.0)
    assert [warm.offer(f, 1.0) for f in (frame(90), frame(90), None, frame(90), frame(90))] == [None] * 5
    result = warm.offer(frame(90), 1.0)
    assert result is not None and result.frames == 5


def test_a_picture_that_never_settles_goes_live_at_warmup_max() -> None:
    warm = WarmUp(warm_settings(0, 0, 2.0), now=0.0)
    assert warm.offer(frame(10), 0.5) is None and warm.offer(frame(60), 1.0) is None
    result = warm.offer(frame(120), 2.0)
    assert result is not None and not result.settled and result.frames == 2


# --- the supervisor alone replaces workers ------------------------------------------------------


class Hanging(Plugged):
    """Reads hang while ``hang`` is set, the way a wedged driver's read never returns."""

    hang = threading.Event()

    def read(self) -> Captured | None:
        while self.hang.is_set():
            time.sleep(0.02)
        return super().read()


def test_a_hung_read_is_given_up_on_and_a_new_worker_takes_over(settings: Settings, node: Path) -> None:
    hub = Hub(80)
    sources: list[Hanging] = []

    def source() -> Hanging:
        sources.append(Hanging(node, threading.Event(), threading.Event()))
        return sources[-1]

    capture = Capture(settings, source, hub)
    capture.start()
    try:
        wait_for(lambda: hub.camera.state == LIVE, 10)
        Hanging.hang.set()
        wait_for(lambda: hub.camera.state == OFFLINE, 10)
        assert "hung" in (capture.stuck() or "")
        assert "hung" in hub.camera.error
        wait_for(lambda: len(sources) >= 2, 5)  # the supervisor opened a new source, without waiting for the old read
        Hanging.hang.clear()
        wait_for(lambda: hub.camera.state == LIVE, 10)
        assert capture.stuck() is None
        readers = [t for t in threading.enumerate() if t.name.startswith("capture-") and t.name != "capture-supervisor"]
        wait_for(lambda: sum(t.is_alive() for t in readers) <= 1, 5)  # the given-up worker ended by itself
    finally:
        Hanging.hang.clear()
        capture.stop()
