"""Stills figures: CPU time to save one still, and the gallery and /api/stills with 20,000 stills on disk.

    python -m bench.stills_bench [--saves 40] [--stills 20000] [--requests 30]

Part 1 saves stills through the real writer (banner on, quality 90, fsync and
rename included) from a hub fed with test-pattern frames, and reports CPU and
wall time per still. Part 2 fills a folder with valid names across many days
(hard links of one small JPEG), starts a real daemon on it, and times requests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import requests

from camd.hub import LIVE, Hub
from camd.settings import load
from camd.sources import TestPatternSource
from camd.stills import StillsWriter
from camd.users import set_password

REPO = Path(__file__).resolve().parent.parent


def bench_save(width: int, height: int, saves: int, passthrough: bool) -> tuple[float, float, int]:
    """(CPU ms, wall ms, bytes) per still."""
    with tempfile.TemporaryDirectory() as folder:
        settings = load({"state_dir": folder, "stills_min_free_mb": "0", "stills_interval": "1h"}, environ={})
        hub = Hub(80)
        hub.set_camera(state=LIVE, width=width, height=height, fps=30.0)
        writer = StillsWriter(settings, hub)
        writer._prepare()
        pattern = TestPatternSource(width, height, 30)
        cpu = wall = 0.0
        size = 0
        for number in range(saves):
            pixels = pattern.render(number, time.time())
            if passthrough:  # a camera JPEG: the writer must decode it first
                hub.publish(jpeg=cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
            else:
                hub.publish(pixels=pixels)
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            still = writer.take()
            cpu += time.process_time() - cpu_start
            wall += time.perf_counter() - wall_start
            size += still.size
        return cpu / saves * 1000, wall / saves * 1000, size // saves


def fill(root: Path, count: int, per_day: int = 100) -> None:
    image = TestPatternSource(160, 120, 30).render(1, time.time())
    sample = root / "sample.bin"
    root.mkdir(parents=True, exist_ok=True)
    sample.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    now = time.time()
    for number in range(count):
        day_index, slot = divmod(number, per_day)
        when = now - day_index * 86400 - slot * 300 - 3600
        folder = root / time.strftime("%Y-%m-%d", time.localtime(when))
        folder.mkdir(exist_ok=True)
        name = time.strftime("%Y%m%d-%H%M%S.jpg", time.localtime(when))
        os.link(sample, folder / name)
    sample.unlink()


def timed(session: requests.Session, url: str, repeat: int) -> tuple[float, float, int]:
    """(median ms, max ms, bytes) of ``repeat`` GETs."""
    times = []
    size = 0
    for _ in range(repeat):
        start = time.perf_counter()
        response = session.get(url, timeout=30)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.content)
    return statistics.median(times), max(times), size


def bench_gallery(count: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        started = time.perf_counter()
        fill(state / "stills", count)
        print(f"\nmade {count} stills in {time.perf_counter() - started:.1f}s")
        set_password(state / "users", "bench", "bench password")
        command = [
            sys.executable, "-m", "camd", "run", "--host", "127.0.0.1", "--port", "0", "--state-dir", str(state),
            "--source", "test", "--width", "640", "--height", "480", "--warmup-delay", "0.2",
            "--warmup-frames", "3", "--stills-interval", "1h", "--stills-max-age", "0", "--stills-min-free-mb", "0",
        ]  # fmt: skip
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            port = None
            index_line = ""
            assert proc.stdout is not None
            for line in proc.stdout:
                if "camd.stills: stills:" in line:
                    index_line = line.strip()
                if "serving on" in line:
                    port = int(line.rsplit(":", 1)[1].split("/")[0])
                    break
            assert port is not None
            print(index_line)
            base = f"http://127.0.0.1:{port}"
            session = requests.Session()
            session.auth = ("bench", "bench password")
            session.get(base + "/api/stills", timeout=30)  # the first login costs a slow hash
            listing = session.get(base + "/api/stills", timeout=30).json()
            assert listing["total"] == count, listing["total"]
            first = listing["stills"][0]
            day = first["day"]
            print(f"{'request':50} {'median ms':>10} {'max ms':>8} {'bytes':>9}")
            for label, path in [
                ("gallery /stills/ (page 1, 48 thumbs)", "/stills/"),
                ("gallery /stills/?page=400", "/stills/?page=400"),
                (f"gallery /stills/?day={day}", f"/stills/?day={day}"),
                ("/api/stills (page 1, 100 stills)", "/api/stills"),
                ("/api/stills?page=200", "/api/stills?page=200"),
                ("/api/stills?per_page=1000", "/api/stills?per_page=1000"),
                ("/api/status", "/api/status"),
                ("a still", first["url"]),
                ("a thumbnail (cached after the first)", first["url"] + "?thumb=1"),
                (f"/stills/{day}.zip (100 stills)", f"/stills/{day}.zip"),
            ]:
                median, worst, size = timed(session, base + path, repeat)
                print(f"{label:50} {median:10.2f} {worst:8.2f} {size:9d}")
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saves", type=int, default=40)
    parser.add_argument("--stills", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    print(f"{'save one still (banner, q90, fsync)':42} {'CPU ms':>8} {'wall ms':>8} {'KB':>6}")
    for width, height in ((640, 480), (1280, 720)):
        for passthrough in (False, True):
            cpu, wall, size = bench_save(width, height, args.saves, passthrough)
            label = f"{width}x{height} from {'camera JPEG' if passthrough else 'pixels'}"
            print(f"{label:42} {cpu:8.2f} {wall:8.2f} {size // 1024:6d}")
    bench_gallery(args.stills, args.requests)


if __name__ == "__main__":
    main()
