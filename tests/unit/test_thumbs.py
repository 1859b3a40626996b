"""camd.web.thumbs: small JPEGs of stills, and the cache that keeps them within a byte bound."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from flask.testing import FlaskClient

from camd.settings import Settings
from camd.web.thumbs import THUMB_WIDTH, ThumbnailCache, make_thumbnail


def jpeg_of(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(5).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buffer.tobytes()


def size_of(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image.shape[1], image.shape[0]


@pytest.mark.parametrize(
    ("source", "width", "expected"),
    [
        ((1280, 720), THUMB_WIDTH, (320, 180)),  # decoded at 1/4, exact
        ((1920, 1080), THUMB_WIDTH, (320, 180)),  # decoded at 1/4, then resized
        ((2600, 1400), THUMB_WIDTH, (320, 172)),  # decoded at 1/8, then resized
        ((640, 480), 160, (160, 120)),
        ((200, 100), THUMB_WIDTH, (200, 100)),  # never enlarged
        ((321, 7), THUMB_WIDTH, (320, 7)),
    ],
)
def test_thumbnail_size(source: tuple[int, int], width: int, expected: tuple[int, int]) -> None:
    thumb = make_thumbnail(jpeg_of(*source), width)
    assert thumb is not None
    assert size_of(thumb) == expected


def test_a_thumbnail_is_smaller_than_its_still() -> None:
    still = jpeg_of(1280, 720)
    thumb = make_thumbnail(still)
    assert thumb is not None and len(thumb) < len(still) // 4


@pytest.mark.parametrize("data", [b"", b"not a jpeg at all", b"\xff\xd8" + b"\0" * 500 + b"\xff\xd9"])
def test_what_does_not_decode_has_no_thumbnail(data: bytes) -> None:
    assert make_thumbnail(data) is None


def test_cache_returns_what_was_put() -> None:
    cache = ThumbnailCache(limit=100)
    assert cache.get("a") is None
    cache.put("a", b"x" * 10)
    assert cache.get("a") == b"x" * 10


def test_cache_drops_the_least_recently_used_past_its_limit() -> None:
    cache = ThumbnailCache(limit=30)
    for key in "abc":
        cache.put(key, key.encode() * 10)
    assert cache.get("a") is not None  # now the most recently used
    cache.put("d", b"d" * 10)
    assert cache.get("b") is None
    assert [cache.get(key) is not None for key in "acd"] == [True, True, True]


def test_replacing_an_entry_does_not_count_it_twice() -> None:
    cache = ThumbnailCache(limit=30)
    cache.put("a", b"1" * 10)
    cache.put("b", b"2" * 10)
    cache.put("a", b"3" * 10)
    cache.put("c", b"4" * 10)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"3" * 10, b"2" * 10, b"4" * 10)


def test_an_entry_larger_than_the_whole_cache_is_not_kept_and_evicts_nothing() -> None:
    cache = ThumbnailCache(limit=30)
    cache.put("a", b"a" * 10)
    cache.put("huge", b"h" * 31)
    assert cache.get("huge") is None
    assert cache.get("a") == b"a" * 10


def test_one_big_entry_can_push_out_several_small_ones() -> None:
    cache = ThumbnailCache(limit=30)
    for key in "abc":
        cache.put(key, key.encode() * 10)
    cache.put("big", b"B" * 25)
    assert [cache.get(key) for key in "abc"] == [None, None, None]
    assert cache.get("big") == b"B" * 25


def test_the_thumbnail_of_an_empty_still_file_is_a_404_not_an_error(
    client: FlaskClient, auth: dict[str, str], settings: Settings
) -> None:
    folder = settings.stills_path / "2024-01-02"
    folder.mkdir(parents=True)
    (folder / "20240102-030405.jpg").write_bytes(b"")  # a disk that filled up under someone else's copy
    response = client.get("/stills/2024-01-02/20240102-030405.jpg?thumb=1", headers=auth)
    assert response.status_code == 404
