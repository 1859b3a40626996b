"""camd.service: sd_notify over a real AF_UNIX datagram socket, and when the watchdog is fed."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from camd.http import Fanout
from camd.hub import LIVE, OFFLINE, WARMING_UP, Hub
from camd.service import MAX_PING_EVERY, STATUS_EVERY, Notifier, Service, describe, watchdog_interval


class Systemd:
    """The notify socket systemd owns; reads what camd sends, one datagram a message."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        assert len(self.path.encode()) < 108, "sun_path is limited to 108 bytes"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def environ(self, watchdog_usec: int | None = None) -> dict[str, str]:
        environ = {"NOTIFY_SOCKET": self.path}
        if watchdog_usec is not None:
            environ["WATCHDOG_USEC"] = str(watchdog_usec)
        return environ

    def receive(self, timeout: float = 2.0) -> dict[str, str]:
        """The next message as its fields; fails the test after ``timeout``."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.partition("=")[::2] for line in data.split("\n"))

    def pending(self) -> list[dict[str, str]]:
        """Every message already sent and not yet read."""
        found = []
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(4096).decode()
                found.append(dict(line.partition("=")[::2] for line in data.split("\n")))
        except BlockingIOError:
            return found
        finally:
            self.sock.setblocking(True)


class CaptureReport:
    """What the capture side tells the watchdog: why it is stuck, or None while it makes progress."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def stuck(self) -> str | None:
        return self.reason


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    listener = Systemd(tmp_path / "notify")
    yield listener
    listener.sock.close()


@pytest.fixture
def capture() -> CaptureReport:
    return CaptureReport()


def service_of(hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd, **kwargs: float) -> Service:
    watchdog = kwargs.get("watchdog_usec")
    notifier = Notifier(systemd.environ(None if watchdog is None else int(watchdog)))
    return Service(hub, capture, fanout, kwargs.get("stall_timeout", 5.0), notifier)


def picture() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)


# --- the notifier -------------------------------------------------------------------------


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_a_notify_socket_that_is_not_a_unix_path_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="camd.service"):
        notifier = Notifier({"NOTIFY_SOCKET": "localhost:9"})
    assert not notifier.enabled
    assert "not a unix socket path" in caplog.text


def test_fields_go_out_as_one_datagram(systemd: Systemd) -> None:
    notifier = Notifier(systemd.environ())
    assert notifier.notify("READY=1", "STATUS=live 30.0 fps, 0 viewers")
    assert systemd.receive() == {"READY": "1", "STATUS": "live 30.0 fps, 0 viewers"}
    notifier.close()
    assert notifier.notify("WATCHDOG=1") is False


def test_an_abstract_socket_is_reached_by_its_at_name() -> None:
    name = f"camd-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(2)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.notify("READY=1")
        assert listener.recv(64) == b"READY=1"
        notifier.close()


def test_a_socket_nobody_listens_on_is_no_error(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert notifier.notify("READY=1") is False
    notifier.close()


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "2000000"}, 2.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # the watchdog is another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], interval: float | None) -> None:
    assert watchdog_interval(environ) == interval


# --- the service ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("watchdog_usec", "period"),
    [(None, STATUS_EVERY), (2_000_000, 0.5), (600_000_000, MAX_PING_EVERY)],
)
def test_health_is_checked_several_times_per_watchdog_interval(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd, watchdog_usec: int | None, period: float
) -> None:
    environ = systemd.environ(watchdog_usec)
    assert Service(hub, capture, fanout, 5.0, Notifier(environ)).period == period


def test_ready_once_the_first_frame_is_in_the_hub(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd
) -> None:
    service = service_of(hub, capture, fanout, systemd)
    service.start(ready_timeout=5)
    try:
        time.sleep(0.05)
        assert systemd.pending() == []  # no frame yet: not ready
        hub.set_camera(state=WARMING_UP)
        hub.publish(pixels=picture(), live=False)  # the placeholder counts
        assert systemd.receive() == {"READY": "1", "STATUS": "warming up, 0 viewers"}
    finally:
        service.stop()
    assert systemd.receive() == {"STOPPING": "1", "STATUS": "stopping"}


def test_no_ready_when_no_frame_comes(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd, caplog: pytest.LogCaptureFixture
) -> None:
    service = service_of(hub, capture, fanout, systemd)
    with caplog.at_level(logging.ERROR, logger="camd.service"):
        service.start(ready_timeout=0.1)
        deadline = time.monotonic() + 2
        while "not telling systemd ready" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
    service.stop()
    assert systemd.receive() == {"STOPPING": "1", "STATUS": "stopping"}
    assert systemd.pending() == []
    assert "not telling systemd ready" in caplog.text


