"""A UVC camera through OpenCV's real V4L2 backend, end to end, with the emulated camera in tests/fakecam.

The camera is ``tests/fakecam/libfakecam.so`` preloaded into camd only (through the
daemon's environment): it serves the JPEG files this test writes, byte for byte, can be
unplugged, replugged, hung or held busy, and logs every control the driver is told.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support import require_tool, wait_until
from tests.support.daemon import FAST_WARMUP, REPO, Daemon
from tests.support.notify import NotifySocket
from tests.support.recordings import moving_picture
from tests.support.streams import StreamWatcher, decode, is_placeholder

FAKECAM = REPO / "tests" / "fakecam"
LIBRARY = FAKECAM / "libfakecam.so"
FPS = 15
DARK = 12  # dark frames after every STREAMON, brightening like a webcam's auto exposure
# A warm-up that must see the dark frames through: 0.2 s (3 frames at 15 fps) and 3 frames are
# not enough; only the settle rule (brightness stable over 3 frames) gets past them.
FAKE_WARMUP = FAST_WARMUP


@pytest.fixture(scope="session")
def fakecam_library() -> Path:
    """The emulated camera, built when ./test.sh has not built it (or the source is newer)."""
    source = FAKECAM / "fakecam.c"
    if not LIBRARY.exists() or LIBRARY.stat().st_mtime < source.stat().st_mtime:
        compiler = require_tool("cc")
        subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(LIBRARY), str(source), "-ldl", "-lpthread"], check=True
        )
    return LIBRARY


class FakeCamera:
    """One emulated UVC camera: its frames, its state file and its driver log."""

    def __init__(
        self,
        folder: Path,
        library: Path,
        formats: str = "MJPG",
        sizes: tuple[tuple[int, int], ...] = ((640, 480),),
        **extra: str,
    ) -> None:
        self.folder = folder
        self.plug = 0
        self.frames: dict[tuple[int, int], list[bytes]] = {}
        for width, height in sizes:
            self.frames[(width, height)] = self._write_frames(width, height)
        self.env = {
            "LD_PRELOAD": str(library), "FAKECAM_DIR": str(folder), "FAKECAM_FORMATS": formats,
            "FAKECAM_SIZES": ",".join(f"{w}x{h}" for w, h in sizes), "FAKECAM_FPS": str(FPS),
            "FAKECAM_DARK": str(DARK), **extra,
        }  # fmt: skip
        self.set_state("plugged")

    def _write_frames(self, width: int, height: int) -> list[bytes]:
        folder = self.folder / f"{width}x{height}"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(7)
        for number in range(DARK):
            level = 4 + 6 * number  # each one brighter than the last: the picture has not settled
            noise = rng.integers(0, 12, (height, width, 3), dtype=np.uint8)
            self._write(folder / f"dark-{number:03d}", np.clip(noise.astype(np.int16) + level, 0, 255).astype(np.uint8))
        frames = []
        for number in range(8):
            frames.append(self._write(folder / f"frame-{number:03d}", moving_picture(number * 5, width, height)))
        return frames

    @staticmethod
    def _write(stem: Path, image: np.ndarray) -> bytes:
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        stem.with_suffix(".jpg").write_bytes(jpeg.tobytes())
        stem.with_suffix(".yuyv").write_bytes(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_YUYV).tobytes())
        return jpeg.tobytes()

    def set_state(self, word: str, *more: str) -> None:
        tmp = self.folder / "state.tmp"
        tmp.write_text(" ".join((word, str(self.plug), *more)) + "\n")
        os.replace(tmp, self.folder / "state")

    def unplug(self) -> None:
        self.set_state("unplugged")

    def wedge(self) -> None:
        """The stream running now stops sending; a new one works (a camera that a reopen revives)."""
        self.set_state("wedged", f"{time.time() * 1000:.0f}")

    def replug(self) -> None:
        self.plug += 1  # a new device instance: fds of the old one stay dead
        self.set_state("plugged")

    @property
    def log(self) -> list[str]:
        path = self.folder / "log"
        return path.read_text().splitlines() if path.exists() else []

    def streams_started(self) -> int:
        """STREAMONs the driver has been told so far: one per (re)open."""
        return sum(line.startswith("streamon ") for line in self.log)

    def controls_set(self) -> list[str]:
        return [line.removeprefix("s_ctrl ") for line in self.log if line.startswith("s_ctrl ")]

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Another program streams from the camera (it holds the driver's queue)."""
        with open(self.folder / "busy.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


@pytest.fixture
def fake_camera(tmp_path: Path, fakecam_library: Path) -> Callable[..., FakeCamera]:
    counter = iter(range(100))

    def make(**options: object) -> FakeCamera:
        return FakeCamera(tmp_path / f"camera{next(counter)}", fakecam_library, **options)  # type: ignore[arg-type]

    return make


def status(daemon: Daemon) -> dict[str, object]:
    return daemon.get("/api/status").json()  # type: ignore[no-any-return]


def camera_state(daemon: Daemon) -> dict[str, object]:
    return status(daemon)["camera"]  # type: ignore[return-value]


def brightness(jpeg: bytes) -> float:
    return float(decode(jpeg).mean())


def test_passthrough_serves_the_cameras_own_jpegs_at_the_size_it_has(
    daemon_factory: Callable[..., Daemon], fake_camera: Callable[..., FakeCamera]
) -> None:
    camera = fake_camera()
    # The default 1280x720 is asked for; this camera only has 640x480.
    daemon = daemon_factory("--source", "/dev/video0", *FAKE_WARMUP, env=camera.env)
    state = camera_state(daemon)
    assert (state["width"], state["height"]) == (640, 480)
    assert state["passthrough"] is True and state["pixel_format"] == "MJPG"
    assert re.search(r"/dev/video0 has no 1280x720; it gives 640x480", daemon.log), daemon.log
    assert "streamon 640x480 MJPG" in camera.log

    viewer = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)
    try:
        wait_until(lambda: len(viewer.parts) >= 20, 20, what="20 parts")
    finally:
        viewer.close()
    served = camera.frames[(640, 480)]
    assert [part for part in viewer.parts if part.body not in served] == [], "a part is not one of the camera's JPEGs"
    assert status(daemon)["jpeg_encodes"] == 0
    assert "[ WARN" not in daemon.log


