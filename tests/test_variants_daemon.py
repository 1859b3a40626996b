"""Variants in the running daemon: 50 viewers over 3 variants, encodes bounded, full size the camera's own bytes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import requests

from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.recordings import make_recording
from tests.support.streams import next_part
from tests.test_passthrough import avi_packets

FPS = 30
# (query, viewers): 50 in all, over the full size and two smaller variants
SPREAD = (("", 20), ("?width=320", 15), ("?width=480&quality=low", 15))


@dataclass
class Viewer:
    """One stream viewer in a thread: counts its parts, keeps the widths it saw and any part not in ``known``."""

    url: str
    auth: tuple[str, str]
    known: set[bytes] | None  # for a full-size viewer: the recording's JPEG packets
    parts: int = 0
    widths: set[int] = field(default_factory=set)
    strangers: int = 0
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> Viewer:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            with requests.get(self.url, auth=self.auth, stream=True, timeout=(5, 20)) as response:
                assert response.status_code == 200, response.status_code
                boundary = b"--" + response.headers["Content-Type"].split("boundary=")[1].encode()
                while not self.stop.is_set():
                    part = next_part(response.raw, boundary)
                    if part is None:
                        return
                    self.parts += 1
                    if self.known is not None:
                        self.strangers += part.body not in self.known
                    if self.parts % 10 == 1:  # a sample is enough: decoding every part would be the test's CPU
                        image = cv2.imdecode(np.frombuffer(part.body, np.uint8), cv2.IMREAD_COLOR)
                        self.widths.add(-1 if image is None else int(image.shape[1]))
        except BaseException as exc:  # reported by the test
            if not self.stop.is_set():
                self.error = exc


def test_fifty_viewers_over_three_variants(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    recording = make_recording(tmp_path / "clip.avi", frames=90, fps=FPS, size=(640, 360))
    known = set(avi_packets(recording))
    daemon = daemon_factory("--source", f"file:{recording}", "--max-clients", "64", *FAST_WARMUP)
    assert daemon.get("/api/status").json()["camera"]["passthrough"] is True
    viewers = [
        Viewer(daemon.url("/stream.mjpg" + query), daemon.auth, known if not query else None).start()
        for query, count in SPREAD
        for _ in range(count)
    ]
    try:
        expected = {("full", 80): 20, ("320", 80): 15, ("480", 30): 15}

        def watched() -> bool:
            served = daemon.get("/api/status").json()["variants"]["served"]
            return {(row["width"], row["quality"]): row["viewers"] for row in served if row["viewers"]} == expected

        wait_until(watched, 20, what="50 viewers over 3 variants")
        before = daemon.get("/api/status").json()
        started = time.monotonic()
        time.sleep(5)
        after = daemon.get("/api/status").json()
        elapsed = time.monotonic() - started
        metrics = daemon.get("/metrics").text
    finally:
        for viewer in viewers:
            viewer.stop.set()
        for viewer in viewers:
            assert viewer.thread is not None
            viewer.thread.join(10)
    assert [viewer.error for viewer in viewers if viewer.error] == []
    encodes_per_s = (after["jpeg_encodes"] - before["jpeg_encodes"]) / elapsed
    source_fps = after["capture_fps"]
    print(f"\n50 viewers over 3 variants: {encodes_per_s:.1f} encodes/s at {source_fps:.1f} fps from the source")
    assert source_fps > 10
    assert encodes_per_s <= 3 * source_fps, (encodes_per_s, source_fps)
    full, small, low = viewers[:20], viewers[20:35], viewers[35:]
    assert all(viewer.parts > 30 for viewer in viewers), sorted(viewer.parts for viewer in viewers)
    assert sum(viewer.strangers for viewer in full) == 0, "a full-size part is not one of the camera's JPEGs"
    assert {width for viewer in full for width in viewer.widths} == {640}
    assert {width for viewer in small for width in viewer.widths} == {320}
    assert {width for viewer in low for width in viewer.widths} == {480}
    served = {(row["width"], row["quality"]): row for row in after["variants"]["served"]}
    assert served[("full", 80)]["encodes"] == 0  # the camera's own bytes
    assert served[("320", 80)]["frames_sent"] > 0 and served[("480", 30)]["bytes_sent"] > 0
    assert 'camd_variant_viewers{quality="80",width="320"} 15.0' in metrics
    assert 'camd_variant_stream_bytes_sent_total{quality="30",width="480"}' in metrics
    # Once they are gone nobody watches a variant, and nothing more is made.
    wait_until(lambda: daemon.get("/api/status").json()["viewers"] == 0, 10, what="the viewers to be gone")
    gone = daemon.get("/api/status").json()
    assert all(row["viewers"] == 0 for row in gone["variants"]["served"])
    time.sleep(1)
    assert daemon.get("/api/status").json()["jpeg_encodes"] == gone["jpeg_encodes"]
