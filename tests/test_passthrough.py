"""JPEG passthrough: an MJPEG recording's own JPEG packets go to viewers byte for byte, never re-encoded."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import cv2

from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.recordings import make_recording
from tests.support.streams import read_parts


def avi_packets(path: Path) -> list[bytes]:
    """The JPEG of every video chunk (``##dc``) in an AVI's movi list, read from the file itself."""
    data = path.read_bytes()
    position = data.index(b"movi") + 4
    packets = []
    while position + 8 <= len(data):
        chunk, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        if chunk == b"LIST":
            position += 12  # descend into a nested list (rec or a following movi)
            continue
        if chunk == b"idx1":
            break
        if chunk[2:] == b"dc":
            packets.append(data[position + 8 : position + 8 + size])
        position += 8 + size + (size & 1)
    return packets


def opencv_packets(path: Path) -> list[bytes]:
    """The same packets as OpenCV's FFmpeg backend hands them out in raw mode."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert cap.set(cv2.CAP_PROP_FORMAT, -1)
    packets = []
    while True:
        ok, data = cap.read()
        if not ok:
            break
        packets.append(data.tobytes())
    cap.release()
    return packets


def _stream_and_count(daemon: Daemon, frames: int) -> tuple[list[bytes], int]:
    """``frames`` live parts from the stream, and how many JPEG encodes camd did meanwhile."""
    before = daemon.get("/api/status").json()["jpeg_encodes"]
    parts = read_parts(daemon.url("/stream.mjpg"), frames, auth=daemon.auth)
    after = daemon.get("/api/status").json()["jpeg_encodes"]
    assert len(parts) == frames
    return [part.body for part in parts], after - before


def test_stream_serves_the_recordings_jpeg_bytes(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    recording = make_recording(tmp_path / "clip.avi", frames=60, fps=30)
    packets = avi_packets(recording)
    assert len(packets) == 60 and all(p.startswith(b"\xff\xd8") for p in packets)
    assert packets == opencv_packets(recording)
    daemon = daemon_factory("--source", f"file:{recording}", *FAST_WARMUP)
    status = daemon.get("/api/status").json()
    assert status["camera"]["passthrough"] is True

    bodies, encodes = _stream_and_count(daemon, 45)
    known = set(packets)
    assert [i for i, body in enumerate(bodies) if body not in known] == [], "a part is not one of the packets"
    assert len(set(bodies)) >= 30, "the stream did not move through the recording"
    assert encodes == 0, f"camd encoded {encodes} JPEGs while it should pass the camera's bytes through"
    # A snapshot is the camera's JPEG too.
    assert daemon.get("/snapshot.jpg").content in known
    assert daemon.get("/api/status").json()["jpeg_encodes"] == status["jpeg_encodes"]


def test_passthrough_off_reencodes(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    recording = make_recording(tmp_path / "clip.avi", frames=60, fps=30)
    daemon = daemon_factory("--source", f"file:{recording}", "--passthrough", "off", *FAST_WARMUP)
    assert daemon.get("/api/status").json()["camera"]["passthrough"] is False

    bodies, encodes = _stream_and_count(daemon, 20)
    known = set(avi_packets(recording))
    assert not [body for body in bodies if body in known]
    assert encodes >= 15, encodes
