"""The stills gallery in headless Chromium: thumbnails show, a still opens, keys move, a download arrives whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support import wait_until
from tests.support.browser import watched_page
from tests.support.daemon import FAST_WARMUP, Daemon

THUMBS_LOADED = """() => Array.from(document.querySelectorAll(".thumbs img")).map(
  (img) => img.complete ? img.naturalWidth : 0)"""


def test_gallery_thumbnails_viewer_and_download(
    daemon_factory: Callable[..., Daemon], browser: Any, tmp_path: Path
) -> None:
    daemon = daemon_factory(
        "--source", "test", "--width", "640", "--height", "480", *FAST_WARMUP,
        "--stills-interval", "1h", "--stills-max-age", "0", "--stills-min-free-mb", "0",
    )  # fmt: skip
    for _ in range(3):
        assert requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10).status_code == 201
    stills = daemon.get("/api/stills").json()["stills"]
    root = daemon.state_dir / "stills"

    context = browser.new_context(
        http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]}, accept_downloads=True
    )
    page, problems = watched_page(context)

    # The gallery: every thumbnail loads, as a small picture.
    assert page.goto(daemon.url("/stills/")).status == 200
    wait_until(lambda: (w := page.evaluate(THUMBS_LOADED)) and all(w), 15, what="thumbnails to load")
    assert page.evaluate(THUMBS_LOADED) == [320, 320, 320]
    assert page.locator("nav a", has_text="Stills").count() == 1

    # A click on the newest opens it; the arrow key goes to the next older one.
    page.locator(".thumbs a.thumb").first.click()
    page.wait_for_url(f"**/stills/{stills[0]['day']}/{stills[0]['name'][:-4]}")
    wait_until(lambda: page.evaluate("document.getElementById('still').naturalWidth") == 640, 10, what="the still")
    page.keyboard.press("ArrowRight")
    page.wait_for_url(f"**/stills/{stills[1]['day']}/{stills[1]['name'][:-4]}")

    # Download arrives whole.
    with page.expect_download() as info:
        page.locator("#download").click()
    download = info.value
    saved = tmp_path / "download.jpg"
    download.save_as(saved)
    assert download.suggested_filename == stills[1]["name"]
    assert saved.read_bytes() == (root / stills[1]["day"] / stills[1]["name"]).read_bytes()

    # "Take a still now" posts from the page (same origin) and the gallery shows the new one.
    page.goto(daemon.url("/stills/"))
    with page.expect_navigation():  # the page reloads once the still is saved
        page.locator("#take-still").click()
    wait_until(lambda: len(page.evaluate(THUMBS_LOADED)) == 4 and all(page.evaluate(THUMBS_LOADED)), 15,
               what="the new still in the gallery")  # fmt: skip
    assert daemon.get("/api/stills").json()["total"] == 4

    assert page.evaluate("window.__cspViolations") == []
    assert problems == []
    context.close()


def test_gallery_on_a_phone_sized_screen(daemon_factory: Callable[..., Daemon], browser: Any) -> None:
    daemon = daemon_factory(
        "--source", "test", "--width", "640", "--height", "480", *FAST_WARMUP,
        "--stills-interval", "1h", "--stills-min-free-mb", "0",
    )  # fmt: skip
    for _ in range(4):
        assert requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10).status_code == 201
    context = browser.new_context(
        http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]},
        viewport={"width": 360, "height": 740},
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    page.goto(daemon.url("/stills/"))
    wait_until(lambda: (w := page.evaluate(THUMBS_LOADED)) and all(w), 15, what="thumbnails to load")
    # Two thumbnails a row, nothing wider than the screen.
    boxes = [page.locator(".thumbs li").nth(i).bounding_box() for i in range(4)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[2]["y"] > boxes[0]["y"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    # Every control is reachable with the keyboard.
    page.keyboard.press("Tab")
    focused = {page.evaluate("document.activeElement.textContent.trim() || document.activeElement.tagName")}
    for _ in range(12):
        page.keyboard.press("Tab")
        focused.add(page.evaluate("document.activeElement.textContent.trim() || document.activeElement.tagName"))
    assert "Take a still now" in focused and "Download" in focused
    context.close()
