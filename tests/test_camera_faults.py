"""Faults from the camera, injected into the real daemon (see tests/faults.py).

Flat and truncated frames never reach a viewer; a read that hangs takes neither
the web side nor the health check down with it; a camera that disappears and
comes back again and again is picked up every time, by viewers that stayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.faults import STALL, set_mode
from tests.support import wait_until
from tests.support.daemon import Daemon
from tests.support.notify import NotifySocket
from tests.support.recordings import is_green, make_recording
from tests.support.streams import Part, StreamWatcher, decode, is_placeholder

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


def rss_kb(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])


def live(part: Part) -> bool:
    return not is_placeholder(decode(part.body))


def placeholder(part: Part) -> bool:
    return is_placeholder(decode(part.body))


def status(daemon: Daemon) -> dict[str, object]:
    return daemon.get("/api/status").json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["pixels", "jpeg"])
def test_flat_and_truncated_frames_never_reach_a_viewer(
    faulty: Callable[..., tuple[Daemon, Path]], tmp_path: Path, kind: str
) -> None:
    if kind == "pixels":
        args: tuple[str, ...] = ("--source", "test", *SMALL)
    else:
        recording = make_recording(tmp_path / "clip.avi", frames=60, fps=15)
        args = ("--source", f"file:{recording}", "--passthrough", "on")
    daemon, control = faulty(*args)
    set_mode(control, "flaky")
    watcher = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)
    try:
        time.sleep(0.1)
        start = len(watcher.parts)
        watcher.wait_for(lambda part: len(watcher.parts) - start >= 45, 30, what="45 parts")
        parts = watcher.parts[start:]
    finally:
        watcher.close()
    health = daemon.health()
    dropped = status(daemon)["dropped"]
    images = [decode(part.body) for part in parts]
    print(f"\n{kind}: {len(parts)} parts while 1 frame in 3 is flat and 1 in 5 truncated; dropped {dropped}; "
          f"health {health}")  # fmt: skip
    assert all(image.shape == images[0].shape for image in images)
    assert not any(is_green(image) for image in images)
    assert health == (200, "ok"), "intermittent bad frames are not a lost camera"
    assert isinstance(dropped, dict) and dropped.get("flat", 0) > 0
    assert dropped.get("bad_shape" if kind == "pixels" else "bad_jpeg", 0) > 0


def test_a_hanging_read_takes_down_neither_health_nor_the_web_side(
    faulty: Callable[..., tuple[Daemon, Path]], tmp_path: Path
) -> None:
    notify = NotifySocket()
    daemon, control = faulty("--source", "test", *SMALL, env=notify.env())
    watcher = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)
    try:
        watcher.wait_for(live, 10, what="a live frame")
        hung_at = time.monotonic()
        set_mode(control, "hang")
        seen = len(watcher.parts)
        # Within stall_timeout (plus the supervisor's half-second tick and a loaded machine's slack).
        while daemon.health()[0] != 503:
            time.sleep(0.02)
        unhealthy_after = time.monotonic() - hung_at
        watcher.wait_for(placeholder, 10, what="the placeholder", start=seen)
        placeholder_after = time.monotonic() - hung_at
        # The rest of the daemon answers, and quickly, while the read is stuck.
        slowest = 0.0
        for path in ("/api/status", "/", "/live", "/snapshot.jpg", "/api/status"):
            asked = time.monotonic()
            response = daemon.get(path)
            slowest = max(slowest, time.monotonic() - asked)
            assert response.status_code == 200, (path, response.status_code)
        health = daemon.health()
        camera = status(daemon)["camera"]
        assert isinstance(camera, dict) and camera["state"] == "offline" and "hung" in camera["error"]
        time.sleep(2.5)  # stay hung a little longer: the next worker hangs too
        set_mode(control, "ok")
        recovering = time.monotonic()
        starved = notify.count("WATCHDOG", hung_at + float(STALL) + 0.6, recovering)
        back = len(watcher.parts)
        watcher.wait_for(live, 30, what="live frames again", start=back)
        daemon.wait_healthy(30)
        recovered_after = time.monotonic() - recovering
        fed_again = wait_until(lambda: notify.count("WATCHDOG", recovering), 10, what="WATCHDOG=1 again")
    finally:
        watcher.close()
        notify.close()
    print(f"\nhanging read (stall_timeout {STALL}s): /healthz 503 after {unhealthy_after:.2f}s ({health[1]}), "
          f"placeholder after {placeholder_after:.2f}s, slowest other request {slowest * 1000:.0f} ms; "
          f"live again {recovered_after:.2f}s after the read returned; watchdog pings while hung: {starved}, "
          f"after: {fed_again}")  # fmt: skip
    assert unhealthy_after < float(STALL) + 2.0
    assert placeholder_after < float(STALL) + 3.0
    assert health == (503, "offline")
    assert slowest < 2.0
    assert starved == 0, "the watchdog is not fed while a read hangs"


def test_camera_lost_and_back_ten_times_a_staying_viewer_sees_it_every_time(
    faulty: Callable[..., tuple[Daemon, Path]],
) -> None:
    daemon, control = faulty("--source", "test", *SMALL)
    watcher = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth, timeout=60)
    outages: list[float] = []
    assert daemon.proc is not None
    try:
        index = watcher.wait_for(live, 10, what="a live frame")
        rss_before = rss_kb(daemon.proc.pid)
        for round_ in range(10):
            set_mode(control, "gone")
            index = watcher.wait_for(placeholder, 15, what=f"the placeholder (round {round_ + 1})", start=index)
            assert daemon.health()[0] == 503
            set_mode(control, "ok")
            back_at = time.monotonic()
            index = watcher.wait_for(live, 30, what=f"live frames again (round {round_ + 1})", start=index)
            outages.append(time.monotonic() - back_at)
            daemon.wait_healthy(10)
        assert watcher.response.status_code == 200 and not watcher.ended.is_set(), "the viewer stayed connected"
        # After the last return the stream is full-rate again.
        count = len(watcher.parts)
        time.sleep(2)
        rate = (len(watcher.parts) - count) / 2
        rss_after = rss_kb(daemon.proc.pid)
    finally:
        watcher.close()
    reconnects = status(daemon)["reconnects"]
    print(f"\n10 losses: live again {min(outages):.2f}-{max(outages):.2f}s after the camera came back "
          f"(mean {sum(outages) / len(outages):.2f}s); reconnects counted {reconnects}; "
          f"{len(watcher.parts)} parts to one viewer; {rate:.1f} fps at the end; "
          f"RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MB")  # fmt: skip
    assert reconnects == 10
    assert rss_after < rss_before * 1.25, "each reconnect must not keep memory"
    assert rate > 10


def test_snapshot_during_a_hang_is_the_last_live_frame_never_the_placeholder(
    faulty: Callable[..., tuple[Daemon, Path]],
) -> None:
    daemon, control = faulty("--source", "test", *SMALL)
    set_mode(control, "hang")
    while daemon.health()[0] != 503:
        time.sleep(0.05)
    response = daemon.get("/snapshot.jpg")
    set_mode(control, "ok")
    assert response.status_code == 200
    assert not is_placeholder(decode(response.content))
    assert requests.get(daemon.url("/healthz"), timeout=5).status_code in (200, 503)
