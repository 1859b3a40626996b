"""camd.stills_index: the stills layout, the in-memory index, and scanning the folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from camd.stills_index import (
    Still,
    StillIndex,
    base_name,
    clean_temp_files,
    day_of,
    parse,
    remove_empty_days,
    scan,
    stamp_time,
    with_suffix,
)


def still(day: str, clock: str, suffix: int = 0, size: int = 100) -> Still:
    stamp = day.replace("-", "") + "-" + clock
    return Still(day, with_suffix(stamp, suffix), stamp_time(stamp), size, suffix)


@pytest.mark.parametrize(
    ("day", "name", "parsed"),
    [
        ("2024-01-02", "20240102-030405.jpg", ("20240102-030405", 0)),
        ("2024-01-02", "20240102-030405-1.jpg", ("20240102-030405", 1)),
        ("2024-01-02", "20240102-030405-9999.jpg", ("20240102-030405", 9999)),
        ("2024-01-02", "20240102-030405-10000.jpg", None),  # beyond the suffixes camd writes
        ("2024-01-02", "20240102-030405-0.jpg", None),  # -0 is never written
        ("2024-01-02", "20240103-030405.jpg", None),  # another day's name in this folder
        ("2024-01-02", "20240102-250405.jpg", None),  # no 25th hour
        ("2024-02-30", "20240230-030405.jpg", None),  # no such date
        ("2024-1-02", "2024102-030405.jpg", None),
        ("2024-01-02", "20240102-030405.JPG", None),
        ("2024-01-02", "20240102-030405.jpg.tmp", None),
        ("2024-01-02", "../20240102-030405.jpg", None),
        ("../../etc", "20240102-030405.jpg", None),
    ],
)
def test_parse(day: str, name: str, parsed: tuple[str, int] | None) -> None:
    assert parse(day, name) == parsed


def test_names_follow_local_time() -> None:
    when = time.mktime((2024, 1, 2, 3, 4, 5, 0, 0, -1))
    assert day_of(when) == "2024-01-02"
    assert base_name(when) == "20240102-030405"
    assert with_suffix("20240102-030405", 0) == "20240102-030405.jpg"
    assert with_suffix("20240102-030405", 2) == "20240102-030405-2.jpg"
    assert stamp_time("20240102-030405") == when


def test_a_still_knows_its_path_stem_and_key() -> None:
    item = still("2024-01-02", "030405", suffix=3)
    assert item.path == "2024-01-02/20240102-030405-3.jpg"
    assert item.stem == "20240102-030405-3"
    assert item.key == ("20240102-030405", 3)


@pytest.fixture
def index() -> StillIndex:
    index = StillIndex()
    # Out of order on purpose: the index sorts; -10 must come after -2 (numbers, not text).
    index.replace(
        [
            still("2024-01-02", "120000", size=5),
            still("2024-01-01", "235959", size=1),
            still("2024-01-02", "120000", suffix=10, size=7),
            still("2024-01-02", "120000", suffix=2, size=6),
            still("2024-01-03", "000000", size=9),
        ]
    )
    return index


def names(stills: list[Still]) -> list[str]:
    return [item.name for item in stills]


def test_replace_orders_oldest_first_and_counts(index: StillIndex) -> None:
    assert index.count() == 5
    assert index.count("2024-01-02") == 3
    assert index.count("2024-01-04") == 0
    assert index.total_bytes == 28
    assert index.oldest() == still("2024-01-01", "235959", size=1)
    assert index.newest_one() == still("2024-01-03", "000000", size=9)
    assert names(index.of_day("2024-01-02")) == [
        "20240102-120000.jpg",
        "20240102-120000-2.jpg",
        "20240102-120000-10.jpg",
    ]
    assert index.days() == [("2024-01-03", 1), ("2024-01-02", 3), ("2024-01-01", 1)]
    # Only a whole day names a day: a month, a year or a blank is no prefix of the day's stills.
    for not_a_day in ("2024-01", "2024", "", "2024-01-02x"):
        assert index.of_day(not_a_day) == [] and index.count(not_a_day) == 0 and index.newest(day=not_a_day) == []


@pytest.mark.parametrize(
    ("offset", "limit", "day", "expected"),
    [
        (0, 2, None, ["20240103-000000.jpg", "20240102-120000-10.jpg"]),
        (2, 2, None, ["20240102-120000-2.jpg", "20240102-120000.jpg"]),
        (4, 2, None, ["20240101-235959.jpg"]),
        (5, 2, None, []),
        (99, 2, None, []),
        (0, 0, None, []),
        (-3, 1, None, ["20240103-000000.jpg"]),  # a negative offset counts as 0
        (1, 5, "2024-01-02", ["20240102-120000-2.jpg", "20240102-120000.jpg"]),
        (0, 5, "2024-01-05", []),
    ],
)
def test_newest_pages(index: StillIndex, offset: int, limit: int, day: str | None, expected: list[str]) -> None:
    assert names(index.newest(offset, limit, day)) == expected


def test_add_and_remove_keep_counts_bytes_and_order(index: StillIndex) -> None:
    added = still("2024-01-02", "060000", size=100)
    index.add(added)
    assert index.count("2024-01-02") == 4 and index.total_bytes == 128
    assert index.of_day("2024-01-02")[0] == added
    assert index.get("2024-01-02", added.name) == added
    index.remove(added)
    assert index.count("2024-01-02") == 3 and index.total_bytes == 28
    assert index.get("2024-01-02", added.name) is None


def test_adding_the_same_path_again_replaces_it(index: StillIndex) -> None:
    index.add(still("2024-01-03", "000000", size=50))
    assert index.count() == 5
    assert index.total_bytes == 28 - 9 + 50


def test_removing_the_last_still_of_a_day_forgets_the_day(index: StillIndex) -> None:
    index.remove(still("2024-01-01", "235959", size=1))
    assert [day for day, _ in index.days()] == ["2024-01-03", "2024-01-02"]


def test_removing_a_still_that_was_replaced_meanwhile_changes_nothing(index: StillIndex) -> None:
    index.remove(still("2024-01-03", "000000", size=1234))  # same path, not the same still
    assert index.count() == 5 and index.total_bytes == 28


def test_position_gives_the_neighbours(index: StillIndex) -> None:
    older, newer = index.position(still("2024-01-02", "120000", suffix=2, size=6))
    assert older is not None and older.name == "20240102-120000.jpg"
    assert newer is not None and newer.name == "20240102-120000-10.jpg"
    first_older, _ = index.position(still("2024-01-01", "235959", size=1))
    _, last_newer = index.position(still("2024-01-03", "000000", size=9))
    assert first_older is None and last_newer is None


def test_an_empty_index_answers_every_question() -> None:
    index = StillIndex()
    assert index.oldest() is None and index.newest_one() is None
    assert index.newest() == [] and index.days() == [] and index.of_day("2024-01-01") == []
    assert index.position(still("2024-01-01", "000000")) == (None, None)


def write(path: Path, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_scan_finds_camd_files_only(tmp_path: Path) -> None:
    write(tmp_path / "2024-01-02" / "20240102-030405.jpg", 11)
    write(tmp_path / "2024-01-02" / "20240102-030405-1.jpg", 12)
    write(tmp_path / "2024-01-02" / "holiday.jpg")
    write(tmp_path / "2024-01-02" / "20240103-030405.jpg")  # wrong day for this folder
    (tmp_path / "2024-01-02" / "20240102-040000.jpg").mkdir()  # a folder with a still's name
    outside = write(tmp_path / "elsewhere.jpg")
    (tmp_path / "2024-01-02" / "20240102-050000.jpg").symlink_to(outside)
    write(tmp_path / "notaday" / "20240102-030405.jpg")
    (tmp_path / "2024-01-05").symlink_to(tmp_path / "2024-01-02", target_is_directory=True)
    found = sorted(scan(tmp_path), key=lambda item: item.key)
    assert [(item.path, item.size) for item in found] == [
        ("2024-01-02/20240102-030405.jpg", 11),
        ("2024-01-02/20240102-030405-1.jpg", 12),
    ]
    assert found[1].suffix == 1
    assert found[0].time == stamp_time("20240102-030405")


def test_scan_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert scan(tmp_path / "nothing here") == []


def test_clean_temp_files_removes_only_camd_temp_files(tmp_path: Path) -> None:
    ours = [
        write(tmp_path / ".camd-0123456789abcdef.tmp"),
        write(tmp_path / "2024-01-02" / ".camd-fedcba9876543210.tmp"),
    ]
    theirs = [
        write(tmp_path / ".camd-short.tmp"),
        write(tmp_path / "2024-01-02" / "20240102-030405.jpg"),
        write(tmp_path / "other" / ".camd-0123456789abcdef.tmp"),  # not a day folder
    ]
    assert clean_temp_files(tmp_path) == 2
    assert not any(path.exists() for path in ours)
    assert all(path.exists() for path in theirs)


def test_remove_empty_days_keeps_anything_with_files_in_it(tmp_path: Path) -> None:
    (tmp_path / "2024-01-01").mkdir()
    write(tmp_path / "2024-01-02" / "notes.txt")
    (tmp_path / "not-a-day").mkdir()
    remove_empty_days(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["2024-01-02", "not-a-day"]


def test_remove_empty_days_ignores_names_that_are_not_days(tmp_path: Path) -> None:
    (tmp_path / "2024-01-01").mkdir()
    (tmp_path / "empty").mkdir()
    remove_empty_days(tmp_path, ["2024-01-01", "empty", "../x"])
    assert os.listdir(tmp_path) == ["empty"]
