"""GET /metrics: Prometheus text that prometheus-client's own parser reads, counters that follow the traffic."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, Daemon
from tests.support.recordings import make_recording
from tests.support.streams import read_parts


def scrape(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = daemon.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_need_a_login(daemon: Daemon) -> None:
    response = daemon.get("/metrics", auth=False)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="camd"'


def test_metrics_parse_and_describe_the_daemon(daemon: Daemon) -> None:
    samples = scrape(daemon)
    for name in (
        "camd_frames_captured_total", "camd_jpeg_encodes_total", "camd_stream_frames_sent_total",
        "camd_stream_bytes_sent_total", "camd_stills_saved_total", "camd_stills_failed_total",
        "camd_reconnects_total", "camd_warmup_frames_total", "camd_warmup_seconds_total",
        "camd_last_frame_age_seconds", "camd_viewers", "camd_capture_fps", "process_resident_memory_bytes",
    ):  # fmt: skip
        assert (name, ()) in samples, name
    assert value(samples, "camd_camera_state", state="live") == 1
    assert value(samples, "camd_camera_state", state="offline") == 0
    assert value(samples, "camd_healthy") == 1
    assert value(samples, "camd_warmup_frames_total") > 0
    assert value(samples, "camd_warmup_seconds_total") > 0
    assert 0 <= value(samples, "camd_last_frame_age_seconds") < 5
    assert value(samples, "camd_reconnects_total") == 0
    assert value(samples, "camd_stills_failed_total") == 0
    assert (value(samples, "camd_frame_width_pixels"), value(samples, "camd_frame_height_pixels")) == (640, 480)
    info = [key for key in samples if key[0] == "camd_info"]
    assert info and ("source", "test") in info[0][1]


def test_counters_follow_the_stream_traffic(daemon: Daemon) -> None:
    before = scrape(daemon)
    assert value(before, "camd_viewers") == 0

    parts = read_parts(daemon.url("/stream.mjpg"), 12, auth=daemon.auth)
    assert len(parts) == 12
    sent = sum(len(part.body) for part in parts)
    after = scrape(daemon)
    frames = value(after, "camd_stream_frames_sent_total") - value(before, "camd_stream_frames_sent_total")
    sent_bytes = value(after, "camd_stream_bytes_sent_total") - value(before, "camd_stream_bytes_sent_total")
    # The first part goes out through the WSGI server, the rest through the fan-out, which counts them.
    assert frames >= 11
    assert sent_bytes >= sent - len(parts[0].body)
    assert value(after, "camd_frames_captured_total") > value(before, "camd_frames_captured_total")
    assert value(after, "camd_jpeg_encodes_total") > value(before, "camd_jpeg_encodes_total")


def test_viewers_gauge_while_a_viewer_is_connected(daemon: Daemon) -> None:
    with requests.get(daemon.url("/stream.mjpg"), auth=daemon.auth, stream=True, timeout=10) as response:
        chunks = response.iter_content(4096)  # keep the generator: dropping it closes the connection
        next(chunks)
        wait_until(lambda: value(scrape(daemon), "camd_viewers") == 1, 10, what="camd_viewers 1")
        for _ in range(20):
            next(chunks)
    wait_until(lambda: value(scrape(daemon), "camd_viewers") == 0, 10, what="camd_viewers back to 0")


def test_stills_saved_counts_a_still_taken_now(daemon: Daemon) -> None:
    before = value(scrape(daemon), "camd_stills_saved_total")
    response = requests.post(daemon.url("/api/stills"), auth=daemon.auth, timeout=20)
    assert response.status_code in (200, 201), response.text
    samples = scrape(daemon)
    assert value(samples, "camd_stills_saved_total") == before + 1
    assert value(samples, "camd_stills") >= 1
    assert value(samples, "camd_stills_bytes") > 0


def test_dropped_frames_by_reason(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    # Every loop of this recording starts with flat green frames: after the warm-up the gate drops them.
    recording = make_recording(tmp_path / "green.avi", frames=30, first=6)
    daemon = daemon_factory("--source", str(recording), *FAST_WARMUP)
    wait_until(lambda: scrape(daemon).get(("camd_frames_dropped_total", (("reason", "flat"),)), 0) >= 6, 20,
               what="flat frames counted")  # fmt: skip
    samples = scrape(daemon)
    assert value(samples, "camd_frames_dropped_total", reason="flat") >= 6
    assert not math.isnan(value(samples, "camd_last_frame_age_seconds"))