def test_a_yuyv_camera_is_encoded_once_per_frame_for_all_viewers(
    daemon_factory: Callable[..., Daemon], fake_camera: Callable[..., FakeCamera]
) -> None:
    camera = fake_camera(formats="YUYV")
    daemon = daemon_factory("--source", "/dev/video0", "--width", "640", "--height", "480", *FAKE_WARMUP,
                            env=camera.env)  # fmt: skip
    assert camera_state(daemon)["passthrough"] is False
    before = status(daemon)
    viewers = [StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth) for _ in range(3)]
    try:
        wait_until(lambda: all(len(v.parts) >= 15 for v in viewers), 20, what="15 parts for each viewer")
    finally:
        for viewer in viewers:
            viewer.close()
    after = status(daemon)
    captured = int(after["frames_captured"]) - int(before["frames_captured"])  # type: ignore[call-overload]
    encodes = int(after["jpeg_encodes"]) - int(before["jpeg_encodes"])  # type: ignore[call-overload]
    # At most one encode per frame captured, shared by the three viewers (not one per viewer).
    assert 15 <= encodes <= captured + 1, (encodes, captured)
    assert "streamon 640x480 YUYV" in camera.log
    for viewer in viewers:
        assert min(brightness(part.body) for part in viewer.parts) > 90, "a dark warm-up frame was served"


def test_no_dark_warmup_frame_is_ever_served(
    daemon_factory: Callable[..., Daemon], fake_camera: Callable[..., FakeCamera]
) -> None:
    camera = fake_camera()
    daemon = daemon_factory("--source", "/dev/video0", *FAKE_WARMUP, env=camera.env, wait_healthy=False)
    viewer = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)  # watching from before the first frame
    try:
        daemon.wait_healthy(20)
        wait_until(lambda: sum(not is_placeholder(decode(p.body)) for p in viewer.parts) >= 10, 20, what="live parts")
    finally:
        viewer.close()
    live = [part.body for part in viewer.parts if not is_placeholder(decode(part.body))]
    assert live and all(body in camera.frames[(640, 480)] for body in live)
    snapshot = daemon.get("/snapshot.jpg")
    assert snapshot.content in camera.frames[(640, 480)]
    discarded = int(re.findall(r"warm-up discarded (\d+) frames", daemon.log)[0])
    assert discarded >= DARK - 1, daemon.log  # OpenCV itself drops the first frame after STREAMON


