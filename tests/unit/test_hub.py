"""camd.hub: the newest frame, the camera state, waiting readers and listeners."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from camd.frames import Frame
from camd.hub import LIVE, OFFLINE, STARTING, WARMING_UP, Hub


def picture(value: int = 0) -> np.ndarray:
    image = np.zeros((12, 16, 3), np.uint8)
    image[:, :, 0] = np.arange(16, dtype=np.uint8) * 8 + value
    return image


@pytest.fixture
def hub() -> Hub:
    return Hub(jpeg_quality=70)


def test_a_new_hub_has_no_frame_and_is_starting(hub: Hub) -> None:
    assert hub.latest is None
    assert hub.latest_live is None
    assert hub.camera.state == STARTING
    assert hub.live_age() == math.inf
    assert hub.fps() == 0.0


def test_publish_makes_the_newest_frame_with_rising_sequence_numbers(hub: Hub) -> None:
    first = hub.publish(pixels=picture(1), timestamp=100.0)
    second = hub.publish(pixels=picture(2))
    assert (first.seq, second.seq) == (1, 2)
    assert hub.latest is second and hub.latest_live is second
    assert first.timestamp == 100.0
    assert abs(second.timestamp - time.time()) < 5
    assert (second.width, second.height, second.quality) == (16, 12, 70)


def test_a_placeholder_is_the_newest_frame_but_never_the_newest_live_one(hub: Hub) -> None:
    live = hub.publish(pixels=picture(1))
    placeholder = hub.publish(pixels=picture(2), live=False)
    assert hub.latest is placeholder
    assert hub.latest_live is live
    assert not placeholder.live


def test_only_live_frames_make_the_live_age_fresh(hub: Hub) -> None:
    hub.publish(pixels=picture(), live=False)
    assert hub.live_age() == math.inf
    hub.publish(pixels=picture())
    assert 0 <= hub.live_age() < 1


def test_camera_jpeg_frames_take_the_size_the_camera_reported(hub: Hub) -> None:
    hub.set_camera(width=640, height=480)
    frame = hub.publish(jpeg=b"\xff\xd8 camera bytes \xff\xd9")
    assert (frame.width, frame.height) == (640, 480)
    assert frame.jpeg() == b"\xff\xd8 camera bytes \xff\xd9"


def test_set_camera_replaces_fields_and_restarts_since_only_on_a_new_state(hub: Hub) -> None:
    hub.set_camera(state=WARMING_UP, since=10.0)
    kept = hub.set_camera(state=WARMING_UP, width=320, height=240)
    assert (kept.since, kept.width, kept.height) == (10.0, 320, 240)
    changed = hub.set_camera(state=LIVE)
    assert changed.state == LIVE
    assert abs(changed.since - time.time()) < 5
    assert changed.width == 320  # fields not given stay
    assert hub.camera is changed


def test_wait_newer_returns_at_once_when_a_newer_frame_is_there(hub: Hub) -> None:
    frame = hub.publish(pixels=picture())
    assert hub.wait_newer(0, 5.0) is frame


def test_wait_newer_times_out_with_none(hub: Hub) -> None:
    frame = hub.publish(pixels=picture())
    started = time.monotonic()
    assert hub.wait_newer(frame.seq, 0.05) is None
    assert 0.04 <= time.monotonic() - started < 1.0


def test_wait_newer_wakes_on_a_publish_from_another_thread(hub: Hub) -> None:
    timer = threading.Timer(0.05, lambda: hub.publish(pixels=picture()))
    timer.start()
    try:
        started = time.monotonic()
        frame = hub.wait_newer(0, 5.0)
        assert frame is not None and frame.seq == 1
        assert time.monotonic() - started < 2.0
    finally:
        timer.join()


def test_a_late_reader_gets_the_newest_frame_never_the_ones_it_missed(hub: Hub) -> None:
    for value in range(5):
        newest = hub.publish(pixels=picture(value))
    assert hub.wait_newer(1, 1.0) is newest


def test_readers_on_other_threads_see_frames_only_move_forward(hub: Hub) -> None:
    seen: list[list[int]] = [[] for _ in range(3)]

    def read(into: list[int]) -> None:
        last = 0
        while last < 50:
            frame = hub.wait_newer(last, 2.0)
            assert frame is not None
            into.append(frame.seq)
            last = frame.seq

    readers = [threading.Thread(target=read, args=(into,)) for into in seen]
    for reader in readers:
        reader.start()
    for value in range(50):
        hub.publish(pixels=picture(value))
    for reader in readers:
        reader.join(5)
    for into in seen:
        assert into and into[-1] == 50
        assert into == sorted(set(into))  # strictly rising: never an older frame, never one twice


def test_listeners_hear_every_publish_and_a_failing_one_harms_nobody(hub: Hub) -> None:
    heard: list[int] = []

    def broken(frame: Frame) -> None:
        raise RuntimeError("listener bug")

    def record(frame: Frame) -> None:
        heard.append(frame.seq)

    hub.add_listener(broken)
    hub.add_listener(record)
    hub.publish(pixels=picture())
    hub.publish(pixels=picture(), live=False)
    assert heard == [1, 2]
    hub.remove_listener(record)
    hub.publish(pixels=picture())
    assert heard == [1, 2]


def test_fps_counts_live_frames_only(hub: Hub) -> None:
    for _ in range(5):
        hub.publish(pixels=picture(), live=False)
    assert hub.fps() == 0.0
    for _ in range(6):
        hub.publish(pixels=picture())
        time.sleep(0.01)
    # Six frames at most 100 per second (the sleeps), and surely more than one per second.
    assert 1 < hub.fps() <= 100


@pytest.mark.parametrize("state", [STARTING, WARMING_UP, LIVE, OFFLINE])
def test_camera_state_is_recorded_as_given(hub: Hub, state: str) -> None:
    assert hub.set_camera(state=state, error="x").state == state
    assert hub.camera.error == "x"
