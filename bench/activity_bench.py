"""Activity figures: events found in recordings with known truth, CPU per analysed picture, camd's idle CPU
with and without activity, and the build of a day's timelapse.

    python -m bench.activity_bench [--skip-daemon] [--skip-timelapse] [--seconds 30] [--stills 288]

1. The recordings of ``bench.activity_scenes`` (a noisy static room, an object that
   moves three times, a slow light ramp, 50 Hz flicker, a lamp switched on) at 640x480
   and 1280x720, as camera JPEGs: every event found with its start and end error, and
   the active samples in each part that must stay quiet.
2. CPU per analysed picture from a camera JPEG (1/8 decode + score), 640x480 and 1280x720,
   back to back and at one picture per 0.2 s as in the daemon; then the 1/8 decode of one
   720p picture at JPEG qualities 60-95 (its cost follows the bytes: libjpeg-turbo must
   entropy-decode every coefficient even to drop it), and the raw-frame path.
3. camd's CPU while idle (no viewer) on a 1280x720 MJPEG recording at 15 fps, with
   ``--no-activity`` and with activity at 5 per second, alternating runs.
4. A timelapse of 288 stills at 1280x720: build time, size, and ffprobe's frame count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.activity_scenes import SWITCH_AT, TIMELINE, frames, truth
from bench.loadclient import cpu_seconds
from camd.activity import Detector, Events, small_grey
from camd.timelapse import build
from camd.users import set_password

REPO = Path(__file__).resolve().parent.parent
FPS = 5.03


def events_part(size: tuple[int, int]) -> None:
    detector, events = Detector(rate=FPS), Events(quiet=5.0)
    found = []
    active_in: dict[str, int] = {}
    switch_times = []
    for when, jpeg in frames(*size, fps=FPS):
        sample = detector.feed(small_grey(jpeg=jpeg))  # type: ignore[arg-type]
        if sample.light_switch:
            switch_times.append(when)
        for part in TIMELINE:
            if part.start <= when < part.end and sample.active:
                active_in[part.name] = active_in.get(part.name, 0) + 1
        _, ended = events.feed(when, sample)
        if ended is not None:
            found.append(ended)
    last = events.close()
    if last is not None:
        found.append(last)
    print(f"\n{size[0]}x{size[1]} camera JPEG, {FPS} pictures/s, default settings")
    print(f"  true events: {len(truth())}, events found: {len(found)}")
    for (start, end), event in zip(truth(), found, strict=False):
        print(
            f"  truth {start:5.1f}-{end:5.1f} s  found {event.start:6.2f}-{event.end or 0:6.2f} s  "
            f"start error {event.start - start:+.2f} s, end error {(event.end or 0) - end:+.2f} s, "
            f"peak {event.peak:.3f}"
        )
    for part in TIMELINE:
        if not part.moving:
            print(f"  {part.name:28s} active samples: {active_in.get(part.name, 0)}")
    print(f"  light switch at {SWITCH_AT:g} s: seen as a light switch at {switch_times} (relearn, no event)")


def _timed(pictures: list[bytes], detector: Detector, count: int, pause: float = 0.0) -> tuple[list[float], ...]:
    """CPU ms of the 1/8 decode and of the score for ``count`` pictures, ``pause`` seconds apart."""
    decode, score = [], []
    for number in range(count):
        if pause:
            time.sleep(pause)
        jpeg = pictures[number % len(pictures)]
        started = time.process_time_ns()
        small = small_grey(jpeg=jpeg)
        decoded = time.process_time_ns()
        detector.feed(small)  # type: ignore[arg-type]
        done = time.process_time_ns()
        decode.append((decoded - started) / 1e6)
        score.append((done - decoded) / 1e6)
    return decode, score


def cpu_part(size: tuple[int, int], repeats: int = 400) -> None:
    pictures = [jpeg for _, (_, jpeg) in zip(range(60), frames(*size, fps=FPS), strict=False)]
    detector = Detector(rate=FPS)
    _timed(pictures[:10], detector, 10)
    kb = statistics.mean(len(jpeg) for jpeg in pictures) / 1024
    # Back to back (warm caches), then at the daemon's 5 a second, where other work has run in between.
    for label, count, pause in (("back to back", repeats, 0.0), ("one per 0.2 s", 30, 0.2)):
        decode, score = _timed(pictures, detector, count, pause)
        total = [a + b for a, b in zip(decode, score, strict=True)]
        print(
            f"  {size[0]}x{size[1]} ({kb:.0f} KB JPEG), {label}: {statistics.median(total):.3f} ms CPU per analysed "
            f"picture (median; 1/8 decode {statistics.median(decode):.3f} ms, score {statistics.median(score):.3f} "
            f"ms), p90 {statistics.quantiles(total, n=10)[-1]:.3f} ms"
        )


def decode_floor_part(size: tuple[int, int] = (1280, 720), repeats: int = 200) -> None:
    """What the 1/8 decode costs against the JPEG's size: the entropy decoding of every byte sets it."""
    _, jpeg = next(iter(frames(*size, fps=FPS)))
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)

    def median_ms(data: bytes) -> float:
        buffer = np.frombuffer(data, np.uint8)
        times = []
        for _ in range(repeats):
            started = time.process_time_ns()
            cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8)
            times.append((time.process_time_ns() - started) / 1e6)
        return statistics.median(times)

    tiny = cv2.imencode(".jpg", picture[:16, :16])[1].tobytes()
    print(f"  fixed cost (a 16x16 JPEG): {median_ms(tiny) * 1000:.0f} us")
    for quality in (60, 70, 80, 90, 95):
        data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        took = median_ms(data)
        print(f"  {size[0]}x{size[1]} quality {quality}: {len(data) / 1024:5.0f} KB, 1/8 decode {took:.3f} ms "
              f"({took * 1000 / (len(data) / 1024):.1f} us per KB)")  # fmt: skip
    pixels = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for _, (_, data) in
              zip(range(20), frames(*size, fps=FPS), strict=False)]  # fmt: skip
    times = []
    for number in range(repeats):
        started = time.process_time_ns()
        small_grey(pixels=pixels[number % len(pixels)])
        times.append((time.process_time_ns() - started) / 1e6)
    print(f"  {size[0]}x{size[1]} raw frame (YUYV/BGR sources), downscale alone: {statistics.median(times):.3f} ms")