def test_unplug_shows_offline_and_replug_is_live_within_the_warmup_and_2_5_s(
    daemon_factory: Callable[..., Daemon], fake_camera: Callable[..., FakeCamera]
) -> None:
    camera = fake_camera()
    daemon = daemon_factory(
        "--source", "/dev/video0", "--width", "640", "--height", "480", "--stall-timeout", "2",
        "--power-line-frequency", "60", "--exposure", "100", "--brightness", "10", *FAKE_WARMUP, env=camera.env,
    )  # fmt: skip
    applied = ["power_line_frequency 2", "auto_exposure 1", "exposure_time_absolute 100", "brightness 10"]
    assert camera.controls_set() == applied
    viewer = StreamWatcher(daemon.url("/stream.mjpg"), daemon.auth)
    try:
        viewer.wait_for(lambda part: not is_placeholder(decode(part.body)), 10, "a live frame")
        camera.unplug()
        unplugged = len(viewer.parts)
        gone = viewer.wait_for(lambda part: is_placeholder(decode(part.body)), 15, "the offline picture", unplugged)
        wait_until(lambda: daemon.health() == (503, "offline"), 10, what="/healthz to say offline")
        assert re.search(r"camera lost", daemon.log)
        time.sleep(8)  # long enough for the backoff to reach an 8 s step
        camera.replug()
        back_at = time.monotonic()
        wait_until(lambda: daemon.health() == (200, "ok"), 20, what="/healthz to say ok again")
        replug_to_live = time.monotonic() - back_at
        viewer.wait_for(lambda part: not is_placeholder(decode(part.body)), 10, "live frames again", gone)
    finally:
        viewer.close()
    assert viewer.error is None  # the same connection all along
    warmups = [float(s) for s in re.findall(r"warm-up discarded \d+ frames in ([\d.]+)s", daemon.log)]
    sys.stderr.write(f"replug to live: {replug_to_live:.2f}s (warm-up {warmups[-1]:.2f}s)\n")
    assert replug_to_live <= warmups[-1] + 2.5, daemon.log
    assert camera.controls_set() == applied * 2, "the controls were not applied again after the reopen"


def test_a_hung_camera_gives_503_and_stops_the_watchdog(
    daemon_factory: Callable[..., Daemon], fake_camera: Callable[..., FakeCamera], notify: NotifySocket
) -> None:
    camera = fake_camera()
    # OpenCV waits this many seconds in select() for a frame (10 by default). The hung read holds the
    # camera until then, as on a real one: every reopen meanwhile finds it busy.
    env = {**camera.env, **notify.env(), "OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT": "2"}
    daemon = daemon_factory("--source", "/dev/video0", "--stall-timeout", "1", *FAKE_WARMUP, env=env)
    notify.wait_watchdogs(2, 10)
    camera.set_state("hang")
    wait_until(lambda: daemon.health()[0] == 503, 10, what="/healthz to turn 503")
    time.sleep(1.5)
    quiet_since = time.monotonic()
    time.sleep(3)
    assert notify.count("WATCHDOG", since=quiet_since) == 0, "the watchdog was fed while the camera hung"
    camera.set_state("plugged")  # the driver recovers: the watchdog is fed again
    daemon.wait_healthy(30)
    notify.wait_watchdogs(2, 10)


def test_a_camera_that_stops_sending_is_reopened_as_soon_as_camd_gives_up_on_it(
    daemon_factory: Callable[..., Daemon], fake_camera: Callable[..., FakeCamera]
) -> None:
    camera = fake_camera()
    # No OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT here: camd sets OpenCV's wait for a frame to its stall timeout
    # (2 s at least), so the read that hangs lets go of the camera about when camd reopens it.
    daemon = daemon_factory("--source", "/dev/video0", "--stall-timeout", "1", *FAKE_WARMUP, env=camera.env)
    streams = camera.streams_started()
    camera.wedge()
    wedged = time.monotonic()
    wait_until(lambda: daemon.health()[0] == 503, 10, what="camd to see that the camera stopped")
    daemon.wait_healthy(30)
    back = time.monotonic() - wedged
    assert camera.streams_started() > streams, "live again without a reopen?"
    # OpenCV's own 10 s wait held it busy past that: 17.0 s here, against 5.0 s.
    assert back < 9, f"live again {back:.1f} s after the camera stopped sending"


