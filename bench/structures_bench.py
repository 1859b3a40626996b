"""Micro-bench of the two in-memory structures on the stills path: the thumbnail LRU and the stills index.

    python -m bench.structures_bench [--stills 20000] [--rounds 5]

The index is filled with ``--stills`` stills over many days (100 a day), then
timed at what the daemon does with it: the start-up fill, a save (add at the
end), retention (remove the oldest), a gallery page, a day, a still's
neighbours. The thumbnail cache is timed at hits and misses with thumbnail-sized
entries and evictions. Each figure is the best of ``--rounds`` runs, in
microseconds per operation (the start-up fill in milliseconds).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from camd.stills_index import Still, StillIndex
from camd.web.thumbs import CACHE_BYTES, ThumbnailCache

PER_DAY = 100


def stills(count: int) -> list[Still]:
    """``count`` stills, 100 a day from 2024-01-01 on, 10 minutes apart, names as the writer makes them."""
    made = []
    start = time.mktime((2024, 1, 1, 0, 0, 0, 0, 0, -1))
    for number in range(count):
        when = start + (number // PER_DAY) * 86400 + (number % PER_DAY) * 600
        day = time.strftime("%Y-%m-%d", time.localtime(when))
        name = time.strftime("%Y%m%d-%H%M%S.jpg", time.localtime(when))
        made.append(Still(day, name, when, 40_000))
    return made


def best(rounds: int, run: Callable[[], int]) -> float:
    """Seconds per operation: ``run`` returns how many it did; the fastest of ``rounds`` runs."""
    figures = []
    for _ in range(rounds):
        started = time.perf_counter()
        done = run()
        figures.append((time.perf_counter() - started) / done)
    return min(figures)


def bench_index(count: int, rounds: int) -> dict[str, float]:
    everything = stills(count + 1000 * rounds)
    base, later = everything[:count], iter(everything[count:])
    shuffled = random.Random(1).sample(base, len(base))  # scan() finds them in directory order
    probes = random.Random(2).sample(base, 1000)
    days = sorted({still.day for still in probes})

    def filled() -> StillIndex:
        index = StillIndex()
        index.replace(shuffled)
        return index

    def fill() -> int:
        filled()
        return 1

    index = filled()

    def saves_and_retention() -> int:
        for _ in range(1000):
            index.add(next(later))  # each round saves newer stills than the last
            oldest = index.oldest()
            assert oldest is not None
            index.remove(oldest)
        return 2000

    def pages() -> int:
        for offset in range(0, 48 * 200, 48):
            index.newest(offset, 48)
        return 200

    def of_day() -> int:
        for day in days:
            index.of_day(day)
        return len(days)

    def position() -> int:
        for still in probes:
            index.position(still)
        return len(probes)

    fill_seconds = best(rounds, fill)
    return {
        "index: fill (ms)": fill_seconds * 1e3,
        "index: add + remove oldest (us/op)": best(rounds, saves_and_retention) * 1e6,
        "index: gallery page (us)": best(rounds, pages) * 1e6,
        "index: one day (us)": best(rounds, of_day) * 1e6,
        "index: neighbours (us)": best(rounds, position) * 1e6,
    }


def bench_thumbs(rounds: int) -> dict[str, float]:
    size = 12_000  # a 320-wide thumbnail at quality 70
    keys = [f"2024-01-01/{number:06d}.jpg" for number in range(3 * CACHE_BYTES // size)]  # 3x what fits
    data = b"x" * size
    order = random.Random(3).choices(keys, k=50_000)

    def hits() -> int:
        cache = ThumbnailCache()
        for key in keys[:1000]:
            cache.put(key, data)
        for key in order:
            cache.get(keys[hash(key) % 1000])
        return len(order)

    def churn() -> int:
        cache = ThumbnailCache()
        for key in order:
            if cache.get(key) is None:
                cache.put(key, data)
        return len(order)

    return {
        "thumbs: hit (us)": best(rounds, hits) * 1e6,
        "thumbs: get or put, evicting (us)": best(rounds, churn) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stills", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for name, value in {**bench_index(args.stills, args.rounds), **bench_thumbs(args.rounds)}.items():
        print(f"{name:40s} {value:9.2f}")


if __name__ == "__main__":
    main()
