"""Retention and the index, on real files with a fake free-space function: each limit alone and together."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from camd import retention
from camd.retention import MB, Limits
from camd.stills_index import (
    StillIndex,
    base_name,
    clean_temp_files,
    day_of,
    parse,
    remove_empty_days,
    scan,
)

NOW = time.mktime((2026, 6, 15, 12, 0, 0, 0, 0, -1))
HOUR = 3600.0


def make_stills(root: Path, count: int, step: float = HOUR, size: int = 1000, end: float = NOW) -> list[Path]:
    """``count`` files with camd's names, one every ``step`` seconds up to ``end``, oldest first."""
    paths = []
    for number in range(count):
        when = end - (count - 1 - number) * step
        folder = root / day_of(when)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{base_name(when)}.jpg"
        path.write_bytes(b"\xff\xd8" + b"x" * (size - 4) + b"\xff\xd9")
        paths.append(path)
    return paths


def indexed(root: Path) -> StillIndex:
    index = StillIndex()
    index.replace(scan(root))
    return index


def run(root: Path, limits: Limits, free: int | None = None, per_delete: int = 0) -> tuple[StillIndex, list[str]]:
    """Prune ``root``; ``free`` is the free space before, growing by ``per_delete`` for each deleted file."""
    index = indexed(root)
    state = {"free": free if free is not None else 10**12}

    def free_space(_: Path) -> int:
        return state["free"]

    deleted = []
    original_remove = index.remove

    def remove(still):  # type: ignore[no-untyped-def]
        state["free"] += per_delete
        deleted.append(still.path)
        original_remove(still)

    index.remove = remove  # type: ignore[method-assign]
    retention.prune(index, root, limits, now=NOW, free_space=free_space)
    return index, deleted


def remaining(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_max_age_alone_deletes_only_older_stills_and_empty_days(tmp_path: Path) -> None:
    paths = make_stills(tmp_path, 72)  # three days, one an hour
    index, deleted = run(tmp_path, Limits(max_age=24 * HOUR))
    assert index.count() == 25  # the last 24 hours and the one exactly 24 h old
    assert len(deleted) == 47
    assert deleted == sorted(deleted, key=lambda p: p.split("/")[1])  # oldest first
    assert [p.exists() for p in paths] == [False] * 47 + [True] * 25
    assert not (tmp_path / day_of(NOW - 70 * HOUR)).exists(), "an emptied day folder stays behind"


def test_max_count_alone_keeps_the_newest(tmp_path: Path) -> None:
    paths = make_stills(tmp_path, 30)
    index, deleted = run(tmp_path, Limits(max_count=10))
    assert index.count() == 10
    assert [p.exists() for p in paths] == [False] * 20 + [True] * 10
    assert deleted[0] == str(paths[0].relative_to(tmp_path))


def test_min_free_alone_deletes_oldest_until_enough_is_free(tmp_path: Path) -> None:
    paths = make_stills(tmp_path, 20)
    # 100 MB wanted, 93 MB free, each deleted file frees 1 MB: seven go.
    _index, deleted = run(tmp_path, Limits(min_free_bytes=100 * MB), free=93 * MB, per_delete=MB)
    assert len(deleted) == 7
    assert [p.exists() for p in paths] == [False] * 7 + [True] * 13


def test_min_free_never_deletes_the_newest_still(tmp_path: Path) -> None:
    paths = make_stills(tmp_path, 5)
    index, deleted = run(tmp_path, Limits(min_free_bytes=100 * MB), free=1 * MB, per_delete=0)
    assert index.count() == 1 and paths[-1].exists()
    assert len(deleted) == 4


def test_limits_together_whichever_is_strictest_wins(tmp_path: Path) -> None:
    make_stills(tmp_path, 48)
    # Age keeps 25, count keeps 20 (28 deleted, each freeing 1 MB: 7 MB free by then),
    # and free space then wants 3 more gone.
    index, deleted = run(
        tmp_path, Limits(max_age=24 * HOUR, max_count=20, min_free_bytes=10 * MB), free=-21 * MB, per_delete=MB
    )
    assert index.count() == 17
    assert len(deleted) == 31
    newest = index.newest(limit=100)
    assert newest[0].name == f"{base_name(NOW)}.jpg"


def test_no_limits_delete_nothing(tmp_path: Path) -> None:
    make_stills(tmp_path, 10, step=400 * 86400)
    index, deleted = run(tmp_path, Limits())
    assert index.count() == 10 and deleted == []


def test_files_camd_did_not_write_are_never_deleted(tmp_path: Path) -> None:
    stills = make_stills(tmp_path, 10, step=30 * 86400)  # all but the newest far too old
    old_day = tmp_path / day_of(NOW - 9 * 30 * 86400)
    foreign = [
        old_day / "holiday.jpg",
        old_day / "20250101-000000.jpg.bak",
        old_day / "20250101-000000.JPG",
        old_day / "2025010-000000.jpg",
        old_day / "notes.txt",
        tmp_path / "20200101-000000.jpg",  # right name, wrong place
        tmp_path / "2020-01-01" / "20200102-000000.jpg",  # wrong day for its folder
        tmp_path / "misc" / "20200101-000000.jpg",
        tmp_path / ".camd-0123456789abcdef.tmp.keep",
    ]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not camd's")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.jpg"
    outside.write_bytes(b"outside")
    link_day = tmp_path / "2020-02-02"
    link_day.mkdir()
    (link_day / "20200202-000000.jpg").symlink_to(outside)
    index, deleted = run(tmp_path, Limits(max_age=HOUR, max_count=1, min_free_bytes=10**15), free=0)
    assert index.count() == 1 and stills[-1].exists(), "the index should only have held camd's stills"
    assert len(deleted) == 9
    for path in foreign:
        assert path.exists(), f"{path} was deleted"
    assert outside.read_bytes() == b"outside" and (link_day / "20200202-000000.jpg").is_symlink()
    assert old_day.exists(), "a day folder with other files in it must stay"


def test_leftover_temp_files_are_cleaned_and_only_those(tmp_path: Path) -> None:
    make_stills(tmp_path, 3)
    day = tmp_path / day_of(NOW)
    leftovers = [day / ".camd-0123456789abcdef.tmp", tmp_path / ".camd-fedcba9876543210.tmp"]
    kept = [day / ".camd-xyz.tmp", day / "camd-0123456789abcdef.tmp", tmp_path / "other.tmp"]
    for path in leftovers + kept:
        path.write_bytes(b"partial")
    assert clean_temp_files(tmp_path) == 2
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in kept)