def test_a_camera_busy_in_another_program_is_named_in_the_log_and_status(
    daemon_factory: Callable[..., Daemon], fake_camera: Callable[..., FakeCamera]
) -> None:
    camera = fake_camera()
    with camera.hold():
        daemon = daemon_factory("--source", "/dev/video0", *FAKE_WARMUP, env=camera.env, wait_healthy=False)
        daemon.wait_for_log(r"/dev/video0 is busy: another program \(or a hung read\) holds it", 15)
        wait_until(lambda: "busy" in str(camera_state(daemon)["error"]), 10, what="the status error")
        assert daemon.health() == (503, "offline")
    daemon.wait_healthy(20)  # freed: the next reopen gets it


def test_auto_skips_the_metadata_node_and_picks_the_capture_node(
    daemon_factory: Callable[..., Daemon], fake_camera: Callable[..., FakeCamera]
) -> None:
    # A camera without focus, and whose power-line menu has no "auto" (as many UVC cameras).
    camera = fake_camera(FAKECAM_META="/dev/video0", FAKECAM_CAPTURE="/dev/video1",
                         FAKECAM_CONTROLS="brightness,power_line_frequency")  # fmt: skip
    daemon = daemon_factory("--source", "auto", "--focus", "50", "--power-line-frequency", "auto",
                            "--brightness", "-5", *FAKE_WARMUP, env=camera.env)  # fmt: skip
    assert "skipping /dev/video0: metadata only" in daemon.log
    assert "source auto: using /dev/video1" in daemon.log
    assert camera_state(daemon)["source"] == "/dev/video1"

    # Controls the camera lacks are one warning each, though auto's search and the capture both opened it.
    warnings = [line for line in daemon.lines if "WARNING camd.controls" in line]
    assert len(warnings) == 3, warnings
    assert any("autofocus: /dev/video1 has no such control" in line for line in warnings)
    assert any("focus: /dev/video1 has no such control" in line for line in warnings)
    assert any("power_line_frequency=auto: /dev/video1 allows 0, 1, 2" in line for line in warnings)
    assert camera.controls_set() == ["brightness -5", "brightness -5"]  # the others were never sent


# --- camd probe ------------------------------------------------------------------------------


def probe(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "camd", "probe", *args], cwd=cwd or REPO, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr, time.monotonic() - started


def test_probe_lists_devices_formats_sizes_and_controls(tmp_path: Path, fake_camera: Callable[..., FakeCamera]) -> None:
    camera = fake_camera(formats="MJPG,YUYV", sizes=((640, 480), (320, 240)))
    code, output, _ = probe("--source", "auto", *FAKE_WARMUP, env=camera.env, cwd=tmp_path)
    sys.stderr.write(output)
    assert code == 0, output
    assert re.search(r"/dev/video0: Fake UVC Camera \(uvcvideo.*\): video capture", output)
    assert re.search(r"/dev/video1: .*metadata only", output)
    assert re.search(r"MJPG .*640x480 \(15 fps\), 320x240 \(15 fps\)", output)
    assert re.search(r"YUYV ", output)
    assert "power_line_frequency (menu): menu 0=Disabled, 1=50 Hz, 2=60 Hz, default 1 (50 Hz), now 1 (50 Hz)" in output
    assert re.search(r"brightness \(int\): -64 to 64, default 0, now 0", output)
    assert re.search(r"exposure_time_absolute \(int\): 3 to 2047", output)
    assert "resolution:   640x480" in output
    assert "[ WARN" not in output
    assert list(tmp_path.iterdir()) == [camera.folder], "probe wrote a file without --output"
    picture = tmp_path / "probe.jpg"
    code, output, _ = probe("--source", "/dev/video0", *FAKE_WARMUP, "--output", str(picture), env=camera.env)
    assert code == 0, output
    assert picture.read_bytes() in camera.frames[(640, 480)]

    # A camera mounted on its side: turned pixels, so no passthrough.
    code, output, _ = probe("--source", "/dev/video0", "--rotate", "90", *FAKE_WARMUP, "--output", str(picture),
                            env=camera.env)  # fmt: skip
    assert code == 0, output
    assert "resolution:   480x640" in output and "passthrough" not in output
    assert decode(picture.read_bytes()).shape == (640, 480, 3)


def test_probe_without_a_camera_says_so_and_exits_1(tmp_path: Path) -> None:
    code, output, took = probe("--source", "auto", cwd=tmp_path, env={"LD_PRELOAD": ""})
    assert code == 1, output
    assert "no camera found" in output
    assert list(tmp_path.iterdir()) == []
    code, output, took = probe("--source", "/dev/video7", cwd=tmp_path)
    assert code == 1, output
    assert "/dev/video7" in output and took < 5
    assert "[ WARN" not in output
