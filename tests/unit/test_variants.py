"""camd.variants: the ?width=/?quality= ladder, one encode per variant per frame, reduced decodes, counters."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from camd.frames import Frame
from camd.http import Fanout
from camd.hub import Hub
from camd.settings import Settings
from camd.stats import Counters
from camd.users import Users
from camd.variants import (
    VariantError,
    VariantKey,
    Variants,
    parse_variant,
    reduction_for,
    snap_width,
)
from camd.web.metrics import variant_metrics

DEFAULT_QUALITY = 80


def picture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth picture with some detail, so that JPEG sizes and resizes mean something."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    image = np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)), (x + y) / 2], -1)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    cv2.putText(image, "camd", (width // 8, height // 2), cv2.FONT_HERSHEY_SIMPLEX, width / 200, (255, 255, 255), 3)
    return image


def jpeg_of(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def pixel_frame(hub: Hub, width: int = 1280, height: int = 720, seed: int = 0) -> Frame:
    return hub.publish(pixels=picture(width, height, seed))


def jpeg_frame(hub: Hub, width: int = 1280, height: int = 720, seed: int = 0) -> Frame:
    """A frame as a JPEG camera gives it: bytes only (passthrough)."""
    hub.set_camera(width=width, height=height)
    return hub.publish(jpeg=jpeg_of(picture(width, height, seed)))


def shape_of(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the variant does not decode"
    return image.shape[1], image.shape[0]


# --- the ladder ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "source", "expected"),
    [
        ("", 1280, None),
        ("full", 1280, None),
        ("FULL", 1280, None),
        ("1", 1280, 320),
        ("319", 1280, 320),
        ("320", 1280, 320),
        ("479", 1280, 320),
        ("480", 1280, 480),
        ("600", 1280, 480),
        ("640", 1280, 640),
        ("959", 1280, 640),
        ("960", 1280, 960),
        ("1279", 1280, 960),
        ("1280", 1280, None),
        ("4000", 1280, None),
        ("1200", 1920, 960),
        ("1919", 1920, 960),
        ("640", 640, None),  # a step as wide as the source is the source
        ("960", 800, None),  # never larger than the source: the full 800
        ("800", 800, None),
        ("700", 800, 640),
        ("320", 320, None),
        ("100", 240, None),  # the smallest step is wider than a 240-pixel source
        ("2000", 0, 960),  # source not known yet: the ladder alone
        (" 480 ", 1280, 480),
    ],
)
def test_width_snaps_to_the_ladder_and_never_above_the_source(width: str, source: int, expected: int | None) -> None:
    key = parse_variant(width, None, source_width=source, default_quality=DEFAULT_QUALITY)
    assert key == VariantKey(expected, DEFAULT_QUALITY)


@pytest.mark.parametrize(
    ("quality", "default", "expected"),
    [
        (None, 80, 80),
        ("", 80, 80),
        ("default", 80, 80),
        ("low", 80, 30),
        ("medium", 80, 50),
        ("HIGH", 80, 70),
        ("high", 60, 60),  # a name never raises the quality above the default
        ("1", 80, 1),
        ("55", 80, 55),
        ("95", 80, 80),  # ?quality= only lowers
        ("95", 100, 95),
    ],
)
def test_quality_is_a_bounded_number_or_a_name(quality: str | None, default: int, expected: int) -> None:
    assert parse_variant(None, quality, source_width=1280, default_quality=default) == VariantKey(None, expected)


@pytest.mark.parametrize(
    ("width", "quality", "message"),
    [
        ("abc", None, "width must be"),
        ("0", None, "width must be"),
        ("-320", None, "width must be"),
        ("1e3", None, "width must be"),
        ("99999", None, "width must be"),
        ("320.5", None, "width must be"),
        (None, "0", "quality must be from 1 to 95"),
        (None, "96", "quality must be from 1 to 95"),
        (None, "best", "quality must be from 1 to 95 or one of low, medium, high"),
        (None, "50%", "quality must be"),
    ],
)
def test_bad_values_are_errors_fit_for_a_400(width: str | None, quality: str | None, message: str) -> None:
    with pytest.raises(VariantError, match=message):
        parse_variant(width, quality, source_width=1280, default_quality=DEFAULT_QUALITY)


def test_snap_width_alone() -> None:
    assert [snap_width(w, 1920) for w in (200, 320, 500, 700, 1000, 1920)] == [320, 320, 480, 640, 960, None]


@pytest.mark.parametrize(
    ("source", "width", "factor"),
    [
        (1920, 240, 8),
        (1920, 241, 4),
        (1920, 320, 4),
        (1920, 480, 4),
        (1920, 481, 2),
        (1920, 960, 2),
        (1920, 961, 1),
        (1280, 160, 8),
        (1280, 320, 4),
        (1280, 321, 2),
        (1280, 640, 2),
        (1280, 960, 1),
        (1281, 321, 4),  # libjpeg rounds 1281/4 up to 321
        (640, 320, 2),
        (640, 480, 1),
        (320, 320, 1),
    ],
)
def test_the_largest_reduction_still_at_least_the_target_width(source: int, width: int, factor: int) -> None:
    assert reduction_for(source, width) == factor
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}
    flag[8] = cv2.IMREAD_REDUCED_COLOR_8
    decoded = cv2.imdecode(np.frombuffer(jpeg_of(picture(source, 16)), np.uint8), flag[factor])
    assert decoded is not None and decoded.shape[1] >= width  # what libjpeg really gives is wide enough


# --- making variants ----------------------------------------------------------------------------


def test_full_width_at_the_default_quality_is_the_frames_own_jpeg() -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    camera = jpeg_frame(hub)
    assert variants.jpeg(camera, VariantKey(None, DEFAULT_QUALITY)) is camera.jpeg()
    pixels = pixel_frame(hub)
    assert variants.jpeg(pixels, VariantKey(None, DEFAULT_QUALITY)) is pixels.jpeg()
    assert variants.counts() == {}
    assert variants.decodes() == {}


@pytest.mark.parametrize("kind", ["pixels", "jpeg"])
@pytest.mark.parametrize(("source_width", "source_height"), [(1280, 720), (1920, 1080), (640, 480), (400, 300)])
def test_variants_have_the_ladder_width_and_never_exceed_the_source(
    kind: str, source_width: int, source_height: int
) -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    make = pixel_frame if kind == "pixels" else jpeg_frame
    frame = make(hub, source_width, source_height)
    for raw in ("320", "480", "640", "960", "1280", "5000"):
        key = parse_variant(raw, "medium", source_width=source_width, default_quality=DEFAULT_QUALITY)
        width, height = shape_of(variants.jpeg(frame, key))
        expected = source_width if key.width is None else key.width
        assert width == expected <= source_width
        assert abs(height - source_height * width / source_width) <= 1
    # A key made for a wider source (the camera came back smaller) is held to the frame's width.
    assert shape_of(variants.jpeg(frame, VariantKey(960, 50)))[0] == min(960, source_width)


def test_lower_quality_makes_smaller_jpegs() -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    frame = pixel_frame(hub)
    sizes = [len(variants.jpeg(frame, VariantKey(640, quality))) for quality in (80, 50, 30, 10)]
    assert sizes == sorted(sizes, reverse=True)
    assert len(sizes) == len(set(sizes))


@pytest.mark.parametrize("kind", ["pixels", "jpeg"])
def test_each_variant_is_made_once_per_frame_for_every_caller(kind: str) -> None:
    hub = Hub(DEFAULT_QUALITY)
    variants = Variants(hub.counters)
    keys = [VariantKey(320, 80), VariantKey(640, 50), VariantKey(None, 30)]
    for key in keys:
        variants.watch(key)
    make = pixel_frame if kind == "pixels" else jpeg_frame
    for seed in range(3):
        frame = make(hub, seed=seed)
        callers = 24
        barrier = threading.Barrier(callers)
        results: list[tuple[VariantKey, bytes]] = []

        def caller(number: int, frame: Frame = frame, barrier: threading.Barrier = barrier) -> None:
            key = keys[number % len(keys)]
            barrier.wait(5)
            data = variants.jpeg(frame, key)
            results.append((key, data))  # noqa: B023 (joined below, before the loop moves on)

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(results) == callers
        for key in keys:
            made = [data for got, data in results if got == key]
            assert len(made) == callers // len(keys)
            assert all(data is made[0] for data in made), "every caller gets the same bytes object"
    # three frames, one encode of each variant per frame
    assert {key: count for key, (count, _) in variants.counts().items()} == {key: 3 for key in keys}
    assert hub.counters.get("jpeg_encodes") == 9


def test_one_decode_per_jpeg_frame_sized_for_the_widest_watched_variant() -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    variants.watch(VariantKey(320, 80))
    variants.watch(VariantKey(640, 80))
    frame = jpeg_frame(hub)  # 1280 wide: 640 is 1/2, 320 alone would be 1/4
    assert shape_of(variants.jpeg(frame, VariantKey(320, 80)))[0] == 320  # asked first, decoded for 640 anyway
    assert shape_of(variants.jpeg(frame, VariantKey(640, 80)))[0] == 640
    assert variants.decodes() == {2: 1}
    variants.unwatch(VariantKey(640, 80))
    frame = jpeg_frame(hub, seed=1)
    variants.jpeg(frame, VariantKey(320, 80))
    assert variants.decodes() == {2: 1, 4: 1}
    variants.watch(VariantKey(None, 50))  # full width at a lower quality needs the full decode, kept by the frame
    frame = jpeg_frame(hub, seed=2)
    variants.jpeg(frame, VariantKey(320, 80))
    variants.jpeg(frame, VariantKey(None, 50))
    assert variants.decodes() == {2: 1, 4: 1, 1: 1}
    assert frame.pixels().shape[:2] == (720, 1280)


def test_viewers_of_the_frames_own_bytes_do_not_widen_the_decode() -> None:
    """The fan-out watches full-size viewers too (they count as viewers); they need no decode at all."""
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    variants.watch(VariantKey(None, DEFAULT_QUALITY))
    variants.watch(VariantKey(320, 80))
    frame = jpeg_frame(hub)
    assert variants.jpeg(frame, VariantKey(None, DEFAULT_QUALITY)) == frame.jpeg()
    assert shape_of(variants.jpeg(frame, VariantKey(320, 80)))[0] == 320
    assert variants.decodes() == {4: 1}


def test_a_variant_watched_after_the_decode_gets_a_wider_one() -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    frame = jpeg_frame(hub)
    assert shape_of(variants.jpeg(frame, VariantKey(320, 80)))[0] == 320
    assert shape_of(variants.jpeg(frame, VariantKey(960, 80)))[0] == 960  # nobody watched 960 at decode time
    assert variants.decodes() == {4: 1, 1: 1}


def test_reduced_decode_gives_the_same_picture_as_a_full_one() -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    source = picture(1280, 720)
    hub.set_camera(width=1280, height=720)
    frame = hub.publish(jpeg=jpeg_of(source, 95))
    made = cv2.imdecode(np.frombuffer(variants.jpeg(frame, VariantKey(320, 95)), np.uint8), cv2.IMREAD_COLOR)
    assert made is not None and variants.decodes() == {4: 1}
    reference = cv2.resize(source, (320, 180), interpolation=cv2.INTER_AREA)
    assert cv2.PSNR(made, reference) > 30


def test_only_the_newest_frames_variants_are_kept() -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    key = VariantKey(480, 50)
    first = pixel_frame(hub, seed=0)
    made_first = variants.jpeg(first, key)
    second = pixel_frame(hub, seed=1)
    made_second = variants.jpeg(second, key)
    assert made_second != made_first
    assert variants.jpeg(second, key) is made_second
    assert variants.counts()[key][0] == 2
    # A late caller still holding the older frame gets its own picture, not the newer one, and no cache churn.
    assert variants.jpeg(first, key) == made_first
    assert variants.jpeg(second, key) is made_second
    assert variants.counts()[key][0] == 3


def test_nothing_is_made_for_frames_nobody_asks_for() -> None:
    hub = Hub(DEFAULT_QUALITY)
    variants = Variants(hub.counters)
    variants.watch(VariantKey(320, 50))
    for seed in range(5):
        jpeg_frame(hub, seed=seed)
    assert variants.counts() == {}
    assert variants.decodes() == {}
    assert hub.counters.get("jpeg_encodes") == 0


# --- counting -----------------------------------------------------------------------------------


def test_status_counts_viewers_encodes_and_bytes_per_variant() -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    small, full = VariantKey(320, 30), VariantKey(None, 50)
    with variants.watching(small):
        variants.watch(small)
        sizes = [len(variants.jpeg(pixel_frame(hub, seed=seed), small)) for seed in range(4)]
        status = variants.status()
    assert status["ladder"] == [320, 480, 640, 960, "full"]
    assert status["qualities"] == {"low": 30, "medium": 50, "high": 70}
    counted = {"encodes": 4, "bytes": sum(sizes), "frames_sent": 0, "bytes_sent": 0}
    assert status["served"] == [{"width": "320", "quality": 30, "viewers": 2, **counted}]
    variants.unwatch(small)
    variants.watch(full)
    variants.count_sent(full, 3, 30000)
    variants.count_sent(full, 2, 20000)
    status = variants.status()
    assert status["served"] == [
        {"width": "320", "quality": 30, "viewers": 0, **counted},
        {"width": "full", "quality": 50, "viewers": 1, "encodes": 0, "bytes": 0, "frames_sent": 5, "bytes_sent": 50000},
    ]
    assert variants.viewers() == {full: 1}


class _Only(Collector):
    def __init__(self, variants: Variants) -> None:
        self.variants = variants

    def collect(self) -> Iterator[Metric]:
        return variant_metrics(self.variants)


def test_metrics_carry_encodes_and_bytes_by_width_and_quality() -> None:
    hub, variants = Hub(DEFAULT_QUALITY), Variants()
    small, medium = VariantKey(320, 30), VariantKey(640, 80)
    variants.watch(small)
    made = 0
    for seed in range(3):
        frame = jpeg_frame(hub, seed=seed)
        made += len(variants.jpeg(frame, small))
        variants.jpeg(frame, medium)
    variants.count_sent(small, 3, made)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Only(variants))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    assert samples[("camd_variant_encodes_total", (("quality", "30"), ("width", "320")))] == 3
    assert samples[("camd_variant_encodes_total", (("quality", "80"), ("width", "640")))] == 3
    assert samples[("camd_variant_bytes_total", (("quality", "30"), ("width", "320")))] == made
    assert samples[("camd_variant_viewers", (("quality", "30"), ("width", "320")))] == 1
    assert samples[("camd_variant_stream_frames_sent_total", (("quality", "30"), ("width", "320")))] == 3
    assert samples[("camd_variant_stream_bytes_sent_total", (("quality", "30"), ("width", "320")))] == made
    assert samples[("camd_variant_decodes_total", (("scale", "1/4"),))] == 3  # only 320 was watched
    assert ("camd_variant_viewers", (("quality", "80"), ("width", "640"))) not in samples


def test_counters_are_shared_with_the_hub_when_given() -> None:
    counters = Counters()
    hub, variants = Hub(DEFAULT_QUALITY, counters), Variants(counters)
    frame = jpeg_frame(hub)
    variants.jpeg(frame, VariantKey(480, 50))
    assert counters.get("jpeg_encodes") == 1
    assert counters.get("jpeg_decodes") == 1


def test_api_status_and_metrics_read_the_variants_collaborator(
    settings: Settings, hub: Hub, users: Users, auth: dict[str, str]
) -> None:
    """As camd/__main__.py is to pass it: ``create_app(..., variants=Variants(hub.counters))``."""
    from camd.web import create_app

    variants = Variants(hub.counters)
    app = create_app(settings, hub, Fanout(hub, 4), users, None, variants=variants)
    key = parse_variant("500", "low", source_width=1280, default_quality=settings.jpeg_quality)
    variants.watch(key)
    made = variants.jpeg(pixel_frame(hub), key)
    client = app.test_client()
    status = client.get("/api/status", headers=auth).get_json()
    assert status["variants"]["served"] == [
        {
            "width": "480",
            "quality": 30,
            "viewers": 1,
            "encodes": 1,
            "bytes": len(made),
            "frames_sent": 0,
            "bytes_sent": 0,
        }
    ]
    text = client.get("/metrics", headers=auth).get_data(as_text=True)
    assert 'camd_variant_encodes_total{quality="30",width="480"} 1.0' in text
    assert f'camd_variant_bytes_total{{quality="30",width="480"}} {float(len(made))}' in text
