"""camd.stats: named counters bumped from many threads."""

from __future__ import annotations

import threading

from camd.stats import Counters


def test_an_unknown_counter_reads_zero() -> None:
    assert Counters().get("never_bumped") == 0


def test_incr_adds_whole_and_fractional_amounts() -> None:
    counters = Counters()
    counters.incr("frames")
    counters.incr("frames", 4)
    counters.incr("seconds", 0.25)
    counters.incr("seconds", 0.5)
    assert counters.get("frames") == 5
    assert counters.get("seconds") == 0.75


def test_snapshot_strips_the_prefix_and_leaves_other_counters_out() -> None:
    counters = Counters()
    counters.incr("dropped_flat", 2)
    counters.incr("dropped_bad_jpeg")
    counters.incr("reconnects")
    assert counters.snapshot("dropped_") == {"bad_jpeg": 1, "flat": 2}
    assert list(counters.snapshot("dropped_")) == ["bad_jpeg", "flat"]  # sorted by name
    assert counters.snapshot() == {"dropped_bad_jpeg": 1, "dropped_flat": 2, "reconnects": 1}


def test_reading_a_counter_does_not_create_it() -> None:
    counters = Counters()
    counters.get("dropped_flat")
    assert counters.snapshot("dropped_") == {}


def test_no_bump_is_lost_between_threads() -> None:
    counters = Counters()

    def bump() -> None:
        for _ in range(2000):
            counters.incr("n")

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters.get("n") == 16000
