"""Reading multipart (MJPEG) streams: a few parts at once, or every part in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import requests

from tests.support import wait_until


@dataclass
class Part:
    headers: dict[str, str]
    body: bytes


def read_parts(
    url: str,
    count: int,
    *,
    auth: tuple[str, str] | None,
    timeout: float = 15,
    stop: Callable[[Part], bool] | None = None,
) -> list[Part]:
    """Read ``count`` parts of a multipart/x-mixed-replace stream (or until ``stop`` says so)."""
    parts: list[Part] = []
    with requests.get(url, auth=auth, stream=True, timeout=timeout) as response:
        assert response.status_code == 200, response.text
        boundary = b"--" + response.headers["Content-Type"].split("boundary=")[1].encode()
        deadline = time.monotonic() + timeout
        while len(parts) < count and time.monotonic() < deadline:
            part = next_part(response.raw, boundary)
            if part is None:
                break
            parts.append(part)
            if stop is not None and stop(part):
                break
    return parts


def next_part(reader: Any, boundary: bytes) -> Part | None:
    """The next part after ``boundary`` (``--`` included) on a raw response, or None at the end."""
    while (line := reader.readline()) and line.strip() != boundary:
        pass
    if not line:
        return None
    headers: dict[str, str] = {}
    while (header := reader.readline().strip()) != b"":
        name, _, value = header.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return Part(headers, reader.read(int(headers["content-length"])))


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "part does not decode as JPEG"
    return image


def is_placeholder(image: np.ndarray) -> bool:
    """True for camd's 'no picture' frame: dark grey with text and a thin red bar at the bottom."""
    bar = image[-4:].reshape(-1, 3).mean(axis=0)
    rest = float(np.median(image[: image.shape[0] // 8]))
    return bool(bar[2] > 110 and bar[0] < 60 and bar[1] < 60 and rest < 45)


class StreamWatcher:
    """Reads a multipart stream in a background thread and keeps every part, until closed or the stream ends."""

    def __init__(self, url: str, auth: tuple[str, str] | None, timeout: float = 30) -> None:
        self.parts: list[Part] = []
        self.times: list[float] = []  # time.monotonic() when each part arrived
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._closing = threading.Event()
        self.response = requests.get(url, auth=auth, stream=True, timeout=(5, timeout))
        self.status = self.response.status_code
        self._thread = threading.Thread(target=self._run, daemon=True)
        if self.status == 200:
            self._thread.start()
        else:
            self.ended.set()

    def _run(self) -> None:
        try:
            boundary = b"--" + self.response.headers["Content-Type"].split("boundary=")[1].encode()
            while not self._closing.is_set():
                part = next_part(self.response.raw, boundary)
                if part is None:
                    return
                self.parts.append(part)
                self.times.append(time.monotonic())
        except Exception as exc:
            if not self._closing.is_set():
                self.error = exc
        finally:
            self.ended.set()

    def wait_for(self, condition: Callable[[Part], bool], timeout: float, what: str = "", start: int = 0) -> int:
        """The index of the first part from ``start`` on that meets ``condition``; fails after ``timeout``."""
        checked = start

        def found() -> int | None:
            nonlocal checked
            while checked < len(self.parts):
                if condition(self.parts[checked]):
                    return checked + 1  # truthy even for index 0
                checked += 1
            if self.ended.is_set():
                raise AssertionError(f"the stream ended ({self.error!r}) while waiting for {what}")
            return None

        return int(wait_until(found, timeout, what=what)) - 1  # type: ignore[call-overload]

    def close(self) -> None:
        self._closing.set()
        if self._thread.ident is not None:
            self._thread.join(5)  # parts keep coming (placeholders too), so the reader sees the flag
        self.response.close()
