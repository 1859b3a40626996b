"""The stills writer on a real hub: which frames it takes, names, banner, atomic writes, disk trouble."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camd import stills as stills_module
from camd.hub import LIVE, OFFLINE, WARMING_UP, Hub
from camd.settings import Settings, load
from camd.stills import NoPicture, StillError, StillsWriter, next_slot
from camd.stills_index import TEMP_RE
from tests.support.recordings import moving_picture
from tests.support.streams import decode


def make_settings(tmp_path: Path, **values: str) -> Settings:
    flags = {"state_dir": str(tmp_path), "stills_interval": "1", "stills_min_free_mb": "0", **values}
    return load(flags, environ={})


@pytest.fixture
def hub() -> Hub:
    hub = Hub(80)
    hub.set_camera(state=LIVE, width=320, height=240, fps=30.0)
    return hub


def writer_for(tmp_path: Path, hub: Hub, **values: str) -> StillsWriter:
    writer = StillsWriter(make_settings(tmp_path, **values), hub)
    writer._prepare()
    return writer


def publish(hub: Hub, number: int = 5, timestamp: float | None = None) -> None:
    hub.publish(pixels=moving_picture(number, 320, 240), timestamp=timestamp)


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_saves_the_newest_live_frame_named_after_the_grid_point(tmp_path: Path, hub: Hub) -> None:
    writer = writer_for(tmp_path, hub, stills_banner="off")
    slot = next_slot(time.time(), 1) - 1
    publish(hub, 3)
    publish(hub, 9)
    still = writer.take(slot)
    expected = time.strftime("%Y-%m-%d/%Y%m%d-%H%M%S.jpg", time.localtime(slot))
    assert still.path == expected and still.time == slot
    image = decode((writer.root / still.path).read_bytes())
    assert image.shape == (240, 320, 3)
    assert float(np.abs(image.astype(int) - moving_picture(9, 320, 240).astype(int)).mean()) < 4
    assert writer.index.count() == 1 and writer.index.total_bytes == (writer.root / still.path).stat().st_size
    assert hub.counters.get("stills_saved") == 1


def test_banner_and_quality_change_the_picture(tmp_path: Path, hub: Hub) -> None:
    plain = writer_for(tmp_path / "a", hub, stills_banner="off", stills_quality="95")
    banner = writer_for(tmp_path / "b", hub, stills_banner="on", stills_quality="95")
    small = writer_for(tmp_path / "c", hub, stills_banner="off", stills_quality="10")
    publish(hub)
    images = {}
    for label, writer in (("plain", plain), ("banner", banner), ("small", small)):
        still = writer.take()
        images[label] = (writer.root / still.path).read_bytes()
    assert len(images["small"]) < len(images["plain"]) / 2
    with_banner, without = decode(images["banner"]), decode(images["plain"])
    assert float(with_banner[-12:].mean()) < float(without[-12:].mean()) - 20, "no dark banner at the bottom"
    assert float(np.abs(with_banner[:100].astype(int) - without[:100].astype(int)).mean()) < 3


@pytest.mark.parametrize("state", [WARMING_UP, OFFLINE, "starting"])
def test_no_still_unless_the_camera_is_live(tmp_path: Path, hub: Hub, state: str) -> None:
    writer = writer_for(tmp_path, hub)
    publish(hub)
    hub.set_camera(state=state)
    with pytest.raises(NoPicture, match="the camera is"):
        writer.take()
    assert files(writer.root) == []


def test_no_still_from_a_placeholder_or_before_any_frame(tmp_path: Path, hub: Hub) -> None:
    writer = writer_for(tmp_path, hub)
    with pytest.raises(NoPicture):
        writer.take()
    hub.publish(pixels=moving_picture(1, 320, 240), live=False)
    with pytest.raises(NoPicture):
        writer.take()
    assert files(writer.root) == []


def test_a_frozen_camera_gives_no_new_still(tmp_path: Path, hub: Hub) -> None:
    writer = writer_for(tmp_path, hub)
    publish(hub, timestamp=time.time() - 0.5)  # 15 frame intervals at 30 fps
    started = time.monotonic()
    with pytest.raises(NoPicture, match="no fresh frame"):
        writer.take()
    assert time.monotonic() - started < 5
    assert files(writer.root) == []


def test_a_grid_still_waits_for_a_frame_taken_at_or_after_the_grid_point(tmp_path: Path, hub: Hub) -> None:
    writer = writer_for(tmp_path, hub, stills_interval="4", stills_banner="off")
    slot = time.time()
    publish(hub, 1, timestamp=slot - 0.01)  # fresh, but from before the grid point
    later = threading.Timer(0.2, publish, args=(hub, 40))
    later.start()
    still = writer.take(slot)
    later.join()
    image = decode((writer.root / still.path).read_bytes()).astype(int)
    assert float(np.abs(image - moving_picture(40, 320, 240).astype(int)).mean()) < 4


def test_a_frame_that_does_not_decode_is_not_saved(tmp_path: Path, hub: Hub) -> None:
    writer = writer_for(tmp_path, hub)
    good = cv2.imencode(".jpg", moving_picture(1, 320, 240))[1].tobytes()
    broken = good[:600] + bytes(len(good) - 602) + b"\xff\xd9"  # the markers are there, the data is not
    hub.publish(jpeg=b"\xff\xd8" + os.urandom(4000) + b"\xff\xd9")
    with pytest.raises(NoPicture):
        writer.take()
    hub.publish(jpeg=broken)
    try:
        writer.take()
    except NoPicture:
        pass
    else:  # libjpeg may "decode" it as grey blocks: that is one flat colour, refused just the same
        pytest.fail("a broken JPEG was saved")
    assert files(writer.root) == []


def test_same_second_gets_suffixes(tmp_path: Path, hub: Hub) -> None:
    writer = writer_for(tmp_path, hub)
    slot = float(int(time.time()))
    publish(hub)
    names = [writer.take(slot).name for _ in range(4)]
    base = time.strftime("%Y%m%d-%H%M%S", time.localtime(slot))
    assert names == [f"{base}.jpg", f"{base}-1.jpg", f"{base}-2.jpg", f"{base}-3.jpg"]
    assert [s.name for s in writer.index.newest()] == names[::-1]


def test_next_slot_is_on_the_local_grid() -> None:
    now = time.time()
    for interval in (1, 5, 60, 300, 3600):
        slot = next_slot(now, interval)
        assert now < slot <= now + interval
        local = slot + time.localtime(slot).tm_gmtoff
        assert abs(local / interval - round(local / interval)) < 1e-6


def test_disk_full_while_writing_leaves_no_partial_file_and_recovers(
    tmp_path: Path, hub: Hub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(tmp_path, hub)
    publish(hub)
    real_write = os.write
    calls = []

    def full(fd: int, data: bytes) -> int:
        calls.append(fd)
        if len(calls) == 1:
            return real_write(fd, bytes(data)[:1000])  # part of it fits, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stills_module.os, "write", full)
    with caplog.at_level(logging.ERROR, "camd.stills"), pytest.raises(StillError, match="No space"):
        writer.take()
    assert "No space left on device" in caplog.text
    assert files(writer.root) == [], "a partial file or temp file was left"
    assert writer.status()["failures"] == 1 and writer.status()["last_error"]
    monkeypatch.setattr(stills_module.os, "write", real_write)
    still = writer.take()
    decode((writer.root / still.path).read_bytes())
    assert writer.status()["last_error"] == "" and hub.counters.get("stills_failed") == 1


def test_day_folder_replaced_by_a_file_fails_then_recovers(tmp_path: Path, hub: Hub) -> None:
    writer = writer_for(tmp_path, hub)
    publish(hub)
    first = writer.take()
    day = writer.root / first.day
    moved = tmp_path / "moved"
    day.rename(moved)
    day.write_bytes(b"in the way")  # even root cannot create files inside a regular file
    with pytest.raises(StillError):
        writer.take()
    day.unlink()
    second = writer.take()
    decode((writer.root / second.path).read_bytes())
    # The index noticed that the first still went away with the folder.
    assert [s.name for s in writer.index.newest()] == [second.name]
    assert not [p for p in writer.root.rglob("*") if TEMP_RE.fullmatch(p.name)]


def test_retention_runs_after_each_save(tmp_path: Path, hub: Hub) -> None:
    writer = writer_for(tmp_path, hub, stills_max_count="3")
    publish(hub)
    for _ in range(6):
        writer.take()
        assert writer.index.count() <= 3
    assert len(files(writer.root)) == 3
    assert hub.counters.get("stills_deleted") == 3


def test_stills_dir_under_a_file_is_an_error_not_a_crash(tmp_path: Path, hub: Hub) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    writer = StillsWriter(make_settings(tmp_path, stills_dir=str(blocker / "stills")), hub)
    writer._prepare()  # logs the error, does not raise
    publish(hub)
    with pytest.raises(StillError):
        writer.take()
    blocker.unlink()
    still = writer.take()
    decode((writer.root / still.path).read_bytes())


def test_new_settings_apply_to_the_running_writer(tmp_path: Path, hub: Hub) -> None:
    writer = StillsWriter(make_settings(tmp_path, stills_interval="1h", stills_banner="off"), hub)
    writer.start()
    try:
        publish(hub)
        for _ in range(5):
            writer.take()
        assert writer.index.count() == 5
        writer.update_settings(make_settings(tmp_path, stills_interval="2", stills_max_count="2", stills_quality="20"))
        assert writer.settings.stills_interval == 2 and writer.settings.stills_quality == 20
        wait = time.monotonic() + 10
        while writer.index.count() != 2 and time.monotonic() < wait:
            time.sleep(0.05)
        assert writer.index.count() == 2, "retention did not run with the new limits"
        assert len(files(writer.root)) == 2
        with pytest.raises(ValueError, match="restart"):
            writer.update_settings(make_settings(tmp_path, stills_dir=str(tmp_path / "elsewhere")))
    finally:
        writer.stop()