def test_without_notify_socket_start_runs_nothing(hub: Hub, capture: CaptureReport, fanout: Fanout) -> None:
    before = threading.active_count()
    service = Service(hub, capture, fanout, 5.0, Notifier({}))
    service.start()
    assert threading.active_count() == before
    service.stop()


def test_the_service_thread_feeds_the_watchdog_several_times_per_interval(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd
) -> None:
    service = service_of(hub, capture, fanout, systemd, watchdog_usec=200_000)  # 0.2 s: checked every 0.05 s
    hub.set_camera(state=LIVE, width=64, height=48)
    hub.publish(pixels=picture())
    service.start()
    try:
        assert systemd.receive()["READY"] == "1"
        fed = [systemd.receive(timeout=1.0) for _ in range(3)]
        assert all(message.get("WATCHDOG") == "1" for message in fed), fed
    finally:
        service.stop()


def test_the_watchdog_is_fed_while_live_frames_are_fresh(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd
) -> None:
    service = service_of(hub, capture, fanout, systemd, watchdog_usec=2_000_000, stall_timeout=0.3)
    hub.set_camera(state=LIVE, width=64, height=48)
    hub.publish(pixels=picture())
    service.tick()
    assert systemd.receive()["WATCHDOG"] == "1"
    time.sleep(0.35)  # the live frame goes stale while the camera still says live
    service.tick()
    assert [message for message in systemd.pending() if "WATCHDOG" in message] == []
    hub.publish(pixels=picture())
    service.tick()
    assert systemd.receive()["WATCHDOG"] == "1"


def test_placeholders_alone_do_not_feed_a_stuck_capture(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd, caplog: pytest.LogCaptureFixture
) -> None:
    service = service_of(hub, capture, fanout, systemd, watchdog_usec=2_000_000, stall_timeout=0.2)
    hub.set_camera(state=OFFLINE, error="read hung")
    hub.publish(pixels=picture(), live=False)
    service.tick()  # offline and reopening with backoff: progress, fed
    assert systemd.receive()["WATCHDOG"] == "1"
    capture.reason = "a read has hung for 7.0s"
    with caplog.at_level(logging.WARNING, logger="camd.service"):
        for _ in range(3):
            hub.publish(pixels=picture(), live=False)
            service.tick()
    assert [message for message in systemd.pending() if "WATCHDOG" in message] == []
    assert caplog.text.count("not feeding the systemd watchdog") == 1  # said once, not every round
    capture.reason = None
    service.tick()
    assert systemd.receive()["WATCHDOG"] == "1"


def test_warming_up_without_a_live_frame_yet_is_progress(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd
) -> None:
    service = service_of(hub, capture, fanout, systemd, watchdog_usec=2_000_000)
    hub.set_camera(state=WARMING_UP)
    service.tick()
    assert systemd.receive()["WATCHDOG"] == "1"


def test_status_is_sent_only_when_it_changes(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd
) -> None:
    service = service_of(hub, capture, fanout, systemd)  # no watchdog: ticks carry STATUS only
    hub.set_camera(state=WARMING_UP)
    service.tick()
    assert systemd.receive() == {"STATUS": "warming up, 0 viewers"}
    service.tick()
    assert systemd.pending() == []
    assert fanout.reserve()
    service.tick()
    assert systemd.receive() == {"STATUS": "warming up, 1 viewer"}


def test_reload_is_announced_and_then_ready_again(
    hub: Hub, capture: CaptureReport, fanout: Fanout, systemd: Systemd
) -> None:
    service = service_of(hub, capture, fanout, systemd)
    before = time.monotonic_ns() // 1000
    service.reloading()
    message = systemd.receive()
    assert message["RELOADING"] == "1" and message["STATUS"] == "reloading"
    assert before <= int(message["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
    service.reloaded()
    assert systemd.receive() == {"READY": "1", "STATUS": "starting, 0 viewers"}


@pytest.mark.parametrize(
    ("camera", "viewers", "status"),
    [
        ({}, 0, "starting, 0 viewers"),
        ({"state": WARMING_UP}, 1, "warming up, 1 viewer"),
        ({"state": OFFLINE, "error": "no such device"}, 2, "offline (no such device), 2 viewers"),
        ({"state": LIVE, "width": 640, "height": 480}, 3, "live 0.0 fps 640x480, 3 viewers"),
        ({"state": LIVE}, 0, "live 0.0 fps, 0 viewers"),
    ],
)
def test_describe(hub: Hub, camera: dict[str, object], viewers: int, status: str) -> None:
    hub.set_camera(**camera)
    assert describe(hub, viewers) == status
