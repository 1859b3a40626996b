"""Per-viewer limits of the stream: max_clients, ?fps=N, and the snapshot's contract."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.streams import StreamWatcher, decode, read_parts


def test_viewers_beyond_max_clients_get_503_with_retry_after(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory("--source", "test", "--width", "320", "--height", "240", "--max-clients", "2", *FAST_WARMUP)
    viewers = [StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth) for _ in range(2)]
    try:
        assert [viewer.status for viewer in viewers] == [200, 200]
        for viewer in viewers:
            viewer.wait_for(lambda part: True, 10, "a frame")
        third = daemon.get("/stream.mjpg", stream=True)
        assert third.status_code == 503
        assert int(third.headers["Retry-After"]) > 0
        third.close()
        # Everything else still answers while the stream is full.
        assert daemon.get("/snapshot.jpg").status_code == 200
        viewers.pop().close()
        # The slot comes back once a viewer leaves.
        wait_until(lambda: daemon.get("/api/status").json()["viewers"] == 1, 10, what="the viewer to be gone")
        again = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)
        viewers.append(again)
        assert again.status == 200
        again.wait_for(lambda part: True, 10, "a frame for the new viewer")
    finally:
        for viewer in viewers:
            viewer.close()


def test_fps_parameter_lowers_the_rate_for_that_viewer(daemon: Daemon) -> None:
    fast = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)
    slow = StreamWatcher(daemon.url("/stream.mjpg?fps=5"), daemon.auth)
    try:
        slow.wait_for(lambda part: True, 10, "a first frame")
        start, begun = time.monotonic(), len(slow.parts)
        fast_begun = len(fast.parts)
        wait_until(lambda: time.monotonic() - start > 3, 5, what="3 seconds")
        slow_rate = (len(slow.parts) - begun) / (time.monotonic() - start)
        fast_rate = (len(fast.parts) - fast_begun) / (time.monotonic() - start)
    finally:
        fast.close()
        slow.close()
    assert 3 <= slow_rate <= 6.5, slow_rate
    assert fast_rate > 1.5 * slow_rate, (fast_rate, slow_rate)  # the test pattern runs at 30 fps
    # Fewer frames, never older ones: the slow viewer's frames are fresh when they arrive.
    stamps = [float(part.headers["x-timestamp"]) for part in slow.parts]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_bad_fps_is_400(daemon: Daemon) -> None:
    for fps in ("abc", "0", "-1", "nan", "inf", "-inf", "1e9", "1e-300", "0.001", "5fps", "0x10"):
        response = daemon.get(f"/stream.mjpg?fps={fps}", stream=True)
        response.close()
        assert response.status_code == 400, fps
        assert "Content-Type" in response.headers and "multipart" not in response.headers["Content-Type"]
    # A rejected request takes no viewer slot.
    assert daemon.get("/api/status").json()["viewers"] == 0


def test_snapshot_has_timestamp_and_decodes(daemon: Daemon) -> None:
    before = time.time()
    first = daemon.get("/snapshot.jpg")
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "image/jpeg"
    stamp = float(first.headers["X-Timestamp"])
    assert before - 5 < stamp <= time.time()
    assert decode(first.content).shape == (480, 640, 3)
    wait_until(lambda: float(daemon.get("/snapshot.jpg").headers["X-Timestamp"]) > stamp, 5, what="a newer one")
    download = daemon.get("/snapshot.jpg?download=1")
    assert download.headers["Content-Disposition"].startswith("attachment")


def test_stream_parts_have_length_timestamp_and_decode(daemon: Daemon) -> None:
    parts = read_parts(daemon.url("/stream.mjpg"), 10, auth=daemon.auth)
    assert len(parts) == 10
    stamps = [float(part.headers["x-timestamp"]) for part in parts]
    assert stamps == sorted(stamps) and len(set(stamps)) == 10
    assert abs(stamps[-1] - time.time()) < 5
    for part in parts:
        assert part.headers["content-type"] == "image/jpeg"
        assert int(part.headers["content-length"]) == len(part.body)
        assert decode(part.body).shape == (480, 640, 3)
