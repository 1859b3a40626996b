"""The activity score, events, the activity log and the timelapse builder on synthetic input, without a daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.activity_scenes import SWITCH_AT, TIMELINE, frames, truth
from camd.activity import Detector, Event, Events, MaskError, Rect, Sample, parse_mask, small_grey
from camd.activity_log import ActivityLog, day_minutes, day_start
from camd.settings import SettingsError, load
from camd.stills_index import day_of
from camd.timelapse import build, signature

FPS = 5.03


def run(
    pictures: list[tuple[float, np.ndarray]], **options: object
) -> tuple[list[Event], list[tuple[float, Sample]], Detector]:
    detector = Detector(rate=FPS, **options)  # type: ignore[arg-type]
    events = Events(quiet=5.0)
    found: list[Event] = []
    samples = []
    for when, small in pictures:
        sample = detector.feed(small)
        samples.append((when, sample))
        _, ended = events.feed(when, sample)
        if ended is not None:
            found.append(ended)
    last = events.close()
    if last is not None:
        found.append(last)
    return found, samples, detector


@pytest.fixture(scope="module")
def scene_jpeg() -> list[tuple[float, np.ndarray]]:
    return [(when, small_grey(jpeg=jpeg)) for when, jpeg in frames(320, 240, FPS)]  # type: ignore[misc]


@pytest.fixture(scope="module")
def scene_raw() -> list[tuple[float, np.ndarray]]:
    pictures = []
    for when, jpeg in frames(320, 240, FPS):
        pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        pictures.append((when, small_grey(pixels=pixels)))
    return pictures  # type: ignore[return-value]


@pytest.mark.parametrize("source", ["scene_jpeg", "scene_raw"])
def test_every_true_event_is_found_within_a_second_and_nothing_else(
    source: str, request: pytest.FixtureRequest
) -> None:
    found, _, _ = run(request.getfixturevalue(source))
    assert len(found) == len(truth()), [(e.start, e.end) for e in found]
    for event, (start, end) in zip(found, truth(), strict=True):
        assert abs(event.start - start) <= 1.0 and event.end is not None and abs(event.end - end) <= 1.0
        assert start <= event.peak_time <= end and event.peak > 0


def test_static_ramp_flicker_and_the_light_switch_give_no_activity(scene_jpeg: list[tuple[float, np.ndarray]]) -> None:
    _, samples, detector = run(scene_jpeg)
    for part in TIMELINE:
        if part.moving:
            continue
        active = [when for when, sample in samples if part.start <= when < part.end and sample.active]
        assert not active, f"activity during {part.name}: {active}"
    # The lamp changes most of the picture at once: the detector learns the lit room instead of reporting it.
    switches = [when for when, sample in samples if sample.light_switch]
    assert detector.light_switches == 1 and len(switches) == 1 and abs(switches[0] - SWITCH_AT) < 0.5


def test_a_masked_region_is_ignored(scene_jpeg: list[tuple[float, np.ndarray]]) -> None:
    # The object moves between 10% and 70% of the width, through the middle band of the height.
    found, _, _ = run(scene_jpeg, mask=parse_mask("0,30,100,40"))
    assert found == []
    found, _, _ = run(scene_jpeg, mask=parse_mask("0,0,100,20; 0,80,100,20"))
    assert len(found) == len(truth())


def faint_object_scene(contrast: float, size: int = 40) -> list[tuple[float, np.ndarray]]:
    """A flat-ish noisy room in which a square ``contrast`` grey levels brighter moves from 4 s to 8 s."""
    rng = np.random.default_rng(5)
    base = cv2.resize(rng.integers(60, 160, (6, 8)).astype(np.uint8), (320, 240)).astype(np.float32)
    pictures = []
    for number in range(int(12 * FPS)):
        when = number / FPS
        image = base.copy()
        if 4.0 <= when < 8.0:
            x = int(20 + (when - 4.0) * 60)
            image[100 : 100 + size, x : x + size] += contrast
        image += rng.normal(0, 3.0, image.shape).astype(np.float32)
        jpeg = cv2.imencode(".jpg", np.clip(image, 0, 255).astype(np.uint8))[1].tobytes()
        pictures.append((when, small_grey(jpeg=jpeg)))
    return pictures  # type: ignore[return-value]


def test_sensitivity_decides_how_faint_a_change_counts() -> None:
    scene = faint_object_scene(contrast=10)
    assert len(run(scene, sensitivity=100)[0]) == 1
    assert run(scene, sensitivity=1)[0] == []


def test_a_change_smaller_than_min_area_is_not_activity() -> None:
    scene = faint_object_scene(contrast=60, size=16)  # 16x16 of 320x240: about 0.3% of the picture
    assert len(run(scene, min_area=0.1)[0]) == 1
    assert run(scene, min_area=2.0)[0] == []


def test_events_end_after_the_quiet_time_at_the_last_active_sample() -> None:
    events = Events(quiet=2.0)
    on, off = Sample(0.1, True), Sample(0.0, False)
    assert events.feed(10.0, on)[0] is not None
    events.feed(10.5, Sample(0.3, True))
    events.feed(11.0, on)
    assert events.feed(12.9, off) == (None, None)  # not yet quiet long enough
    started, ended = events.feed(13.1, off)
    assert started is None and ended is not None
    assert (ended.start, ended.end, ended.peak, ended.peak_time) == (10.0, 11.0, 0.3, 10.5)
    assert events.current is None


@pytest.mark.parametrize(
    ("text", "rects"),
    [
        ("", ()),
        ("0,0,25,40", (Rect(0, 0, 25, 40),)),
        (" 10, 10 , 5.5,5 ; 50,50,50,50 ;", (Rect(10, 10, 5.5, 5), Rect(50, 50, 50, 50))),
    ],
)
def test_masks_parse(text: str, rects: tuple[Rect, ...]) -> None:
    assert parse_mask(text) == rects


@pytest.mark.parametrize("text", ["0,0,25", "a,b,c,d", "60,0,50,10", "0,0,0,10", "-1,0,5,5"])
def test_bad_masks_are_refused_with_the_setting_named(text: str) -> None:
    with pytest.raises(MaskError):
        parse_mask(text)
    with pytest.raises(SettingsError, match="activity_mask"):
        load({"activity_mask": text}, environ={})


@pytest.mark.parametrize(
    ("name", "value"),
    [("activity_rate", "0"), ("activity_rate", "31"), ("activity_sensitivity", "0"), ("activity_min_area", "0"),
     ("activity_quiet", "0.1s"), ("timelapse_fps", "100")],
)  # fmt: skip
def test_settings_out_of_range_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}.*out of range"):
        load({name: value}, environ={})


def test_settings_defaults_and_environment() -> None:
    settings = load({}, environ={"CAMD_ACTIVITY_MIN_GAP": "2m", "CAMD_ACTIVITY_STILLS": "off"})
    assert (settings.activity, settings.activity_rate, settings.activity_sensitivity) == (True, 5.0, 50)
    assert settings.activity_min_gap == 120 and settings.activity_stills is False


# --- the log ---------------------------------------------------------------------------------


def test_the_log_reads_back_what_was_appended_and_survives_a_cut_line(tmp_path: Path) -> None:
    log = ActivityLog(tmp_path)
    now = time.time()
    day = day_of(now)
    log.append({"kind": "start", "start": now}, now)
    log.append({"kind": "minute", "minute": 60 * int(now // 60), "level": 0.25}, now)
    # A crash in the middle of a write leaves half a line; a new process appends after it.
    with log.path(day).open("ab") as handle:
        handle.write(b'{"kind":"end","start":')
    again = ActivityLog(tmp_path)
    again.append({"kind": "end", "start": now, "end": now + 3, "peak": 0.5, "peak_time": now + 1, "still": "x"}, now)
    stored = again.read(day)
    assert stored.events == [{"start": now, "end": now + 3, "peak": 0.5, "peak_time": now + 1, "still": "x"}]
    assert stored.minutes == {60 * int(now // 60): 0.25}


def test_the_log_prunes_days_before_the_given_one(tmp_path: Path) -> None:
    log = ActivityLog(tmp_path)
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        log.append({"kind": "minute", "minute": day_start(day), "level": 0.1}, day_start(day) + 60)
    assert log.days() == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert log.prune("2026-01-03") == ["2026-01-01", "2026-01-02"]
    assert log.days() == ["2026-01-03"]


def test_days_have_their_minutes() -> None:
    assert day_minutes("2026-11-29") in (1380, 1440, 1500)
    assert day_of(day_start("2026-11-29")) == "2026-11-29"


# --- timelapse --------------------------------------------------------------------------------


def test_a_timelapse_has_one_frame_per_still_and_its_signature_follows_the_stills(tmp_path: Path) -> None:
    from camd.stills_index import Still

    files = []
    for number, (_, jpeg) in enumerate(frames(320, 240, 1.0)):
        if number >= 7:
            break
        path = tmp_path / f"{number}.jpg"
        path.write_bytes(jpeg)
        files.append(path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "day.webm"
    assert build(out, [*files, tmp_path / "broken.jpg", tmp_path / "gone.jpg"], 10.0) == 7
    capture = cv2.VideoCapture(str(out))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == 7 and os.path.getsize(out) > 0
    stills = [Still("2026-01-01", "20260101-000000.jpg", 0.0, 10)]
    assert signature(stills, 10) != signature([*stills, Still("2026-01-01", "20260101-000500.jpg", 300.0, 10)], 10)
    assert signature(stills, 10) != signature(stills, 12)


# --- the monitor's bookkeeping ------------------------------------------------------------------


def test_the_monitor_shows_the_event_going_on_logs_its_end_and_a_new_process_reads_it(tmp_path: Path) -> None:
    from camd.activity_monitor import ActivityMonitor
    from camd.hub import Hub

    settings = load({"state_dir": str(tmp_path), "activity_quiet": "1s"}, environ={})
    hub = Hub(80)
    monitor = ActivityMonitor(settings, hub, ActivityLog(tmp_path / "activity"))
    now = time.time()
    day = day_of(now)
    monitor.observe(None, now, Sample(0.1, True))
    going = monitor.day(day, now)
    expected = {"start": round(now, 3), "end": None, "peak": 0.1, "peak_time": round(now, 3), "still": None}
    assert going["events"] == [expected]
    assert monitor.status(now + 30)["active"] and monitor.status(now + 30)["seconds_since_activity"] == 30.0
    minute = int((now - day_start(day)) // 60)
    assert len(going["levels"]) == minute + 1 and going["levels"][minute] == 0.1
    monitor.observe(None, now + 0.2, Sample(0.3, True))
    monitor.observe(None, now + 1.5, Sample(0.0, False))
    ended = monitor.day(day, now + 1.5)["events"]
    assert [(e["end"], e["peak"], e["peak_time"]) for e in ended] == [(round(now + 0.2, 3), 0.3, round(now + 0.2, 3))]
    assert hub.counters.get("activity_events") == 1 and monitor.last_active == now + 0.2
    status = monitor.status(now + 600.2)
    assert not status["active"] and status["seconds_since_activity"] == 600.0 and status["last_activity"] == now + 0.2
    monitor.stop()  # writes the minute so far

    again = ActivityMonitor(settings, Hub(80), ActivityLog(tmp_path / "activity"))
    again._restore()
    assert again.day(day, now + 2)["events"] == ended
    assert again.day(day, now + 2)["levels"][minute] == 0.3
    assert again.last_active == round(now + 0.2, 3)


def test_analysed_frames_leave_no_memory_behind_and_no_frame_between_events(tmp_path: Path) -> None:
    """Cycles of activity and quiet through the monitor: its Python memory stays flat, and once an event
    has ended no frame of it is held (before, its peak frame stayed until the next event: hours, at full size)."""
    import gc
    import tracemalloc
    import weakref

    from camd.activity_monitor import ActivityMonitor
    from camd.hub import LIVE, Hub

    settings = load({"state_dir": str(tmp_path), "activity_quiet": "1s", "activity_rate": "5"}, environ={})
    hub = Hub(80)
    hub.set_camera(state=LIVE, width=320, height=240, fps=5.0)
    monitor = ActivityMonitor(settings, hub, ActivityLog(tmp_path / "activity"))
    background = np.random.default_rng(3).integers(0, 256, (240, 320, 3), np.uint8)
    published: list[weakref.ref[np.ndarray]] = []
    start = time.time()
    count = 0

    def cycle() -> None:
        """Four seconds of a box moving across, then four quiet ones (the event ends after one)."""
        nonlocal count
        for step in range(40):
            pixels = background.copy()
            if step < 20:
                x = 20 + step * 12
                pixels[90:150, x : x + 40] = 255
            published.append(weakref.ref(pixels))
            hub.publish(pixels=pixels, timestamp=start + count * 0.2)
            count += 1
            monitor._step()

    tracemalloc.start()
    try:
        cycle()
        cycle()  # the detector's arrays, the log's file and the counters are in
        gc.collect()
        settled = tracemalloc.get_traced_memory()[0]
        for _ in range(8):
            cycle()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - settled
    finally:
        tracemalloc.stop()
    assert hub.counters.get("activity_events") == 10 and monitor.events.current is None
    assert grown < 64 * 1024, f"{grown} bytes more after 320 frames (one frame is {background.nbytes})"
    latest = hub.latest_live
    assert latest is not None
    alive = [ref for ref in published if ref() is not None]
    assert [ref() is latest.pixels() for ref in alive] == [True]  # only the hub's newest frame
