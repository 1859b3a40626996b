"""Activity on a real daemon: /api/activity, event stills, metrics, restart survival, pruning, timelapses."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from camd.stills_index import day_of
from tests.support import require_tool, wait_until
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.streams import next_part

LOOP_SECONDS = 8.0
MOVING = (3.0, 5.0)  # seconds into each loop while the object moves
RECORDING_FPS = 10
QUIET = ("--activity-quiet", "1s", "--activity-min-gap", "0", "--stills-interval", "1h")
NO_RETENTION = ("--stills-max-age", "0", "--stills-min-free-mb", "0")


def activity_recording(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """An MJPEG .avi of a noisy, still room in which a textured object crosses during MOVING of each loop."""
    width, height = size
    rng = np.random.default_rng(1)
    room = cv2.resize(rng.integers(40, 200, (6, 8, 3)).astype(np.uint8), size).astype(np.float32)
    thing = cv2.resize(rng.integers(0, 255, (4, 4, 3)).astype(np.uint8), (height // 3, height // 3)).astype(np.float32)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), RECORDING_FPS, size)
    assert writer.isOpened()
    for number in range(int(LOOP_SECONDS * RECORDING_FPS)):
        when = number / RECORDING_FPS
        image = room.copy()
        if MOVING[0] <= when < MOVING[1]:
            x = int((when - MOVING[0]) / (MOVING[1] - MOVING[0]) * (width - thing.shape[1]))
            image[height // 3 : height // 3 + thing.shape[0], x : x + thing.shape[1]] = thing
        image += rng.normal(0, 3.0, image.shape).astype(np.float32)
        writer.write(np.clip(image, 0, 255).astype(np.uint8))
    writer.release()
    return path


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return activity_recording(tmp_path / "activity.avi")


def source(recording: Path) -> tuple[str, ...]:
    return ("--source", f"file:{recording}", *FAST_WARMUP)


def ended_events(daemon: Daemon, count: int = 1) -> list[dict[str, object]] | None:
    events = daemon.get("/api/activity").json()["events"]
    ended = [event for event in events if event["end"] is not None]
    return ended if len(ended) >= count else None


def test_events_levels_event_stills_and_metrics(daemon_factory: Callable[..., Daemon], recording: Path) -> None:
    daemon = daemon_factory(*source(recording), *QUIET, *NO_RETENTION)
    events = wait_until(lambda: ended_events(daemon, 2), 40, what="two ended events")
    assert isinstance(events, list)
    body = daemon.get("/api/activity").json()
    assert body["day"] == day_of(time.time())
    now = time.localtime()
    assert (
        len(body["levels"]) == now.tm_hour * 60 + now.tm_min + 1 or len(body["levels"]) == now.tm_hour * 60 + now.tm_min
    )
    assert max(body["levels"]) > 0 and all(0 <= level <= 1 for level in body["levels"])
    for event in events:
        # One event per pass of the object: about as long as it moves (2 s), peak inside it.
        assert 1.0 <= event["end"] - event["start"] <= 3.5, event  # type: ignore[operator]
        assert event["start"] <= event["peak_time"] <= event["end"]  # type: ignore[operator]
        assert 0 < event["peak"] <= 1  # type: ignore[operator]
        url = event["still"]
        assert isinstance(url, str) and re.fullmatch(r"/stills/\d{4}-\d{2}-\d{2}/\d{8}-\d{6}(-\d+)?\.jpg", url)
        still = daemon.get(url)
        assert still.status_code == 200 and still.headers["Content-Type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(still.content, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    # Successive events are a loop apart.
    assert abs(events[1]["start"] - events[0]["start"] - LOOP_SECONDS) < 1.5  # type: ignore[operator]
    listed = {s["url"] for s in daemon.get("/api/stills").json()["stills"]}
    assert {event["still"] for event in events} <= listed

    metrics = daemon.get("/metrics").text
    total = float(re.search(r"^camd_activity_events_total (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    assert total >= 2
    assert re.search(r"^camd_activity_level [0-9.e-]+$", metrics, re.M)
    assert daemon.get("/api/status").json()["activity"]["events"] >= 2

    assert daemon.get("/api/activity?day=2026-13-01").status_code == 400
    assert daemon.get("/api/activity?day=yesterday").status_code == 400
    assert daemon.get("/api/activity", auth=False).status_code == 401
    old = daemon.get("/api/activity?day=2001-01-01").json()
    assert old["events"] == [] and len(old["levels"]) == 1440 and not any(old["levels"])


def test_events_survive_a_restart_and_an_unfinished_one_is_closed(
    daemon_factory: Callable[..., Daemon], recording: Path
) -> None:
    daemon = daemon_factory(*source(recording), *QUIET, *NO_RETENTION)
    wait_until(lambda: ended_events(daemon, 1), 30, what="an ended event")
    # Stop in the middle of an event, then kill -9 in the middle of the next one: the log keeps both.
    wait_until(lambda: daemon.get("/api/status").json()["activity"]["active"], 20, what="an event going on")
    assert daemon.stop(signal.SIGTERM) == 0
    log_file = next((daemon.state_dir / "activity").glob("*.jsonl"))
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    starts = [line["start"] for line in lines if line["kind"] == "start"]
    ends = [line["start"] for line in lines if line["kind"] == "end"]
    assert starts and sorted(starts) == sorted(ends), "a clean stop ends the event going on"

    again = Daemon(daemon.state_dir, daemon.args)
    try:
        again.start()
        body = again.get("/api/activity").json()
        assert {round(e["start"], 3) for e in body["events"]} >= {round(s, 3) for s in starts}
        assert again.get("/api/status").json()["activity"]["last_activity"] >= max(starts)
        wait_until(lambda: again.get("/api/status").json()["activity"]["active"], 20, what="an event going on")
        assert again.proc is not None
        again.proc.kill()
        again.proc.wait()
    finally:
        if again.proc is not None and again.proc.poll() is None:
            again.proc.kill()
    third = Daemon(daemon.state_dir, daemon.args)
    try:
        third.start()
        events = third.get("/api/activity").json()["events"]
        # The event the kill cut short is there, over, with its end unknown.
        assert any(e.get("interrupted") for e in events), events
        assert all(e["end"] is not None for e in events if e.get("interrupted"))
    finally:
        third.stop()


def test_event_stills_can_be_turned_off_and_keep_their_gap(
    daemon_factory: Callable[..., Daemon], recording: Path
) -> None:
    off = daemon_factory(*source(recording), *QUIET, *NO_RETENTION, "--no-activity-stills")
    events = wait_until(lambda: ended_events(off, 1), 30, what="an ended event")
    assert isinstance(events, list) and all(event["still"] is None for event in events)
    assert list((off.state_dir / "stills").rglob("*.jpg")) == []
    off.stop()

    gap = daemon_factory(*source(recording), *QUIET[:2], "--activity-min-gap", "1h", "--stills-interval", "1h",
                         *NO_RETENTION)  # fmt: skip
    events = wait_until(lambda: ended_events(gap, 3), 45, what="three ended events")
    assert isinstance(events, list)
    assert sum(1 for event in events if event["still"]) == 1
    assert len(list((gap.state_dir / "stills").rglob("*.jpg"))) == 1


def test_event_stills_and_logs_follow_retention(tmp_path: Path, recording: Path) -> None:
    state = tmp_path / "state"
    log_dir = state / "activity"
    log_dir.mkdir(parents=True)
    # An old day's log whose stills are gone is deleted with them; today's stays.
    old = log_dir / "2001-01-01.jsonl"
    old.write_text('{"kind":"minute","minute":978307200,"level":0.1}\n')
    daemon = Daemon(state, (*source(recording), *QUIET, "--stills-max-count", "2", "--stills-min-free-mb", "0",
                            "--stills-max-age", "0"))  # fmt: skip
    try:
        daemon.start()
        wait_until(lambda: ended_events(daemon, 4), 60, what="four ended events")
        # Four event stills were saved; retention kept the newest two, as it does with any still.
        assert daemon.get("/api/status").json()["activity"]["event_stills"] >= 4
        wait_until(lambda: len(list((state / "stills").rglob("*.jpg"))) == 2, 5, what="two stills left")
        wait_until(lambda: not old.exists(), 10, what="the old day's log to go")
        assert (log_dir / f"{day_of(time.time())}.jsonl").exists()
    finally:
        daemon.stop()


# --- timelapses ------------------------------------------------------------------------------


def plant_stills(root: Path, day: str, count: int, size: tuple[int, int]) -> list[Path]:
    folder = root / day
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for number in range(count):
        image = np.full((height, width, 3), 60, np.uint8)
        cv2.rectangle(image, (number * 8 % width, 20), (number * 8 % width + 40, 80), (0, 200, 255), -1)
        cv2.putText(image, str(number), (20, height - 20), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
        path = folder / f"{day.replace('-', '')}-{number // 60:02d}{number % 60:02d}00.jpg"
        path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
        paths.append(path)
    return paths


def frame_count(path: Path) -> int:
    ffprobe = require_tool("ffprobe")
    result = subprocess.run(
        [ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames,codec_name", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    stream = json.loads(result.stdout)["streams"][0]
    assert stream["codec_name"] == "vp8"
    return int(stream["nb_read_frames"])


def fetch_webm(daemon: Daemon, day: str, timeout: float = 60) -> requests.Response:
    def built() -> requests.Response | None:
        response = daemon.get(f"/stills/{day}.webm")
        if response.status_code == 202:
            assert response.headers["Retry-After"].isdigit()
            return None
        assert response.status_code == 200, response.text
        return response

    result = wait_until(built, timeout, interval=0.3, what="the timelapse")
    assert isinstance(result, requests.Response)
    return result


def test_timelapse_webm_and_mjpeg(tmp_path: Path) -> None:
    day = "2026-01-02"
    state = tmp_path / "planted"
    stills = plant_stills(state / "stills", day, 24, (640, 360))
    daemon = Daemon(state, ("--source", "test", "--width", "320", "--height", "240", *FAST_WARMUP,
                            "--stills-interval", "1h", *NO_RETENTION, "--no-activity"))  # fmt: skip
    try:
        daemon.start()
        first = daemon.get(f"/stills/{day}.webm")
        assert first.status_code == 202 and first.headers["Retry-After"] == "3"
        response = fetch_webm(daemon, day)
        assert response.headers["Content-Type"] == "video/webm"
        saved = tmp_path / "day.webm"
        saved.write_bytes(response.content)
        assert frame_count(saved) == len(stills)
        ranged = daemon.get(f"/stills/{day}.webm", headers={"Range": "bytes=10-109"})
        assert ranged.status_code == 206 and ranged.content == response.content[10:110]
        assert ranged.headers["Content-Range"] == f"bytes 10-109/{len(response.content)}"
        again = daemon.get(f"/stills/{day}.webm", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304

        started = time.monotonic()
        stream = daemon.get(f"/stills/{day}/timelapse.mjpg?fps=12")
        took = time.monotonic() - started
        assert stream.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=camdframe"
        reader = io.BytesIO(stream.content)
        parts = list(iter(lambda: next_part(reader, b"--camdframe"), None))
        assert [part.body for part in parts] == [path.read_bytes() for path in stills]
        assert 23 / 12 - 0.3 <= took <= 10, took  # paced at the asked rate, and it ends by itself
        # Slow playbacks, more than the front has workers: each waits between stills without one.
        playbacks = [
            requests.get(daemon.url(f"/stills/{day}/timelapse.mjpg?fps=0.5"), auth=daemon.auth, stream=True, timeout=10)
            for _ in range(12)
        ]
        try:
            assert [playback.status_code for playback in playbacks] == [200] * 12
            for playback in playbacks:
                assert next_part(playback.raw, b"--camdframe").body == stills[0].read_bytes()  # type: ignore[union-attr]
            asked = time.monotonic()
            assert daemon.get("/api/status").status_code == 200
            assert time.monotonic() - asked < 1.0, "twelve paused playbacks slowed the app down"
        finally:
            for playback in playbacks:
                playback.close()
        # What they cost together is bounded too: one at 60 stills a second leaves no room for another.
        fast = requests.get(daemon.url(f"/stills/{day}/timelapse.mjpg?fps=60"), auth=daemon.auth, stream=True,
                            timeout=10)  # fmt: skip
        try:
            assert fast.status_code == 200
            refused = daemon.get(f"/stills/{day}/timelapse.mjpg?fps=1")
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "10"
        finally:
            fast.close()
        wait_until(lambda: daemon.get(f"/stills/{day}/timelapse.mjpg?fps=60").status_code == 200, 10,
                   what="the fast playback's share back once it is closed")  # fmt: skip
        assert daemon.get(f"/stills/{day}/timelapse.mjpg?fps=0").status_code == 400
        assert daemon.get(f"/stills/{day}/timelapse.mjpg?fps=fast").status_code == 400
        assert daemon.get("/stills/2001-01-01.webm").status_code == 404
        assert daemon.get("/stills/2001-01-01/timelapse.mjpg").status_code == 404
        assert daemon.get(f"/stills/{day}.webm", auth=False).status_code == 401
        assert "activity" not in daemon.get("/api/status").json()
        assert daemon.get("/api/activity").status_code == 404

        # A new still of the day makes the cached timelapse stale: it is built again, with it.
        today = day_of(time.time())
        assert daemon.get(f"/stills/{today}.webm").status_code == 404
        for _ in range(2):
            assert requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10).status_code == 201
        saved.write_bytes(fetch_webm(daemon, today).content)
        assert frame_count(saved) == 2
        assert requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10).status_code == 201
        assert daemon.get(f"/stills/{today}.webm").status_code == 202
        saved.write_bytes(fetch_webm(daemon, today).content)
        assert frame_count(saved) == 3
        assert len(list((state / "timelapse").glob(f"{today}.*.webm"))) == 1
    finally:
        daemon.stop()
