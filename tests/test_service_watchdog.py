"""The watchdog's rule in one process: fresh live frames or a capture that makes progress; never a stuck one."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from camd.capture import Capture
from camd.hub import Hub
from camd.service import Notifier, Service, watchdog_interval, watchdog_verdict
from camd.settings import load
from camd.sources import Captured, SourceInfo
from tests.support import wait_until
from tests.support.recordings import moving_picture


class FaultySource:
    """A test source that can be told to hang inside read() or to fail every read at once."""

    description = "faulty"

    def __init__(self, hang: threading.Event, fail: threading.Event) -> None:
        self.hang, self.fail = hang, fail
        self.number = 0

    def open(self) -> SourceInfo:
        if self.fail.is_set():
            raise OSError("no such camera")
        return SourceInfo("faulty", 160, 120, 30.0, "BGR3", passthrough=False)

    def read(self) -> Captured | None:
        while self.hang.is_set():
            time.sleep(0.05)  # a driver that does not return
        if self.fail.is_set():
            return None
        time.sleep(1 / 30)
        self.number += 1
        return Captured(time.time(), pixels=moving_picture(self.number, 160, 120))

    def close(self) -> None:
        pass


class Pipeline:
    def __init__(self) -> None:
        self.settings = load(
            {"width": 160, "height": 120, "stall_timeout": 0.5, "warmup_delay": 0, "warmup_frames": 0,
             "warmup_max": 1},
            environ={}, config=None,
        )  # fmt: skip
        self.hang, self.fail = threading.Event(), threading.Event()
        self.hub = Hub(80)
        self.capture = Capture(self.settings, lambda: FaultySource(self.hang, self.fail), self.hub)

    def verdict(self) -> str | None:
        return watchdog_verdict(self.hub, self.capture, self.settings.stall_timeout)


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    parts = Pipeline()
    parts.capture.start()
    yield parts
    parts.hang.clear()
    parts.capture.stop()


def test_fed_while_live_frames_are_fresh(pipeline: Pipeline) -> None:
    wait_until(lambda: pipeline.hub.live_age() < 0.2, 10, what="live frames")
    assert pipeline.verdict() is None


def test_not_fed_while_a_read_hangs_even_though_placeholders_flow(pipeline: Pipeline) -> None:
    wait_until(lambda: pipeline.hub.live_age() < 0.2, 10, what="live frames")
    pipeline.hang.set()
    wait_until(lambda: pipeline.verdict() is not None, 10, what="the verdict to turn")
    wait_until(lambda: "hung" in (pipeline.verdict() or ""), 10, what="the hang to be named")
    placeholder = pipeline.hub.latest
    assert placeholder is not None
    wait_until(lambda: pipeline.hub.latest is not None and pipeline.hub.latest.seq > placeholder.seq, 5,
               what="placeholder frames to keep coming")  # fmt: skip
    assert pipeline.verdict() is not None  # placeholders do not count as fresh

    pipeline.hang.clear()  # the driver comes back: live frames again, fed again
    wait_until(lambda: pipeline.verdict() is None, 20, what="the watchdog to be fed again")


def test_fed_while_reopening_a_camera_that_fails_fast(pipeline: Pipeline) -> None:
    wait_until(lambda: pipeline.hub.live_age() < 0.2, 10, what="live frames")
    pipeline.fail.set()
    wait_until(lambda: pipeline.hub.camera.state == "offline", 10, what="offline")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # reopening with backoff is progress
        assert pipeline.verdict() is None
        time.sleep(0.1)


def test_not_fed_when_the_capture_thread_is_dead(pipeline: Pipeline) -> None:
    wait_until(lambda: pipeline.hub.live_age() < 0.2, 10, what="live frames")
    pipeline.capture._stop.set()  # the threads exit as if they had crashed
    wait_until(lambda: not pipeline.capture._worker.is_alive(), 10, what="the worker to end")  # type: ignore[union-attr]
    pipeline.capture._stop.clear()
    wait_until(lambda: pipeline.verdict() is not None, 10, what="the verdict to turn")
    assert "died" in (pipeline.verdict() or "")


def test_service_sends_nothing_without_a_watchdog_verdict_of_ok(pipeline: Pipeline) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(f"\0camd-test-{os.getpid()}")  # an abstract socket: "@name" in NOTIFY_SOCKET
    server.settimeout(5)
    notifier = Notifier({"NOTIFY_SOCKET": f"@camd-test-{os.getpid()}", "WATCHDOG_USEC": "400000"})
    service = Service(pipeline.hub, pipeline.capture, _Viewers(), pipeline.settings.stall_timeout, notifier)
    wait_until(lambda: pipeline.hub.live_age() < 0.2, 10, what="live frames")
    service.tick()
    assert b"WATCHDOG=1" in server.recv(4096).split(b"\n")
    pipeline.hang.set()
    wait_until(lambda: pipeline.verdict() is not None, 10, what="the verdict to turn")
    service.tick()
    server.settimeout(0.3)
    messages: list[bytes] = []
    try:
        while True:
            messages.append(server.recv(4096))
    except TimeoutError:
        pass
    assert not any(b"WATCHDOG=1" in message for message in messages)
    service.stop()
    server.close()


class _Viewers:
    viewers = 0


def test_notifier_is_a_no_op_without_notify_socket() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    assert notifier.watchdog_interval is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 2.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected
