"""/live's picture choice in Chromium: Data saver and Full are remembered; a switch never blanks or reconnects."""

from __future__ import annotations

from typing import Any

from tests.support import wait_until
from tests.support.browser import watched_page
from tests.support.daemon import Daemon

SAVER = "?width=320&quality=low&fps=10"
PICTURE = "document.getElementById('picture')"


def _variant(page: Any) -> str:
    return str(page.evaluate(f"{PICTURE}.dataset.variant || ''"))


def _frames(page: Any) -> int:
    return int(page.evaluate(f"Number({PICTURE}.dataset.frames)"))


def test_a_manual_choice_switches_without_a_reconnect_and_is_remembered(daemon: Daemon, browser: Any) -> None:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]},
    )
    page, problems = watched_page(context)
    page.goto(daemon.url("/live"))
    wait_until(lambda: _variant(page) == "full" and _frames(page) >= 3, 15, what="Auto on the full picture")
    assert page.locator("[data-mode=auto]").get_attribute("aria-pressed") == "true"
    # Note every state the line shows and every canvas size from here on, in the page itself.
    page.evaluate(
        """() => {
          window.__seen = [];
          const canvas = document.getElementById("picture");
          const line = document.getElementById("status");
          setInterval(() => window.__seen.push(line.dataset.state + " " + canvas.width), 20);
        }"""
    )
    page.click("[data-mode=saver]")
    wait_until(lambda: _variant(page) == SAVER, 10, what="the Data saver stream")
    drawn = _frames(page)
    wait_until(lambda: _frames(page) >= drawn + 5, 10, what="frames of the Data saver stream")
    assert page.evaluate(f"{PICTURE}.width") == 320
    seen = page.evaluate("window.__seen")
    assert {entry.split()[0] for entry in seen} == {"live"}, seen  # no Reconnecting, no Connecting
    assert {entry.split()[1] for entry in seen} == {"640", "320"}  # straight from one picture to the other
    assert page.locator("#meter").inner_text().startswith("320\u00d7240 · ")  # size, fps, Mbit/s

    page.reload()
    wait_until(lambda: _variant(page) == SAVER and _frames(page) >= 3, 15, what="Data saver again after a reload")
    assert page.locator("[data-mode=saver]").get_attribute("aria-pressed") == "true"
    page.click("[data-mode=full]")
    wait_until(lambda: _variant(page) == "full" and page.evaluate(f"{PICTURE}.width") == 640, 10, what="Full")
    assert page.evaluate("localStorage.getItem('camd.live.mode')") == "full"
    assert page.evaluate("window.__cspViolations") == []
    assert problems == []
    context.close()