def recording(path: Path, size: tuple[int, int], fps: int, seconds: int) -> Path:
    """An MJPEG .avi of the scene's camera JPEGs, byte for byte (ffmpeg copies them), so the daemon
    analyses the same pictures as part 2; camd passes them through as a camera's."""
    pictures = b"".join(jpeg for _, (_, jpeg) in zip(range(fps * seconds), frames(*size, fps=fps), strict=False))
    command = ["ffmpeg", "-v", "error", "-y", "-f", "mjpeg", "-framerate", str(fps), "-i", "-", "-c:v", "copy"]
    command.append(str(path))
    subprocess.run(command, input=pictures, check=True)
    return path


def daemon_cpu(source: Path, extra: list[str], seconds: float) -> tuple[float, dict[str, object]]:
    """camd's CPU (percent of one core) over ``seconds`` once it is live, and its activity status."""
    import requests

    with tempfile.TemporaryDirectory() as state:
        set_password(Path(state) / "users", "bench", "bench-password")
        command = [
            sys.executable, "-m", "camd", "run", "--host", "127.0.0.1", "--port", "0", "--state-dir", state,
            "--source", f"file:{source}", "--stills-interval", "1h", "--warmup-delay", "0.2", *extra,
        ]  # fmt: skip
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            port = None
            assert proc.stdout is not None
            for line in proc.stdout:
                if "serving on" in line:
                    port = int(line.split("127.0.0.1:")[1].split("/")[0])
                    break
            assert port is not None, "camd did not start"
            auth = ("bench", "bench-password")
            deadline = time.monotonic() + 30
            while requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "camd did not get healthy"
                time.sleep(0.2)
            time.sleep(3)  # past the activity detector's learning
            before, started = cpu_seconds([proc.pid]), time.monotonic()
            time.sleep(seconds)
            used = cpu_seconds([proc.pid]) - before
            percent = 100 * used / (time.monotonic() - started)
            status = requests.get(f"http://127.0.0.1:{port}/api/status", auth=auth, timeout=5).json()
            return percent, status.get("activity") or {}
        finally:
            proc.terminate()
            proc.wait(10)


