"""camd.retention: the oldest stills go first, by age, by count and to keep disk space free."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from camd.retention import MB, Limits, free_bytes, prune, why_delete
from camd.stills_index import Still, StillIndex, base_name, day_of, scan

DAY = 86400.0
NOW = time.mktime((2024, 3, 10, 12, 0, 0, 0, 0, -1))


def make_stills(root: Path, ages_in_days: list[float]) -> StillIndex:
    """Real files named for ``NOW`` minus each age, and the index built from the folder as camd builds it."""
    for age in ages_in_days:
        when = NOW - age * DAY
        folder = root / day_of(when)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{base_name(when)}.jpg").write_bytes(b"\xff\xd8" + b"x" * 1000 + b"\xff\xd9")
    index = StillIndex()
    index.replace(scan(root))
    return index


def on_disk(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_no_limits_delete_nothing(tmp_path: Path) -> None:
    index = make_stills(tmp_path, [30, 20, 10])
    assert prune(index, tmp_path, Limits(), now=NOW) == []
    assert len(on_disk(tmp_path)) == 3


def test_max_age_deletes_what_is_older_and_its_empty_day_folders(tmp_path: Path) -> None:
    index = make_stills(tmp_path, [9, 8.75, 3, 0.5])
    deleted = prune(index, tmp_path, Limits(max_age=7 * DAY), now=NOW)
    assert [still.day for still in deleted] == ["2024-03-01", "2024-03-01"]
    assert not (tmp_path / "2024-03-01").exists()
    assert index.count() == 2
    assert on_disk(tmp_path) == ["2024-03-07/20240307-120000.jpg", "2024-03-10/20240310-000000.jpg"]


def test_max_count_keeps_the_newest(tmp_path: Path) -> None:
    index = make_stills(tmp_path, [5, 4, 3, 2, 1])
    deleted = prune(index, tmp_path, Limits(max_count=2), now=NOW)
    assert len(deleted) == 3
    assert on_disk(tmp_path) == ["2024-03-08/20240308-120000.jpg", "2024-03-09/20240309-120000.jpg"]
    assert index.count() == 2 and index.total_bytes == 2 * 1004


def test_a_full_disk_deletes_all_but_the_newest(tmp_path: Path) -> None:
    index = make_stills(tmp_path, [3, 2, 1])
    # Ask for more free space than this disk has: only deleting can be tried, and the newest stays.
    impossible = free_bytes(tmp_path) + 1024 * MB
    deleted = prune(index, tmp_path, Limits(min_free_bytes=impossible), now=NOW)
    assert len(deleted) == 2
    assert on_disk(tmp_path) == ["2024-03-09/20240309-120000.jpg"]


def test_enough_free_disk_deletes_nothing(tmp_path: Path) -> None:
    index = make_stills(tmp_path, [3, 2, 1])
    assert prune(index, tmp_path, Limits(min_free_bytes=1), now=NOW) == []
    assert index.count() == 3


def test_a_still_already_gone_from_disk_leaves_the_index_too(tmp_path: Path) -> None:
    index = make_stills(tmp_path, [9, 1])
    oldest = index.oldest()
    assert oldest is not None
    os.unlink(tmp_path / oldest.path)
    assert prune(index, tmp_path, Limits(max_age=7 * DAY), now=NOW) == [oldest]
    assert index.count() == 1


def test_files_camd_did_not_write_are_never_deleted(tmp_path: Path) -> None:
    index = make_stills(tmp_path, [9, 8])
    (tmp_path / "2024-03-01" / "holiday.jpg").write_bytes(b"mine")
    (tmp_path / "2024-03-01" / "20240301-000000.jpg.bak").write_bytes(b"mine")
    prune(index, tmp_path, Limits(max_age=DAY), now=NOW)
    assert on_disk(tmp_path) == ["2024-03-01/20240301-000000.jpg.bak", "2024-03-01/holiday.jpg"]
    assert index.count() == 0


def test_a_still_that_cannot_be_deleted_stops_the_round(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = make_stills(tmp_path, [9, 8])
    oldest = index.oldest()
    assert oldest is not None
    # A folder where the file was: unlink fails with an error other than "not found".
    os.unlink(tmp_path / oldest.path)
    (tmp_path / oldest.path).mkdir()
    with caplog.at_level(logging.ERROR, logger="camd.retention"):
        assert prune(index, tmp_path, Limits(max_age=DAY), now=NOW) == []
    assert index.count() == 2
    assert "cannot delete still" in caplog.text


def test_a_full_disk_with_nothing_left_to_delete_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = make_stills(tmp_path, [1])
    with caplog.at_level(logging.WARNING, logger="camd.retention"):
        assert prune(index, tmp_path, Limits(min_free_bytes=free_bytes(tmp_path) + 1024 * MB), now=NOW) == []
    assert "no older stills left to delete" in caplog.text


OLD = Still("2024-03-01", "20240301-120000.jpg", NOW - 9 * DAY, 1)


@pytest.mark.parametrize(
    ("limits", "count", "free", "why"),
    [
        (Limits(), 10, 0, None),
        (Limits(max_age=7 * DAY), 1, None, "older than stills_max_age"),
        (Limits(max_age=10 * DAY), 1, None, None),
        (Limits(max_count=3), 4, None, "more than stills_max_count"),
        (Limits(max_count=3), 3, None, None),
        (Limits(min_free_bytes=100), 2, 99, "less free disk than stills_min_free_mb"),
        (Limits(min_free_bytes=100), 2, 100, None),
        (Limits(min_free_bytes=100), 1, 0, None),  # the newest is kept
        (Limits(min_free_bytes=100), 2, None, None),  # free space unknown: delete nothing for it
    ],
)
def test_why_delete(limits: Limits, count: int, free: int | None, why: str | None) -> None:
    assert why_delete(OLD, count, limits, now=NOW, free=lambda: free, keep=1) == why
