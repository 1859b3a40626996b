"""GET /metrics: Prometheus text format, read from the hub's counters and the camera state at scrape time.

Nothing is counted twice: the pipeline bumps its plain counters (``camd.stats``)
as it works, and a custom collector turns them into metric families only when
Prometheus asks. Like every route outside the public list, it needs a login.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from camd import __version__
from camd.hub import LIVE, OFFLINE, STARTING, WARMING_UP
from camd.variants import VariantKey, Variants
from camd.web.context import EXTENSION, Parts

bp = Blueprint("metrics", __name__)

STATES = (STARTING, WARMING_UP, LIVE, OFFLINE)
# (counter in camd.stats, metric name without _total, help)
COUNTERS = (
    ("frames_captured", "camd_frames_captured", "Frames that passed the gate and were published"),
    ("jpeg_encodes", "camd_jpeg_encodes", "JPEG encodes camd did (passthrough frames need none)"),
    ("jpeg_decodes", "camd_jpeg_decodes", "JPEG decodes camd did (gate checks, stills of passthrough frames)"),
    ("stream_frames_sent", "camd_stream_frames_sent", "Frames sent to stream viewers, all viewers together"),
    ("stream_bytes_sent", "camd_stream_bytes_sent", "Bytes of stream parts sent to viewers"),
    ("stills_saved", "camd_stills_saved", "Stills written to disk"),
    ("stills_failed", "camd_stills_failed", "Stills that could not be written"),
    ("stills_skipped", "camd_stills_skipped", "Stills not taken: no fresh live frame at the time"),
    ("stills_deleted", "camd_stills_deleted", "Stills deleted by retention"),
    ("activity_events", "camd_activity_events", "Activity events: stretches of change in the picture"),
    ("reconnects", "camd_reconnects", "Times the camera was lost after being live"),
    ("warmup_frames", "camd_warmup_frames", "Frames discarded while warming the camera up, all warm-ups together"),
    ("warmup_seconds", "camd_warmup_seconds", "Seconds spent warming the camera up, all warm-ups together"),
    ("login_failures", "camd_login_failures", "Logins refused for a wrong user name or password"),
    ("login_lockouts", "camd_login_lockouts", "Times an address was blocked (429) after too many failed logins"),
)


class CamdCollector(Collector):
    """Builds every camd metric family from the daemon's parts when scraped."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        hub, counters = self.parts.hub, self.parts.hub.counters
        camera = hub.camera
        info = InfoMetricFamily("camd", "camd's version and source")
        info.add_metric([], {"version": __version__, "source": camera.source or "none"})
        yield info
        for key, name, text in COUNTERS:
            yield CounterMetricFamily(name, text, value=counters.get(key))
        dropped = CounterMetricFamily("camd_frames_dropped", "Frames the gate dropped, by reason", labels=["reason"])
        for reason, value in counters.snapshot("dropped_").items():
            dropped.add_metric([reason], value)
        yield dropped
        state = GaugeMetricFamily("camd_camera_state", "1 for the camera's current state", labels=["state"])
        for name in STATES:
            state.add_metric([name], 1.0 if camera.state == name else 0.0)
        yield state
        yield GaugeMetricFamily(
            "camd_camera_state_seconds", "Seconds since the camera entered its current state",
            value=max(0.0, time.time() - camera.since),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "camd_last_frame_age_seconds", "Seconds since the newest live frame was captured (+Inf before the first)",
            value=hub.live_age(),
        )  # fmt: skip
        yield GaugeMetricFamily("camd_capture_fps", "Live frames per second over the last few seconds", value=hub.fps())
        yield GaugeMetricFamily("camd_frame_width_pixels", "Width of the frames", value=camera.width)
        yield GaugeMetricFamily("camd_frame_height_pixels", "Height of the frames", value=camera.height)
        yield GaugeMetricFamily(
            "camd_last_warmup_frames", "Frames the last warm-up discarded", value=camera.warmup_frames
        )
        yield GaugeMetricFamily(
            "camd_last_warmup_seconds", "How long the last warm-up took", value=camera.warmup_seconds
        )
        yield GaugeMetricFamily("camd_viewers", "Stream viewers connected now", value=self.parts.fanout.viewers)
        yield GaugeMetricFamily(
            "camd_max_viewers", "Stream viewers allowed at once (max_clients)", value=self.parts.settings.max_clients
        )
        yield GaugeMetricFamily("camd_start_time_seconds", "When camd started, in Unix seconds", value=hub.started)
        healthy = hub.health(self.parts.settings.stall_timeout) == "ok"
        yield GaugeMetricFamily("camd_healthy", "1 while /healthz says ok (fresh live frames)", value=float(healthy))
        activity = self.parts.activity
        if activity is not None:
            yield GaugeMetricFamily(
                "camd_activity_level", "Fraction of the picture that changed in the last activity sample (0-1)",
                value=activity.level,
            )  # fmt: skip
        stills = self.parts.stills
        if stills is not None:
            status = stills.status()
            yield GaugeMetricFamily("camd_stills", "Stills on disk", value=status.get("count", 0))
            yield GaugeMetricFamily("camd_stills_bytes", "Disk space the stills use", value=status.get("disk_bytes", 0))
        variants = self.parts.variants
        if variants is not None:
            yield from variant_metrics(variants)


def variant_metrics(variants: Variants) -> Iterator[Metric]:
    """Per-variant viewers, encodes, encoded and sent bytes (``?width=``/``?quality=``), and the decodes they needed."""
    labels = ["width", "quality"]
    viewers = GaugeMetricFamily("camd_variant_viewers", "Stream viewers of each picture variant", labels=labels)
    for key, count in sorted(variants.viewers().items(), key=lambda item: (item[0].label, item[0].quality)):
        viewers.add_metric([key.label, str(key.quality)], count)
    yield viewers
    yield from _counted_and_bytes(
        variants.counts(), ("camd_variant_encodes", "JPEG encodes made for each picture variant"),
        ("camd_variant_bytes", "Bytes of the JPEGs made for each picture variant"),
    )  # fmt: skip
    yield from _counted_and_bytes(
        variants.sent(), ("camd_variant_stream_frames_sent", "Frames sent to stream viewers of each picture variant"),
        ("camd_variant_stream_bytes_sent", "Bytes sent to stream viewers of each picture variant"),
    )  # fmt: skip
    decodes = CounterMetricFamily(
        "camd_variant_decodes", "JPEG decodes done for picture variants, by reduced-size factor", labels=["scale"]
    )
    for factor, count in variants.decodes().items():
        decodes.add_metric([f"1/{factor}"], count)
    yield decodes


def registry_for(parts: Parts) -> CollectorRegistry:
    """A registry of this app's own (not the process-global one): camd's metrics and the process's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CamdCollector(parts))
    ProcessCollector(registry=registry)
    return registry


def init_app(app: Flask) -> None:
    app.extensions["camd.metrics"] = registry_for(app.extensions[EXTENSION])
    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics() -> Response:
    registry: CollectorRegistry = current_app.extensions["camd.metrics"]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _counted_and_bytes(
    totals: dict[VariantKey, tuple[int, int]], counted: tuple[str, str], sized: tuple[str, str]
) -> Iterator[Metric]:
    """Two counters per variant from its (count, bytes) totals."""
    labels = ["width", "quality"]
    count_family = CounterMetricFamily(*counted, labels=labels)
    bytes_family = CounterMetricFamily(*sized, labels=labels)
    for key, (count, total) in totals.items():
        count_family.add_metric([key.label, str(key.quality)], count)
        bytes_family.add_metric([key.label, str(key.quality)], total)
    yield count_family
    yield bytes_family
