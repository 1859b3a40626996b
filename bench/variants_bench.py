"""What stream variants cost the full-size viewers: 50 viewers over 3 variants, one camd, the same run.

camd serves a camera-like MJPEG recording (1280x720@30 with sensor noise, passed
through). 20 full-size viewers are measured three times on the same daemon:
alone, then while 15 viewers watch ``?width=320`` and 15 ``?width=480&quality=low``
(two loadclient processes), then alone again. For each: the full-size viewers'
fps and frame age, camd's CPU over the window divided by the frames they received
(so in the middle phase it includes making the variants), and the variant encodes.

    .venv/bin/python -m bench.variants_bench                 # ~1.5 min
    .venv/bin/python -m bench.variants_bench --window 20 --server-cpu 1 --client-cpu 0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadclient import Result, cpu_seconds, process_tree, run_load
from bench.run import PASSWORD, REPO, USER, Factory, Server, Source, make_recording

FULL = ("/stream.mjpg", 20)
OTHERS = (("/stream.mjpg?width=320", 15), ("/stream.mjpg?width=480&quality=low", 15))


def measure_full(server: Server, args: argparse.Namespace) -> tuple[Result, dict[str, float]]:
    """The 20 full-size viewers for a window, and camd's counters over the same span."""
    before, started = server.status(), time.monotonic()
    result = run_load(
        server.url(FULL[0]), FULL[1], user=USER, password=PASSWORD,
        window=args.window, warmup=args.warmup, server_pid=server.pid,
    )  # fmt: skip
    after, spent = server.status(), time.monotonic() - started
    counters = {
        "seconds": spent,
        "encodes": after["jpeg_encodes"] - before["jpeg_encodes"],
        "frames_sent": after["stream_frames_sent"] - before["stream_frames_sent"],
        "captured": after["frames_captured"] - before["frames_captured"],
    }
    return result, counters


def others_start(server: Server, args: argparse.Namespace) -> list[subprocess.Popen[str]]:
    """The variant viewers, in loadclient processes that outlast the full-size window."""
    window = 2 * args.window + args.warmup + 30
    procs = []
    for path, count in OTHERS:
        argv = [
            sys.executable, "-m", "bench.loadclient", server.url(path), "-n", str(count), "--user", USER,
            "--window", f"{window:g}", "--warmup", "1", "--json",
        ]  # fmt: skip
        if args.client_cpu >= 0:
            argv += ["--cpu", str(args.client_cpu)]
        env = {**os.environ, "BENCH_PASSWORD": PASSWORD}  # not on the command line, where ps shows it
        procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 30
    while server.status()["viewers"] < sum(count for _, count in OTHERS):
        if time.monotonic() > deadline:
            raise RuntimeError("the variant viewers did not connect")
        time.sleep(0.2)
    return procs


def others_stop(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    results = []
    for proc in procs:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        lines = out.strip().splitlines()
        results.append(json.loads(lines[-1]) if lines else {})
    return results


def row(label: str, result: Result, counters: dict[str, float]) -> str:
    """One phase: the full-size viewers' figures over the window, the encodes over the whole run."""
    return (
        f"| {label} | {result.fps_median:.1f} | {result.latency_p50_ms:.0f} / {result.latency_p95_ms:.0f} "
        f"| {result.server_cpu_pct:.0f} % | {result.server_cpu_ms_per_frame:.3f} "
        f"| {counters['encodes'] / counters['seconds']:.1f} | {counters['captured'] / counters['seconds']:.1f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--noise", type=float, default=6.0, help="sensor-like noise of the recording (std-dev)")
    parser.add_argument("--server-cpu", type=int, default=1, help="core for camd (-1: no pinning)")
    parser.add_argument("--client-cpu", type=int, default=0, help="core for the load clients (-1: no pinning)")
    args = parser.parse_args(argv)
    if args.client_cpu >= 0:
        os.sched_setaffinity(0, {args.client_cpu})
    with tempfile.TemporaryDirectory(prefix="camd-variants-") as tmp:
        workdir = Path(tmp)
        recording = make_recording(workdir / "camera.avi", 1280, 720, 30, noise=args.noise)
        source = Source(f"file:{recording}", 1280, 720, 30)
        factory = Factory(workdir, args.server_cpu if args.server_cpu >= 0 else None, 64)
        server = factory.camd(source).start()
        rows = []
        try:
            alone, counted = measure_full(server, args)
            rows.append(row("20 full-size viewers alone", alone, counted))
            server.settle()
            procs = others_start(server, args)
            try:
                time.sleep(args.warmup)
                pids = process_tree(server.pid)
                cpu_before, started = cpu_seconds(pids), time.monotonic()
                time.sleep(args.window)
                variants_pct = 100 * (cpu_seconds(pids) - cpu_before) / (time.monotonic() - started)
                shared, counted = measure_full(server, args)
            finally:
                others = others_stop(procs)
            rows.append(row("the same 20 with 15 x 320 and 15 x 480 low watched", shared, counted))
            # The full-size viewers' own share: camd's CPU with them minus with the variant viewers alone.
            full_pct = shared.server_cpu_pct - variants_pct
            per_frame = 10 * full_pct * shared.window_s / max(shared.frames, 1)  # % of a core over the window -> ms
            server.settle()
            again, counted = measure_full(server, args)
            rows.append(row("20 full-size viewers alone again", again, counted))
            status = server.status()
        finally:
            server.stop()
    print(f"\ncamd on {source.label} (camera-like recording, passthrough), {args.window:g} s windows\n")
    print(
        "| phase | full-size fps | full-size frame age p50 / p95 ms | camd CPU | camd CPU ms per full-size frame "
        "| variant encodes/s | source fps |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"\nthe 30 variant viewers alone: camd {variants_pct:.0f} % of a core; so the 20 full-size viewers' own share "
        f"next to them: {full_pct:.0f} % = {per_frame:.3f} ms per full-size frame "
        f"(alone: {alone.server_cpu_ms_per_frame:.3f} and {again.server_cpu_ms_per_frame:.3f})"
    )
    for (path, count), got in zip(OTHERS, others, strict=True):
        if got:
            print(
                f"\n{count} viewers of {path}: fps median {got['fps_median']}, frame age p95 {got['latency_p95_ms']} ms"
            )
    served = {
        f"{r['width']}/q{r['quality']}": (r["encodes"], r["bytes"], r["frames_sent"])
        for r in status["variants"]["served"]
    }
    for name, (encodes, size, frames) in served.items():
        if encodes:
            print(f"variant {name}: {encodes} encodes, {size / encodes / 1024:.1f} KB each, {frames} frames sent")
    print(f"decodes by scale: {status['variants']['decodes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
