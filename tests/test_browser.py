"""A real browser: /live in headless Chromium draws a moving picture, without console errors or CSP reports."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from tests.support import wait_until
from tests.support.browser import watched_page
from tests.support.daemon import FAST_WARMUP, Daemon

# Mean of the canvas's pixels, and a digest of them: what the picture looks like right now.
CANVAS_LOOK = """() => {
  const canvas = document.getElementById("picture");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, hash = 0;
  for (let i = 0; i < data.length; i += 4) {
    sum += data[i] + data[i + 1] + data[i + 2];
    hash = (hash * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) >>> 0;
  }
  return { width: canvas.width, height: canvas.height, mean: sum / (3 * data.length / 4), hash,
           frames: Number(canvas.dataset.frames) };
}"""


def test_live_page_draws_a_moving_picture(daemon: Daemon, browser: Any) -> None:
    context = browser.new_context(http_credentials={"username": daemon.auth[0], "password": daemon.auth[1]})
    page, problems = watched_page(context, failed_requests=True)

    response = page.goto(daemon.url("/live"))
    assert response is not None and response.status == 200
    wait_until(lambda: page.evaluate(CANVAS_LOOK)["frames"] >= 3, 15, what="the page to draw frames")
    first = page.evaluate(CANVAS_LOOK)
    wait_until(lambda: page.evaluate(CANVAS_LOOK)["frames"] >= first["frames"] + 5, 15, what="more frames")
    second = page.evaluate(CANVAS_LOOK)

    # The canvas took the stream's size and shows a picture (not the blank canvas), which moves.
    assert (first["width"], first["height"]) == (640, 480)
    assert 30 < first["mean"] < 230
    assert first["hash"] != second["hash"], "the picture did not change"
    assert page.locator("#status").inner_text().startswith("Live")
    assert page.evaluate("window.__cspViolations") == []
    assert problems == []
    context.close()


def test_live_page_needs_credentials(daemon: Daemon, browser: Any) -> None:
    from playwright.sync_api import Error

    context = browser.new_context()  # no credentials to answer the 401 with
    page = context.new_page()
    try:
        response = page.goto(daemon.url("/live"))
    except Error as exc:
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)  # headless Chromium gives up on a 401
    else:
        assert response is not None and response.status == 401
    assert page.locator("#picture").count() == 0
    context.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_live_page_reconnects_by_itself_when_the_daemon_comes_back(
    daemon_factory: Callable[..., Daemon], browser: Any
) -> None:
    port = str(_free_port())
    args = ("--source", "test", "--width", "320", "--height", "240", "--port", port, *FAST_WARMUP)
    first = daemon_factory(*args)
    context = browser.new_context(http_credentials={"username": first.auth[0], "password": first.auth[1]})
    page = context.new_page()
    page.goto(first.url("/live"))
    wait_until(lambda: page.evaluate(CANVAS_LOOK)["frames"] >= 3, 15, what="the page to draw frames")
    assert first.stop() == 0

    # The stream dropped: the page says so, and keeps what it last drew.
    wait_until(lambda: page.locator("#status").inner_text().startswith("Reconnecting"), 15, what="'Reconnecting'")
    drawn = page.evaluate(CANVAS_LOOK)["frames"]

    second = daemon_factory(*args)  # the same port, as after a restart by systemd
    assert second.port == first.port
    wait_until(lambda: page.evaluate(CANVAS_LOOK)["frames"] >= drawn + 5, 20, what="frames from the new daemon")
    # "Live" once the new daemon's camera says so (its warm-up frames show as "Warming up").
    wait_until(lambda: page.locator("#status").inner_text().startswith("Live"), 5, what="'Live'")
    assert (page.evaluate(CANVAS_LOOK)["width"], page.evaluate(CANVAS_LOOK)["height"]) == (320, 240)
    context.close()
