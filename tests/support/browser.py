"""A real browser: Debian's Chromium through Playwright, and pages that collect every error they meet."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tests.support import require_tool

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]  # fmt: skip
# Collects CSP violations the page reports (the init script runs outside the page's CSP).
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def watched_page(context: Any, *, failed_requests: bool = False) -> tuple[Any, list[str]]:
    """A new page and the list its console errors, page errors, 4xx/5xx answers and CSP violations go to.

    ``failed_requests`` also lists aborted requests (a download aborts its navigation, so not always).
    """
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    if failed_requests:
        page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    return page, problems


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright, closed on the way out."""
    executable = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else require_tool("chromium")
    from playwright.sync_api import sync_playwright  # here: 0.3 s that only the browser tests pay

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
