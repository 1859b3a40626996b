"""Activity in headless Chromium: the day view's strip and its click, marked event stills, the day's
timelapse playing, and the live page's "last activity" line."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from camd.stills_index import day_of
from tests.support import wait_until
from tests.support.browser import watched_page
from tests.support.daemon import Daemon
from tests.test_activity_daemon import QUIET, activity_recording, ended_events, source

STRIP_INK = """() => {
  const canvas = document.getElementById("activity-strip");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let ink = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) ink += 1;
  return ink;
}"""
VIDEO_STATE = """() => {
  const video = document.getElementById("timelapse-video");
  return {hidden: video.hidden, ready: video.readyState, width: video.videoWidth, duration: video.duration,
          time: video.currentTime, error: video.error && video.error.code};
}"""


def shoot(page: Any, name: str) -> None:
    """Screenshots for people to look at, when CAMD_SHOTS_DIR names a folder."""
    folder = os.environ.get("CAMD_SHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_strip_event_stills_timelapse_and_last_activity(
    daemon_factory: Callable[..., Daemon], browser: Any, tmp_path: Path
) -> None:
    recording = activity_recording(tmp_path / "activity.avi")
    daemon = daemon_factory(*source(recording), *QUIET, "--stills-max-age", "0", "--stills-min-free-mb", "0")
    for _ in range(2):
        assert requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10).status_code == 201
    events = wait_until(lambda: ended_events(daemon, 2), 40, what="two ended events")
    assert isinstance(events, list)
    event_stills = [event["still"] for event in events if event["still"]]
    assert event_stills

    for width, height in ((1280, 800), (390, 844)):
        check_pages(daemon, browser, (width, height), events, len(event_stills))


def check_pages(daemon: Daemon, browser: Any, size: tuple[int, int], events: list[Any], event_stills: int) -> None:
    """The day view and the live page at one window size."""
    width, height = size
    day = day_of(time.time())
    context = browser.new_context(
        http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]},
        viewport={"width": width, "height": height},
    )
    page, problems = watched_page(context)
    assert page.goto(daemon.url(f"/stills/?day={day}")).status == 200
    wait_until(lambda: page.evaluate("document.getElementById('activity').dataset.loaded") == "1", 15,
               what="the activity to load")  # fmt: skip
    assert page.evaluate(STRIP_INK) > 0, "the strip shows the day's activity"
    assert re.match(r"\d+ events? · click", page.locator("#activity-summary").inner_text())
    # Event stills in the day's grid carry a mark.
    marked = page.locator(".thumbs li.event-still")
    wait_until(lambda: marked.count() >= event_stills, 10, what="event stills marked")
    assert marked.first.locator(".event-badge").inner_text() == "event"

    # A click on the strip where the first event was shows the stills around it, the event still marked.
    box = page.locator("#activity-strip").bounding_box()
    assert box is not None
    start = time.mktime(time.strptime(day, "%Y-%m-%d"))
    fraction = (events[0]["peak_time"] - start) / 86400  # type: ignore[operator]
    page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)
    around = page.locator("#activity-around")
    wait_until(lambda: around.is_visible() and page.locator("#activity-around-list li").count() > 0, 10,
               what="the stills around the clicked time")  # fmt: skip
    assert page.locator("#activity-around-list li.event-still").count() >= 1
    assert "Stills around" in page.locator("#activity-around-title").inner_text()
    shoot(page, f"gallery-day-{width}x{height}")

    # "Play this day": the stills play at once, the VP8 video takes over and plays.
    page.locator("#timelapse-play").click()
    wait_until(lambda: page.evaluate("document.getElementById('timelapse').dataset.playing") == "webm", 60,
               what="the timelapse video")  # fmt: skip
    wait_until(lambda: (s := page.evaluate(VIDEO_STATE))["ready"] >= 2 and s["time"] > 0, 20,
               what="the video to play")  # fmt: skip
    state = page.evaluate(VIDEO_STATE)
    assert state["width"] == 320 and state["duration"] > 0 and state["error"] is None

    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    assert page.goto(daemon.url("/live")).status == 200
    line = page.locator("#last-activity")
    wait_until(line.is_visible, 10, what="the last-activity line")
    assert re.fullmatch(r"Activity now|Last activity (just now|\d+ min ago)", line.inner_text()), line.inner_text()
    # The line comes with the status the page polls anyway: no viewer makes camd read the day's log.
    assert not [url for url in fetched if "/api/activity" in url], fetched
    wait_until(lambda: int(page.evaluate("document.getElementById('picture').dataset.frames")) > 0, 10,
               what="the live picture")  # fmt: skip
    shoot(page, f"live-{width}x{height}")
    assert problems == [], problems
    context.close()
