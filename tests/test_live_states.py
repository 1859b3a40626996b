"""Pages in headless Chromium tell the truth: the live line follows the camera, buttons stay in view, phones swipe."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.faults import set_mode
from tests.support import wait_until
from tests.support.browser import watched_page
from tests.support.daemon import Daemon

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _status(page: Any) -> tuple[str, str]:
    line = page.locator("#status")
    return line.get_attribute("data-state") or "", line.inner_text()


def _in_view(page: Any, selector: str, viewport: dict[str, int]) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]


def test_live_line_follows_the_camera(faulty: Callable[..., tuple[Daemon, Path]], browser: Any) -> None:
    daemon, control = faulty("--source", "test", "--width", "640", "--height", "480")
    context = browser.new_context(
        viewport=DESKTOP, http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]}
    )
    page, problems = watched_page(context)
    page.goto(daemon.url("/live"))
    wait_until(lambda: _status(page)[0] == "live", 15, what="the line to say Live")
    assert re.fullmatch(r"Live( · \d+ fps)? · \d\d:\d\d:\d\d", _status(page)[1]), _status(page)
    assert _in_view(page, "#fullscreen", DESKTOP) and _in_view(page, "#picture", DESKTOP)

    set_mode(control, "gone")  # the camera is unplugged; the stream goes on with the placeholder
    wait_until(lambda: _status(page)[0] == "offline", 15, what="the line to say Offline")
    text = _status(page)[1]
    since = requests.get(daemon.url("/api/status"), auth=daemon.auth, timeout=10).json()["camera"]["since"]
    assert text.startswith("Offline since " + time.strftime("%H:%M", time.localtime(since))), text
    assert page.locator("#snapshot").get_attribute("aria-disabled") == "true"  # no snapshot of a lost camera

    set_mode(control, "ok")
    wait_until(lambda: _status(page)[0] == "live", 20, what="the line to say Live again")
    assert [problem for problem in problems if "/api/status" not in problem] == []
    context.close()


def test_live_buttons_and_landing_login_are_in_view_on_a_phone(daemon: Daemon, browser: Any) -> None:
    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True,
        http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]},
    )  # fmt: skip
    page, problems = watched_page(context)
    page.goto(daemon.url("/"))
    assert "The camera is live." in page.locator("#health").inner_text()
    assert _in_view(page, "text=Log in and watch live", PHONE)
    page.goto(daemon.url("/live"))
    wait_until(lambda: _status(page)[0] == "live", 15, what="the line to say Live")
    assert _in_view(page, "#fullscreen", PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    assert problems == []
    context.close()


def test_still_page_on_a_phone_swipes_and_hides_the_keyboard_hint(daemon: Daemon, browser: Any) -> None:
    for _ in range(2):
        response = requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=10)
        assert response.status_code == 201, response.text
        time.sleep(1.1)  # a different second, so the two stills have their own names
    stills = requests.get(daemon.url("/api/stills"), auth=daemon.auth, timeout=10).json()["stills"]
    newest, older = stills[0], stills[1]

    context = browser.new_context(
        viewport=PHONE, is_mobile=True, has_touch=True,
        http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]},
    )  # fmt: skip
    page, problems = watched_page(context)
    page.goto(daemon.url(newest["url"].removesuffix(".jpg")))
    assert not page.locator(".keys-hint").is_visible() and page.locator(".swipe-hint").is_visible()
    for kind, x in (("pointerdown", 300), ("pointerup", 80)):
        page.dispatch_event("#still", kind, {"pointerType": "touch", "clientX": x, "clientY": 300, "isPrimary": True})
    page.wait_for_url("**" + older["url"].removesuffix(".jpg"), timeout=10000)
    assert problems == []
    context.close()

    desktop = browser.new_context(
        viewport=DESKTOP, http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]}
    )
    page = desktop.new_page()
    page.goto(daemon.url(newest["url"].removesuffix(".jpg")))
    assert page.locator(".keys-hint").is_visible() and not page.locator(".swipe-hint").is_visible()
    assert _in_view(page, 'a[rel="next"]', DESKTOP)  # the picture leaves room for the buttons
    desktop.close()