def test_empty_day_folders_are_removed_at_start(tmp_path: Path) -> None:
    (tmp_path / "2026-01-01").mkdir()
    (tmp_path / "2026-01-02").mkdir()
    (tmp_path / "2026-01-02" / "mine.txt").write_text("x")
    (tmp_path / "other").mkdir()
    remove_empty_days(tmp_path)
    assert not (tmp_path / "2026-01-01").exists()
    assert (tmp_path / "2026-01-02").exists() and (tmp_path / "other").exists()


def test_index_pages_newest_first_by_day_with_suffixes(tmp_path: Path) -> None:
    paths = make_stills(tmp_path, 50, step=HOUR)
    extra = paths[-1].with_name(paths[-1].stem + "-1.jpg")
    extra.write_bytes(b"x" * 10)
    extra2 = paths[-1].with_name(paths[-1].stem + "-10.jpg")
    extra2.write_bytes(b"x" * 10)
    extra3 = paths[-1].with_name(paths[-1].stem + "-2.jpg")
    extra3.write_bytes(b"x" * 10)
    index = indexed(tmp_path)
    assert index.count() == 53
    first = index.newest(0, 4)
    assert [s.name for s in first] == [extra2.name, extra3.name, extra.name, paths[-1].name]
    everything = index.newest(0, 1000)
    assert len(everything) == 53 and everything == index.newest(0, 40) + index.newest(40, 40)
    assert [s.time for s in everything] == sorted((s.time for s in everything), reverse=True)
    for day, count in index.days():
        assert index.count(day) == count == len(index.of_day(day))
        assert all(s.day == day for s in index.newest(0, 100, day=day))
    assert [d for d, _ in index.days()] == sorted({s.day for s in everything}, reverse=True)
    assert index.total_bytes == sum(p.stat().st_size for p in tmp_path.rglob("*.jpg"))
    older, newer = index.position(everything[10])
    assert older == everything[11] and newer == everything[9]


@pytest.mark.parametrize(
    ("day", "name", "ok"),
    [
        ("2026-06-15", "20260615-120000.jpg", True),
        ("2026-06-15", "20260615-120000-1.jpg", True),
        ("2026-06-15", "20260615-120000-9999.jpg", True),
        ("2026-06-15", "20260615-120000-0.jpg", False),
        ("2026-06-15", "20260615-120000-01.jpg", False),
        ("2026-06-15", "20260615-120000-10000.jpg", False),
        ("2026-06-15", "20260616-120000.jpg", False),
        ("2026-06-15", "20260615-126000.jpg", False),
        ("2026-06-15", "20260615-120000.jpeg", False),
        ("2026-06-15", "../20260615-120000.jpg", False),
        ("2026-6-15", "2026615-120000.jpg", False),
        ("2026-06-15", "20260615-120000.jpg\x00", False),
    ],
)
def test_names_that_fit_the_layout(day: str, name: str, ok: bool) -> None:
    assert (parse(day, name) is not None) is ok
