"""A real MJPEG client: ffmpeg reads the stream with its mpjpeg demuxer and writes the frames out."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from tests.support import require_tool
from tests.support.daemon import PASSWORD, USER, Daemon

FRAMES = 12


def _ffmpeg(ffmpeg: str, url: str, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-rw_timeout", "10000000", *extra,
        "-f", "mpjpeg", "-i", url, "-frames:v", str(FRAMES), "-c:v", "copy", "-f", "image2", str(output),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _frames(directory: Path) -> list[np.ndarray]:
    images = []
    for path in sorted(directory.glob("frame-*.jpg")):
        image = cv2.imread(str(path))
        assert image is not None, f"{path.name} does not decode"
        images.append(image)
    return images


def _assert_moving_picture(images: list[np.ndarray]) -> None:
    assert len(images) == FRAMES
    assert all(image.shape == (480, 640, 3) for image in images)
    # The test pattern moves: a client that got one frame over and over would fail here.
    assert np.abs(images[0].astype(int) - images[-1].astype(int)).mean() > 1


def test_ffmpeg_reads_frames_with_an_authorization_header(daemon: Daemon, tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    result = _ffmpeg(
        ffmpeg, daemon.url("/stream.mjpg"), tmp_path / "frame-%03d.jpg",
        "-headers", f"Authorization: Basic {token}\r\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    _assert_moving_picture(_frames(tmp_path))


def test_ffmpeg_reads_frames_with_credentials_in_the_url(daemon: Daemon, tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    url = f"http://{USER}:{quote(PASSWORD)}@127.0.0.1:{daemon.port}/stream.mjpg?fps=10"
    result = _ffmpeg(ffmpeg, url, tmp_path / "frame-%03d.jpg")
    assert result.returncode == 0, result.stderr
    _assert_moving_picture(_frames(tmp_path))


def test_ffmpeg_without_credentials_gets_401(daemon: Daemon, tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    result = _ffmpeg(ffmpeg, daemon.url("/stream.mjpg"), tmp_path / "frame-%03d.jpg")
    assert result.returncode != 0
    assert "401" in result.stderr, result.stderr
    assert not list(tmp_path.glob("frame-*.jpg"))

    token = base64.b64encode(f"{USER}:wrong password".encode()).decode()
    result = _ffmpeg(
        ffmpeg, daemon.url("/stream.mjpg"), tmp_path / "frame-%03d.jpg",
        "-headers", f"Authorization: Basic {token}\r\n",
    )  # fmt: skip
    assert result.returncode != 0
    assert "401" in result.stderr, result.stderr
    assert not list(tmp_path.glob("frame-*.jpg"))
