"""Warm-up end to end: frames a camera gives before it settles never reach a viewer or a snapshot."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import requests

from tests.support.daemon import Daemon
from tests.support.recordings import is_green, is_marker, make_recording, marker_picture, moving_picture
from tests.support.streams import StreamWatcher, decode, is_placeholder


def _snapshots_until(daemon: Daemon, end: float) -> list[bytes]:
    """Poll /snapshot.jpg until ``end`` (monotonic); the bodies of every 200 answer."""
    bodies = []
    while time.monotonic() < end:
        response = requests.get(daemon.url("/snapshot.jpg"), auth=daemon.auth, timeout=10)
        assert response.status_code in (200, 503), response.status_code
        if response.status_code == 200:
            bodies.append(response.content)
        time.sleep(0.05)
    return bodies


def _early_viewer(daemon: Daemon) -> StreamWatcher:
    """A viewer connected as soon as the daemon listens, before warm-up can be over."""
    viewer = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)
    assert viewer.status == 200
    viewer.wait_for(lambda part: True, 10, "the first part")
    return viewer


def _snapshots_while_warming_up(daemon: Daemon, timeout: float = 30) -> list[bytes]:
    """Poll /snapshot.jpg until /healthz says ok (failing after ``timeout``); the bodies of every 200."""
    bodies: list[bytes] = []
    deadline = time.monotonic() + timeout
    while daemon.health() != (200, "ok"):
        assert time.monotonic() < deadline, "never became healthy"
        bodies += _snapshots_until(daemon, time.monotonic() + 0.2)
    return bodies


def _discarded(daemon: Daemon) -> list[int]:
    return [int(n) for n in re.findall(r"warm-up discarded (\d+) frames", daemon.log)]


def test_green_frames_of_a_warming_camera_are_never_served(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    # 20 flat green frames (what a broken webcam emits first), then 1 s of picture; loops every 1.5 s.
    recording = make_recording(tmp_path / "green-first.avi", frames=45, fps=30, first=20)
    daemon = daemon_factory("--source", f"file:{recording}", wait_healthy=False)  # default warm-up
    viewer = _early_viewer(daemon)
    try:
        assert is_placeholder(decode(viewer.parts[0].body)), "connected too late to see the warm-up"
        snapshots = _snapshots_while_warming_up(daemon)
        live_from = viewer.wait_for(lambda part: not is_placeholder(decode(part.body)), 10, "a live frame")
        # Two more loops of the recording while also taking snapshots, and at least one whole green
        # start dropped by the gate while this viewer watched.
        snapshots += _snapshots_until(daemon, time.monotonic() + 3.2)
        deadline = time.monotonic() + 15
        while daemon.get("/api/status").json()["dropped"].get("flat", 0) < 20:
            assert time.monotonic() < deadline, "the recording never looped back to its green start"
            snapshots += _snapshots_until(daemon, time.monotonic() + 0.3)
    finally:
        viewer.close()

    images = [decode(part.body) for part in viewer.parts]
    assert not [i for i, image in enumerate(images) if is_green(image)], "a green frame reached the viewer"
    live = [image for image in images[live_from:] if not is_placeholder(image)]
    assert len(live) >= 15, f"only {len(live)} live frames in 3 s"
    assert len(snapshots) >= 10
    assert not [body for body in snapshots if is_green(decode(body))], "a green frame was a snapshot"
    assert not [body for body in snapshots if is_placeholder(decode(body))], "a snapshot was the placeholder"

    counts = _discarded(daemon)
    assert len(counts) == 1, daemon.log
    # The 2 s warm-up delay alone covers the 20 green frames; 13 more are discarded after it.
    assert counts[0] >= 20 + 13, counts
    assert daemon.get("/api/status").json()["warmup"]["frames"] == counts[0]


def _marker_recording(path: Path, markers: int, frames: int, fps: float, size: tuple[int, int]) -> Path:
    """Marker frames (not flat: the gate lets them through) then a moving picture."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for number in range(frames):
        writer.write(
            marker_picture(number, width, height) if number < markers else moving_picture(number, width, height)
        )
    writer.release()
    return path


def test_warmup_frames_are_discarded_even_when_the_gate_would_pass_them(
    daemon_factory: Callable[..., Daemon], tmp_path: Path
) -> None:
    # 20 marker frames at 10 fps (2 s of them), then a picture; 30 s long, so no loop during the test.
    recording = _marker_recording(tmp_path / "marker-first.avi", 20, 300, 10, (320, 240))
    assert is_marker(_first_frame(recording)) and not is_marker(_frame(recording, 20))
    daemon = daemon_factory(
        "--source", f"file:{recording}", "--warmup-delay", "0", "--warmup-frames", "25", "--warmup-max", "10",
        wait_healthy=False,
    )  # fmt: skip
    viewer = _early_viewer(daemon)
    try:
        # Connected while camd still shows its own placeholder: a broken warm-up would show markers now.
        assert is_placeholder(decode(viewer.parts[0].body)), "connected too late to see the warm-up"
        snapshots = _snapshots_while_warming_up(daemon)
        live_from = viewer.wait_for(lambda part: not is_placeholder(decode(part.body)), 10, "a live frame")
        snapshots += _snapshots_until(daemon, time.monotonic() + 1.0)
    finally:
        viewer.close()

    images = [decode(part.body) for part in viewer.parts]
    assert not [i for i, image in enumerate(images) if is_marker(image)], "a warm-up frame reached the viewer"
    assert not [body for body in snapshots if is_marker(decode(body))], "a warm-up frame was a snapshot"
    assert not [body for body in snapshots if is_placeholder(decode(body))], "a snapshot was the placeholder"
    assert len([image for image in images[live_from:] if not is_placeholder(image)]) >= 5
    counts = _discarded(daemon)
    assert len(counts) == 1 and counts[0] >= 25, daemon.log
    assert daemon.get("/api/status").json()["warmup"]["frames"] == counts[0]


def _first_frame(path: Path) -> np.ndarray:
    return _frame(path, 0)


def _frame(path: Path, number: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    for _ in range(number + 1):
        ok, image = cap.read()
        assert ok
    cap.release()
    return image