def idle_part(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = recording(Path(folder) / "scene.avi", (1280, 720), 15, 20)
        capture = cv2.VideoCapture(str(source))
        capture.set(cv2.CAP_PROP_FORMAT, -1)  # the stored JPEGs, undecoded
        sizes = []
        while (read := capture.read())[0]:
            sizes.append(read[1].size)
        print(f"  the recording: {len(sizes)} camera JPEGs of {statistics.mean(sizes) / 1024:.0f} KB on average")
        runs: dict[str, list[float]] = {"off": [], "on": []}
        activity: dict[str, object] = {}
        for _ in range(2):
            runs["off"].append(daemon_cpu(source, ["--no-activity"], seconds)[0])
            percent, activity = daemon_cpu(source, ["--activity-rate", "5"], seconds)
            runs["on"].append(percent)
        off, on = statistics.mean(runs["off"]), statistics.mean(runs["on"])
        print(f"  without activity: {off:.2f}% of a core  (runs {', '.join(f'{v:.2f}' for v in runs['off'])})")
        print(f"  with activity 5/s: {on:.2f}% of a core  (runs {', '.join(f'{v:.2f}' for v in runs['on'])})")
        print(f"  difference: {on - off:+.2f} percentage points; camd's own figure: {activity.get('ms_per_sample')} "
              f"ms per analysed picture over {activity.get('samples')} pictures")  # fmt: skip


def timelapse_part(count: int) -> None:
    ffprobe = shutil.which("ffprobe")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = []
        scene = frames(1280, 720, fps=count / 80.0, quality=90)  # spread over the whole timeline
        for number, (_, jpeg) in enumerate(scene):
            if number >= count:
                break
            path = root / f"{number:04d}.jpg"
            path.write_bytes(jpeg)
            files.append(path)
        out = root / "day.webm"
        started, cpu = time.monotonic(), time.process_time()
        written = build(out, files, 10.0)
        took, cpu_used = time.monotonic() - started, time.process_time() - cpu
        print(f"  {len(files)} stills at 1280x720 -> {written} frames in {took:.1f} s wall, {cpu_used:.1f} s CPU "
              f"({out.stat().st_size // 1024} KB)")  # fmt: skip
        if ffprobe:
            result = subprocess.run(
                [ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                 "stream=nb_read_frames,codec_name,width,height", "-of", "json", str(out)],
                capture_output=True, text=True, timeout=120, check=True,
            )  # fmt: skip
            stream = json.loads(result.stdout)["streams"][0]
            print(f"  ffprobe: {stream['codec_name']} {stream['width']}x{stream['height']}, "
                  f"{stream['nb_read_frames']} frames (stills: {len(files)})")  # fmt: skip
        else:
            print("  ffprobe is not installed: frame count not checked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--skip-timelapse", action="store_true")
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring window per daemon run")
    parser.add_argument("--stills", type=int, default=288)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("1. Events in recordings with known truth")
    for size in ((640, 480), (1280, 720)):
        events_part(size)
    print("\n2. CPU per analysed picture from a camera JPEG")
    for size in ((640, 480), (1280, 720)):
        cpu_part(size)
    print("\n2b. The 1/8 decode against the JPEG's size")
    decode_floor_part()
    if not args.skip_daemon:
        print("\n3. camd idle (no viewer), 1280x720 MJPEG at 15 fps, passthrough")
        idle_part(args.seconds)
    if not args.skip_timelapse:
        print(f"\n4. Timelapse of {args.stills} stills")
        timelapse_part(args.stills)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
