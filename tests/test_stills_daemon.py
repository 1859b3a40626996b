"""Stills end to end on a real daemon: the grid, never from warm-up or an offline camera, SIGUSR1 and
POST, HTTP semantics of the files, zips, retention, disk trouble and kill -9 at random moments."""

from __future__ import annotations

import io
import itertools
import random
import re
import shutil
import signal
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import requests

from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.recordings import make_recording
from tests.support.streams import decode, read_parts

NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})/(\d{8})-(\d{2})(\d{2})(\d{2})(-[1-9]\d*)?\.jpg")
TEST_SOURCE = ("--source", "test", "--width", "640", "--height", "480", *FAST_WARMUP)
NO_RETENTION = ("--stills-max-age", "0", "--stills-min-free-mb", "0")


def stills_of(daemon: Daemon) -> Path:
    return daemon.state_dir / "stills"


def jpgs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".camd-*")]


def plant(root: Path, day: str, names: list[str], source: bytes) -> None:
    folder = root / day
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(source)


def sample_jpeg() -> bytes:
    import cv2

    from tests.support.recordings import moving_picture

    return cv2.imencode(".jpg", moving_picture(3, 320, 240))[1].tobytes()


def test_stills_land_on_the_grid_with_layout_names_and_decode(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(*TEST_SOURCE, "--stills-interval", "2s", *NO_RETENTION)
    root = stills_of(daemon)
    wait_until(lambda: len(jpgs(root)) >= 3, 30, what="three stills")
    names = jpgs(root)
    seconds = []
    for name in names:
        match = NAME.fullmatch(name)
        assert match, f"{name} does not fit YYYY-MM-DD/YYYYMMDD-HHMMSS.jpg"
        assert match.group(4) == "".join(match.group(1, 2, 3))
        assert match.group(8) is None, "a scheduled still got a suffix"
        assert int(match.group(7)) % 2 == 0, f"{name} is not on the 2 s grid"
        seconds.append(time.mktime(time.strptime(name.split("/")[1][:15], "%Y%m%d-%H%M%S")))
        image = decode((root / name).read_bytes())
        assert image.shape == (480, 640, 3)
    assert all((b - a) % 2 == 0 and b > a for a, b in itertools.pairwise(seconds))
    status = daemon.get("/api/status").json()["stills"]
    assert status["count"] >= 3 and status["disk_bytes"] > 0 and status["failures"] == 0
    assert status["last"]["url"].startswith("/stills/")
    assert not temp_files(root)


def test_no_still_during_warm_up(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    recording = make_recording(tmp_path / "clip.avi", frames=60)
    daemon = daemon_factory(
        "--source", f"file:{recording}", "--warmup-delay", "6", "--warmup-frames", "3", "--warmup-max", "10",
        "--stills-interval", "1s", *NO_RETENTION, wait_healthy=False,
    )  # fmt: skip
    root = stills_of(daemon)
    daemon.wait_for_log(r"no still this time: the camera is warming up", 20)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and daemon.health()[1] == "warming_up":
        assert jpgs(root) == [], "a still was saved during warm-up"
        time.sleep(0.2)
    daemon.wait_healthy(30)
    live_since = daemon.get("/api/status").json()["camera"]["since"]
    wait_until(lambda: jpgs(root), 20, what="a still once live")
    for name in jpgs(root):
        taken = time.mktime(time.strptime(name.split("/")[1][:15], "%Y%m%d-%H%M%S"))
        assert taken >= int(live_since), f"{name} is older than the moment the camera went live"
        decode((root / name).read_bytes())


def test_no_still_while_the_source_is_offline(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(
        "--source", "rtsp://127.0.0.1:9/nothing-here", *FAST_WARMUP, "--stills-interval", "1s", wait_healthy=False
    )
    root = stills_of(daemon)
    daemon.wait_for_log(r"no still this time: the camera is (offline|warming up)", 30)
    assert daemon.get("/snapshot.jpg").status_code == 503
    daemon.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
    response = requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10)
    assert response.status_code == 503 and "camera" in response.json()["error"]
    time.sleep(2.5)  # a few grid points pass: none may produce a still
    assert jpgs(root) == []
    assert daemon.get("/api/status").json()["stills"]["count"] == 0


def test_sigusr1_and_post_take_one_now(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(*TEST_SOURCE, "--stills-interval", "1h", *NO_RETENTION)
    root = stills_of(daemon)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGUSR1)
    first = wait_until(lambda: jpgs(root), 15, what="a still after SIGUSR1")
    decode((root / first[0]).read_bytes())  # type: ignore[index]

    response = requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10)
    assert response.status_code == 201, response.text
    body = response.json()
    assert NAME.fullmatch(f"{body['day']}/{body['name']}")
    assert body["url"] == f"/stills/{body['day']}/{body['name']}" and response.headers["Location"] == body["url"]
    got = daemon.get(body["url"])
    assert got.status_code == 200 and decode(got.content).shape == (480, 640, 3)
    assert len(jpgs(root)) == 2

    # Same-origin browser requests work; cross-site ones are refused; no credentials, no still.
    host = f"127.0.0.1:{daemon.port}"
    for headers, expected in [
        ({"Sec-Fetch-Site": "same-origin"}, 201),
        ({"Sec-Fetch-Site": "none"}, 201),
        ({"Origin": f"http://{host}"}, 201),
        ({"Referer": f"http://{host}/stills/"}, 201),
        ({"Sec-Fetch-Site": "cross-site", "Origin": f"http://{host}"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": f"http://{host}.evil.example"}, 403),
        ({"Referer": "http://evil.example/page"}, 403),
    ]:
        response = requests.post(daemon.url("/api/stills"), auth=daemon.auth, headers=headers, timeout=10)
        assert response.status_code == expected, (headers, response.status_code, response.text)
    assert requests.post(daemon.url("/api/stills"), timeout=10).status_code == 401
    assert len(jpgs(root)) == 6


def test_file_http_semantics(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(*TEST_SOURCE, "--stills-interval", "1h", *NO_RETENTION)
    for _ in range(3):
        assert requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10).status_code == 201
    listing = daemon.get("/api/stills").json()
    assert listing["total"] == 3 and len(listing["stills"]) == 3
    item = listing["stills"][0]
    assert set(item) >= {"name", "url", "time", "size", "day"}
    assert [s["time"] for s in listing["stills"]] == sorted((s["time"] for s in listing["stills"]), reverse=True)
    page2 = daemon.get("/api/stills?per_page=2&page=2").json()
    assert page2["pages"] == 2 and [s["name"] for s in page2["stills"]] == [listing["stills"][2]["name"]]
    assert daemon.get("/api/stills?page=0").status_code == 400
    assert daemon.get("/api/stills", auth=False).status_code == 401

    url, data = item["url"], (stills_of(daemon) / item["day"] / item["name"]).read_bytes()
    response = daemon.get(url)
    assert response.status_code == 200 and response.content == data and item["size"] == len(data)
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Disposition" not in response.headers
    etag = response.headers["ETag"]
    again = daemon.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    head = requests.head(daemon.url(url), auth=daemon.auth, timeout=10)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) == len(data)
    ranged = daemon.get(url, headers={"Range": "bytes=10-109"})
    assert ranged.status_code == 206 and ranged.content == data[10:110]
    assert ranged.headers["Content-Range"] == f"bytes 10-109/{len(data)}"
    assert daemon.get(url, headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
    download = daemon.get(url + "?download=1")
    assert download.content == data
    assert download.headers["Content-Disposition"] == f'attachment; filename="{item["name"]}"'
    assert daemon.get(url, auth=False).status_code == 401

    thumb = daemon.get(url + "?thumb=1")
    assert thumb.status_code == 200 and thumb.headers["Cache-Control"].endswith("immutable")
    small = decode(thumb.content)
    assert small.shape[1] == 320 and len(thumb.content) < len(data)
    assert daemon.get(url + "?thumb=1", headers={"If-None-Match": thumb.headers["ETag"]}).status_code == 304

    page = daemon.get("/stills/")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    for entry in listing["stills"]:
        assert entry["url"] + "?thumb=1" in page.text
    view = daemon.get(f"/stills/{item['day']}/{item['name'][:-4]}")
    assert view.status_code == 200 and url in view.text


def test_zip_of_a_day_has_exactly_its_stills(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    # Another day's stills and a stranger's files sit in the folder before camd starts.
    state = tmp_path / "state0"
    root = state / "stills"
    other = ["20250102-030405.jpg", "20250102-030405-1.jpg", "20250102-235959.jpg"]
    plant(root, "2025-01-02", [*other, "holiday.jpg"], sample_jpeg())
    daemon = Daemon(state, (*TEST_SOURCE, "--stills-interval", "1h", *NO_RETENTION))
    state.mkdir(exist_ok=True)
    try:
        daemon.start()
        for _ in range(3):
            assert requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10).status_code == 201
        (root / time.strftime("%Y-%m-%d") / "notes.txt").write_text("mine")
        today = time.strftime("%Y-%m-%d")
        expected = sorted(p.name for p in (root / today).glob("*.jpg"))
        assert len(expected) == 3
        for day, names in ((today, expected), ("2025-01-02", sorted(other))):
            response = daemon.get(f"/stills/{day}.zip")
            assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
            assert f"stills-{day}.zip" in response.headers["Content-Disposition"]
            with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
                assert archive.testzip() is None
                assert sorted(archive.namelist()) == names
                for info in archive.infolist():
                    assert info.compress_type == zipfile.ZIP_STORED
                    data = archive.read(info)
                    assert data == (root / day / info.filename).read_bytes()
                    decode(data)
        assert daemon.get("/stills/2024-01-01.zip").status_code == 404
    finally:
        daemon.stop()


def test_retention_at_start_and_after_each_save(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    state = tmp_path / "state0"
    root = state / "stills"
    old_day = time.strftime("%Y-%m-%d", time.localtime(time.time() - 30 * 86400))
    old_names = [time.strftime("%Y%m%d-%H%M%S.jpg", time.localtime(time.time() - 30 * 86400 + n)) for n in range(5)]
    plant(root, old_day, old_names, sample_jpeg())
    foreign = [root / old_day / "keep-me.jpg", root / "README.txt", root / "2020-01-01" / "20200101-000000.jpg.orig"]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not camd's")
    state.mkdir(exist_ok=True)
    daemon = Daemon(
        state, (*TEST_SOURCE, "--stills-interval", "1s", "--stills-max-age", "7d", "--stills-max-count", "3")
    )
    try:
        daemon.start()
        wait_until(lambda: not any((root / old_day / n).exists() for n in old_names), 15, what="old stills deleted")
        wait_until(lambda: daemon.get("/api/status").json()["stills"]["saved"] >= 5, 30, what="five saves")
        wait_until(lambda: len(jpgs(root)) == 4, 10, what="three stills plus the stranger's")
        assert daemon.get("/api/stills").json()["total"] == 3
        for path in foreign:
            assert path.exists(), f"{path} was deleted"
        status = daemon.get("/api/status").json()["stills"]
        assert status["deleted"] >= 7 and status["count"] == 3
    finally:
        daemon.stop()


def test_disk_trouble_logs_keeps_streaming_and_recovers(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(*TEST_SOURCE, "--stills-interval", "1s", *NO_RETENTION)
    root = stills_of(daemon)
    wait_until(lambda: jpgs(root), 20, what="a first still")
    day = root / time.strftime("%Y-%m-%d")
    shutil.rmtree(day)
    day.write_bytes(b"a file where the day folder should be")  # saving now fails, even as root
    daemon.wait_for_log(r"ERROR camd\.stills: cannot save a still", 15)
    parts = read_parts(daemon.url("/stream.mjpg"), 5, auth=daemon.auth)
    assert len(parts) == 5
    assert daemon.health() == (200, "ok")
    status = daemon.get("/api/status").json()["stills"]
    assert status["failures"] >= 1 and status["last_error"]
    failed_at = len(daemon.lines)
    day.unlink()
    wait_until(lambda: day.is_dir() and any(day.glob("*.jpg")), 15, what="a still once the folder is back")
    assert "stills are being saved again" in "".join(daemon.lines[failed_at:])
    for name in jpgs(root):
        decode((root / name).read_bytes())
    assert not temp_files(root)


def test_kill_9_at_random_moments_never_leaves_a_partial_still(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    root = state / "stills"
    # A leftover from an earlier crash, to be cleaned at start.
    plant(root, time.strftime("%Y-%m-%d"), [".camd-0123456789abcdef.tmp"], b"\xff\xd8 half a picture")
    args = (*TEST_SOURCE, "--stills-interval", "1s", "--stills-quality", "100", *NO_RETENTION)
    rng = random.Random(20261121)
    started = time.monotonic()
    cycles = caught_mid_save = 0
    while cycles < 16 and time.monotonic() - started < 150:
        daemon = Daemon(state, args)
        daemon.start(wait_healthy=False)
        assert not temp_files(root), f"temp files survived a restart: {temp_files(root)}"
        stop = threading.Event()

        def hammer(daemon: Daemon = daemon, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=2)
                except requests.RequestException:
                    return

        daemon.wait_healthy(30)
        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        time.sleep(rng.uniform(0.05, 1.5))
        assert daemon.proc is not None
        daemon.proc.kill()
        daemon.proc.wait(10)
        stop.set()
        thread.join(5)
        cycles += 1
        caught_mid_save += bool(temp_files(root))
        for name in jpgs(root):
            decode((root / name).read_bytes())
    assert cycles >= 10
    print(f"{cycles} kills, {caught_mid_save} of them left a temp file (killed mid-save)")
    assert len(jpgs(root)) > cycles
    before = len(jpgs(root))
    final = Daemon(state, args).start()
    try:
        assert not temp_files(root)
        listing = final.get("/api/stills?per_page=1000").json()
        assert before <= listing["total"] <= len(jpgs(root))
    finally:
        final.stop()
