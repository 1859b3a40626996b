"""The one benchmark command: camd against the floor and the classic Flask pattern.

Starts each server in turn on its own core (the load client gets the other),
opens N viewers with bench.loadclient, and prints Markdown tables: per-viewer
fps against the source's, server CPU per delivered frame, how that compares with
the floor in the same run, latency, RSS. Then the recording with passthrough on
and off, the 1280x720 passthrough saving, and what an idle camd costs.

    python -m bench.run                                  # everything, main matrix twice (~15 min)
    python -m bench.run --quick                          # a short smoke run (~2 min)
    python -m bench.run --sections main --counts 50,200 --repeat 3 --window 15
    python -m bench.run --sections startup,storm,slow --slow-stalls 30,10   # misbehaving viewers (~2.5 min)

The last three sections (not run by default) drive viewers through
bench.scenarios: 20 viewers that stop reading while 10 read on (RSS, kernel TCP
memory, what a resuming viewer gets), 200 viewers connecting at once 10 times,
and Popen to the first live frame with the default warm-up.

Figures are medians and ratios from a shared 2-core machine; "others" is the CPU
the rest of the machine used during the window, i.e. the noise.
"""

from __future__ import annotations

import argparse
import base64
import collections
import functools
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.loadclient import CLOSED, Result, build_request, cpu_seconds, process_tree, rss_bytes, run_load
from bench.scenarios import Pump, all_started, first_live, fps_between, max_gap
from camd.http.fanout import WRITE_TIMEOUT
from camd.sources import TestPatternSource
from camd.users import set_password

REPO = Path(__file__).resolve().parent.parent
USER = "bench"
PASSWORD = secrets.token_urlsafe(12)
FAST_WARMUP = ("--warmup-delay", "0.2", "--warmup-frames", "3", "--warmup-max", "2")


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process under test, pinned to ``cpu``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    cpu: int | None
    is_camd: bool = False
    cwd: Path = REPO
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def launch(self) -> float:
        """Start the process without waiting for it; the wall-clock time just before Popen."""
        cpu = self.cpu
        pin: Callable[[], None] | None = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        with open(self.log, "wb") as log:
            started = time.time()
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=pin,  # noqa: PLW1509 (run.py has no threads of its own)
            )  # fmt: skip
        return started

    def start(self, timeout: float = 60.0) -> Server:
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout:g}s; see {self.log}")

    def _ready(self) -> bool:
        path = "/healthz" if self.is_camd else "/stream.mjpg"
        try:
            with urllib.request.urlopen(self._request(path), timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _request(self, path: str) -> urllib.request.Request:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return urllib.request.Request(self.url(path), headers={"Authorization": f"Basic {token}"})

    def healthz(self) -> int:
        """camd's /healthz status code (0 when it does not answer)."""
        try:
            with urllib.request.urlopen(self._request("/healthz"), timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, urllib.error.URLError):
            return 0

    def status(self) -> dict[str, Any]:
        """camd's /api/status."""
        with urllib.request.urlopen(self._request("/api/status"), timeout=5) as response:
            return dict(json.load(response))

    def settle(self, timeout: float = 15.0) -> None:
        """After a load run: wait until the server has let every viewer go."""
        if not self.is_camd:
            time.sleep(1.0)
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.status()["viewers"]:
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class Source:
    """What the servers stream: the test pattern, or an MJPEG recording."""

    spec: str  # "test" or "file:PATH"
    width: int
    height: int
    fps: float
    passthrough: str = "auto"

    @property
    def label(self) -> str:
        kind = "test" if self.spec == "test" else "recording"
        if "noise" in self.spec:
            kind += " with noise"
        return f"{kind} {self.width}x{self.height}@{self.fps:g}"


class Factory:
    """Builds the three kinds of server for a source."""

    def __init__(
        self, workdir: Path, server_cpu: int | None, max_viewers: int, baseline_tree: Path | None = None
    ) -> None:
        self.workdir = workdir
        self.baseline_tree = baseline_tree
        self.server_cpu = server_cpu
        self.max_viewers = max_viewers
        self.users = workdir / "users"
        set_password(self.users, USER, PASSWORD)
        self.count = 0

    def _log(self, name: str) -> Path:
        self.count += 1
        return self.workdir / f"{self.count:02d}-{name}.log"

    def camd(self, source: Source, tree: Path = REPO, warmup: tuple[str, ...] = FAST_WARMUP) -> Server:
        port = free_port()
        state = self.workdir / f"state{self.count}"
        state.mkdir()
        argv = [
            sys.executable, "-m", "camd", "run", "--source", source.spec, "--width", str(source.width),
            "--height", str(source.height), "--fps", f"{source.fps:g}", "--port", str(port), "--host", "127.0.0.1",
            "--state-dir", str(state), "--users-file", str(self.users),
            "--max-clients", str(max(300, self.max_viewers)), "--passthrough", source.passthrough, *warmup,
        ]  # fmt: skip
        name = "camd" if source.spec == "test" else f"camd pt {source.passthrough}"
        if tree != REPO:
            name += " (base)"
        env = {"PYTHONUNBUFFERED": "1"}
        return Server(name, argv, env, port, self._log("camd"), self.server_cpu, is_camd=True, cwd=tree)

    def camd_base(self, source: Source) -> Server:
        """camd from another checkout (``--baseline-tree``), to measure a change against."""
        if self.baseline_tree is None:
            raise SystemExit("camd-base needs --baseline-tree")
        return self.camd(source, self.baseline_tree)

    def floor(self, source: Source) -> Server:
        port = free_port()
        argv = [
            sys.executable, "-m", "bench.floor_server", "--port", str(port), "--user", USER, "--source", source.spec,
            "--width", str(source.width), "--height", str(source.height), "--fps", f"{source.fps:g}",
        ]  # fmt: skip
        return Server("floor", argv, {"BENCH_PASSWORD": PASSWORD}, port, self._log("floor"), self.server_cpu)

    def classic(self, source: Source) -> Server:
        port = free_port()
        argv = [
            sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", str(self.max_viewers + 16),
            "-b", f"127.0.0.1:{port}", "--no-control-socket", "--log-level", "warning", "bench.classic_server:app",
        ]  # fmt: skip
        env = {
            "BENCH_SOURCE": source.spec, "BENCH_WIDTH": str(source.width), "BENCH_HEIGHT": str(source.height),
            "BENCH_FPS": f"{source.fps:g}", "BENCH_USER": USER, "BENCH_PASSWORD": PASSWORD,
        }  # fmt: skip
        return Server("classic", argv, env, port, self._log("classic"), self.server_cpu)

    def make(self, kind: str, source: Source) -> Server:
        makers = {"camd": self.camd, "camd-base": self.camd_base, "floor": self.floor, "classic": self.classic}
        return makers[kind](source)


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    run: int
    server: str
    source: str
    viewers: int
    result: Result
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def src_fps(self) -> float:
        """The source's rate: what camd captured when known, else what the viewers saw."""
        return float(self.extra.get("captured_fps") or self.result.source_fps)


def measure(server: Server, viewers: int, args: argparse.Namespace, section: str, run: int, source: Source) -> Row:
    before = server.status() if server.is_camd else {}
    started = time.monotonic()
    result = run_load(
        server.url("/stream.mjpg"), viewers, user=USER, password=PASSWORD,
        window=args.window, warmup=args.warmup, server_pid=server.pid,
    )  # fmt: skip
    extra: dict[str, Any] = {}
    if server.is_camd:
        after = server.status()
        # Counters span the whole load run (connect, settle, window), not just the window.
        spent = time.monotonic() - started
        extra = {
            "captured_fps": round((after["frames_captured"] - before["frames_captured"]) / spent, 2),
            "encodes": after["jpeg_encodes"] - before["jpeg_encodes"],
            "passthrough": after["camera"]["passthrough"],
        }
    row = Row(section, run, server.name, source.label, viewers, result, extra)
    print(f"  {section} run {run} {server.name:<12} {result.line()}", flush=True)
    if result.client_cpu_pct > 80:
        print(f"  warning: the load client used {result.client_cpu_pct}% of its core: it may be the bottleneck")
    server.settle()
    return row


def run_servers(
    factory: Factory, kinds: Iterable[str], source: Source, counts: list[int], args: argparse.Namespace,
    section: str, run: int,
) -> list[Row]:  # fmt: skip
    rows = []
    for kind in kinds:
        server = factory.make(kind, source).start()
        try:
            rows += [measure(server, n, args, section, run, source) for n in counts]
        finally:
            server.stop()
    return rows


# --- tables -------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:.{digits}f}"  # NaN shows as "-"


def marginal(rows: list[Row], row: Row) -> float:
    """CPU per extra delivered frame above one viewer: the per-viewer cost without capture and encode."""
    base = next((r for r in rows if r.server == row.server and r.run == row.run and r.viewers == 1), None)
    if base is None or row.viewers == 1:
        return float("nan")
    extra_frames = row.result.frames / row.result.window_s - base.result.frames / base.result.window_s
    extra_cpu = (row.result.server_cpu_pct - base.result.server_cpu_pct) / 100
    return 1000 * extra_cpu / extra_frames if extra_frames > 0 else float("nan")


def table(rows: list[Row], baseline: str = "floor") -> str:
    head = (
        "| N | server | fps/viewer min / median | source fps | min ÷ source | CPU % | CPU ms/frame "
        f"| marginal ms/frame | ÷ {baseline} | p95 latency ms | max gap ms | RSS MB | client CPU % | others % "
        "| invalid / errors |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for row in sorted(rows, key=lambda r: (r.viewers, r.server)):
        r = row.result
        base = next(
            (b for b in rows if b.server == baseline and b.viewers == row.viewers and b.run == row.run), None
        )  # fmt: skip
        versus = r.server_cpu_ms_per_frame / base.result.server_cpu_ms_per_frame if base else float("nan")
        lines.append(
            f"| {row.viewers} | {row.server} | {r.fps_min:.1f} / {r.fps_median:.1f} | {row.src_fps:.1f} "
            f"| {100 * r.fps_min / row.src_fps if row.src_fps else float('nan'):.0f}% | {r.server_cpu_pct:.1f} "
            f"| {r.server_cpu_ms_per_frame:.3f} | {fmt(marginal(rows, row), 3)} | {fmt(versus, 2)} "
            f"| {r.latency_p95_ms:.1f} | {r.max_gap_ms:.0f} | {r.server_rss_mb:.0f} | {r.client_cpu_pct:.0f} "
            f"| {r.others_cpu_pct:.0f} | {sum(r.invalid.values())} / {sum(r.errors.values())} |"
        )
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main_targets(rows: list[Row], fps: float) -> list[str]:
    """Issue 5's targets, checked on one run's rows."""
    out = []
    camd = {r.viewers: r for r in rows if r.server == "camd"}
    floor = {r.viewers: r for r in rows if r.server == "floor"}
    classic = {r.viewers: r for r in rows if r.server == "classic"}
    for n, row in sorted(camd.items()):
        share = row.result.fps_min / row.src_fps if row.src_fps else 0.0
        out.append(
            f"camd N={n}: slowest viewer {100 * share:.0f}% of source fps (target >= 95%): {verdict(share >= 0.95)}"
        )
    for n in (50, 200):
        if n in camd and n in floor:
            ratio = camd[n].result.server_cpu_ms_per_frame / floor[n].result.server_cpu_ms_per_frame
            out.append(f"camd N={n}: CPU/frame {ratio:.2f}x the floor (target <= 2x): {verdict(ratio <= 2)}")
        if n in classic and n in floor:
            ratio = classic[n].result.server_cpu_ms_per_frame / floor[n].result.server_cpu_ms_per_frame
            out.append(f"classic N={n}: CPU/frame {ratio:.2f}x the floor (target >= 4x): {verdict(ratio >= 4)}")
            m_ratio = marginal(rows, classic[n]) / marginal(rows, floor[n])
            out.append(
                f"classic N={n}: marginal CPU/frame {fmt(m_ratio, 2)}x the floor's (capture and encode left out)"
            )
    if 50 in camd:
        p95, budget = camd[50].result.latency_p95_ms, 1000 / fps
        out.append(f"camd N=50: p95 latency {p95:.1f} ms (target <= {budget:.1f} ms): {verdict(p95 <= budget)}")
    return out


# --- sections -----------------------------------------------------------------------------------


def noise_suffix(args: argparse.Namespace) -> str:
    return f"-noise{args.recording_noise:g}" if args.recording_noise else ""


def make_recording(path: Path, width: int, height: int, fps: float, noise: float = 0.0, frames: int = 150) -> Path:
    """An MJPEG .avi of camd's test pattern, as a camera in MJPG mode would give it.

    ``noise`` adds Gaussian noise of that standard deviation (0-255 scale) to every
    frame, as a camera sensor does: its JPEGs are then larger, like a real camera's.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MJPEG")
    pattern = TestPatternSource(width, height, fps, label="RECORDING")
    rng = np.random.default_rng(0)
    for number in range(frames):
        image = pattern.render(number, time.time() + number / fps)
        if noise:
            grain = rng.normal(0.0, noise, image.shape)
            image = np.clip(image + grain, 0, 255).astype(np.uint8)
        writer.write(image)
    writer.release()
    return path


def section_main(factory: Factory, args: argparse.Namespace, report: list[str], rows: list[Row]) -> None:
    source = Source("test", 640, 480, args.fps)
    for run in range(1, args.repeat + 1):
        print(f"main matrix, run {run} of {args.repeat}: {source.label}", flush=True)
        got = run_servers(factory, args.servers, source, args.counts, args, "main", run)
        rows += got
        report.append(f"### Main matrix, run {run}: {source.label}, {args.window:g} s windows\n")
        report.append(table(got))
        report.append("\n" + "\n".join(f"- {line}" for line in main_targets(got, args.fps)) + "\n")
    runs = [[r for r in rows if r.section == "main" and r.run == run] for run in range(1, args.repeat + 1)]
    if len(runs) > 1:
        report.append("### Main matrix, median over the runs (CPU ms/frame, and ÷ floor)\n")
        report.append(median_table(runs))


def median_table(runs: list[list[Row]]) -> str:
    keys = sorted({(r.viewers, r.server) for run in runs for r in run})
    lines = [
        "| N | server | CPU ms/frame per run | median | ÷ floor per run | median ÷ floor |",
        "|---|---|---|---|---|---|",
    ]
    for n, server in keys:
        values, ratios = [], []
        for run in runs:
            row = next((r for r in run if r.viewers == n and r.server == server), None)
            floor = next((r for r in run if r.viewers == n and r.server == "floor"), None)
            if row is None:
                continue
            values.append(row.result.server_cpu_ms_per_frame)
            if floor is not None:
                ratios.append(row.result.server_cpu_ms_per_frame / floor.result.server_cpu_ms_per_frame)
        lines.append(
            f"| {n} | {server} | {', '.join(f'{v:.3f}' for v in values)} | {statistics.median(values):.3f} "
            f"| {', '.join(f'{v:.2f}' for v in ratios)} "
            f"| {fmt(statistics.median(ratios) if ratios else float('nan'), 2)} |"
        )
    return "\n".join(lines) + "\n"


def section_recording(factory: Factory, args: argparse.Namespace, report: list[str], rows: list[Row]) -> None:
    path = make_recording(
        factory.workdir / f"rec-640x480{noise_suffix(args)}.avi", 640, 480, args.fps, args.recording_noise
    )
    got = []
    print("recording 640x480: camd with passthrough on and off", flush=True)
    for passthrough in ("on", "off"):
        source = Source(f"file:{path}", 640, 480, args.fps, passthrough)
        got += run_servers(factory, ["camd"], source, args.recording_counts, args, "recording", 1)
    if args.recording_baselines:
        source = Source(f"file:{path}", 640, 480, args.fps)
        got += run_servers(factory, ["floor", "classic"], source, args.recording_counts, args, "recording", 1)
    rows += got
    report.append(f"### MJPEG recording 640x480@{args.fps:g}, passthrough on and off, {args.window:g} s windows\n")
    report.append(
        "floor = the recording's JPEG packets sent as they are; classic = decode + encode per frame. "
        "encodes = camd's jpeg_encodes during the load run.\n"
    )
    report.append(table(got))
    report.append("")
    for row in got:
        if row.extra:
            report.append(f"- {row.server} N={row.viewers}: passthrough={row.extra['passthrough']}, "
                          f"{row.extra['encodes']} JPEG encodes, {row.extra['captured_fps']} fps captured")  # fmt: skip
    report.append("")


def section_passthrough(factory: Factory, args: argparse.Namespace, report: list[str], rows: list[Row]) -> None:
    path = make_recording(
        factory.workdir / f"rec-1280x720{noise_suffix(args)}.avi", 1280, 720, args.fps, args.recording_noise
    )
    print("recording 1280x720: passthrough on vs off at 1 viewer", flush=True)
    got = {}
    for passthrough in ("on", "off"):
        source = Source(f"file:{path}", 1280, 720, args.fps, passthrough)
        (got[passthrough],) = run_servers(factory, ["camd"], source, [1], args, "passthrough", 1)
    rows += got.values()
    on, off = got["on"], got["off"]
    ratio = on.result.server_cpu_pct / off.result.server_cpu_pct
    report.append(f"### Passthrough at 1280x720@{args.fps:g}, 1 viewer, {args.window:g} s window\n")
    report.append(
        "| passthrough | fps | CPU % | CPU ms/frame | JPEG encodes | p95 latency ms |\n|---|---|---|---|---|---|"
    )
    for name, row in got.items():
        r = row.result
        report.append(f"| {name} | {r.fps_min:.1f} | {r.server_cpu_pct:.1f} | {r.server_cpu_ms_per_frame:.2f} "
                      f"| {row.extra['encodes']} | {r.latency_p95_ms:.1f} |")  # fmt: skip
    report.append(f"\n- CPU on ÷ off = {ratio:.2f} (target <= 0.25): {verdict(ratio <= 0.25)}\n")


def section_idle(factory: Factory, args: argparse.Namespace, report: list[str], rows: list[Row]) -> None:
    print("idle: camd with no viewers vs the capture alone", flush=True)
    path = make_recording(
        factory.workdir / f"rec-idle-1280x720{noise_suffix(args)}.avi", 1280, 720, args.fps, args.recording_noise
    )
    sources = [Source("test", 640, 480, args.fps), Source(f"file:{path}", 1280, 720, args.fps, "on")]
    report.append(f"### Idle: no viewers, {args.idle_window:g} s\n")
    report.append("| source | camd CPU % | capture alone CPU % | jpeg_encodes readings | encodes stayed 0 |")
    report.append("|---|---|---|---|---|")
    for source in sources:
        server = factory.camd(source).start()
        try:
            time.sleep(1.0)
            readings, cpu0 = [server.status()["jpeg_encodes"]], cpu_seconds([server.pid])
            started = time.monotonic()
            for _ in range(4):
                time.sleep(args.idle_window / 4)
                readings.append(server.status()["jpeg_encodes"])
            cpu = cpu_seconds([server.pid]) - cpu0
            camd_pct = 100 * cpu / (time.monotonic() - started)
        finally:
            server.stop()
        alone = capture_alone(source, args, factory.server_cpu)
        stayed = all(value == 0 for value in readings)
        report.append(f"| {source.label} | {camd_pct:.1f} | {alone:.1f} | {readings} | {verdict(stayed)} |")
        print(f"  idle {source.label}: camd {camd_pct:.1f}% vs capture alone {alone:.1f}%; encodes {readings}")
    report.append("")


def capture_alone(source: Source, args: argparse.Namespace, cpu: int | None) -> float:
    argv = [
        sys.executable, "-m", "bench.capture_alone", "--source", source.spec, "--width", str(source.width),
        "--height", str(source.height), "--fps", f"{source.fps:g}", "--seconds", f"{args.idle_window:g}",
    ]  # fmt: skip
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    output = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True).stdout
    return float(json.loads(output)["cpu_pct"])


# --- misbehaving viewers: slow, storm, start-up (issue 5 targets 6, 7 and 8) ---------------------


def stream_request(server: Server) -> tuple[tuple[str, int], bytes]:
    return build_request(server.url("/stream.mjpg"), USER, PASSWORD)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def tcp_memory_mb() -> float:
    """Kernel memory of all TCP sockets (``mem`` of /proc/net/sockstat, pages): buffers RSS does not show."""
    with open("/proc/net/sockstat") as handle:
        for line in handle:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return float("nan")


def slow_once(factory: Factory, args: argparse.Namespace, stall: float, run: int) -> dict[str, Any]:
    """Readers keep reading while other viewers stop calling recv() for ``stall`` s, then resume."""
    source = Source("test", 640, 480, args.fps)
    server = factory.camd(source).start()
    pump: Pump | None = None
    try:
        time.sleep(2.0)
        pids = process_tree(server.pid)
        address, request = stream_request(server)
        pump = Pump(address, request)
        readers = pump.open(args.slow_readers)
        stalled = pump.open(args.slow_stalled, rcvbuf=args.slow_rcvbuf)
        pump.run(30.0, until=functools.partial(all_started, readers + stalled, 3))
        rss_start = rss_bytes(pids) / 2**20
        for viewer in stalled:
            pump.pause(viewer)
        before, t0 = server.status(), time.time()
        rss_samples, viewer_counts, tcp_mem = [rss_start], [], [tcp_memory_mb()]
        next_status = t0
        while time.time() < t0 + stall:
            pump.run(min(0.5, t0 + stall - time.time()))
            rss_samples.append(rss_bytes(pids) / 2**20)
            tcp_mem.append(tcp_memory_mb())
            if time.time() >= next_status:
                viewer_counts.append((round(time.time() - t0), int(server.status()["viewers"])))
                next_status += 5.0
        t1 = time.time()
        after = server.status()
        viewer_counts.append((round(t1 - t0), int(after["viewers"])))
        src_fps = (after["frames_captured"] - before["frames_captured"]) / (t1 - t0)
        resumed_at = time.time()
        for viewer in stalled:
            pump.resume(viewer)

        def settled() -> bool:
            return all(
                v.state == CLOSED or any(h - s < 1.0 for h, _d, s in v.parts if h >= resumed_at) for v in stalled
            )

        pump.run(15.0, until=settled)
        dropped = [v for v in stalled if v.state == CLOSED]
        resumed = [v for v in stalled if v.state != CLOSED]
        stale, stale_kb, ages, waits = [], [], [], []
        for viewer in resumed:
            later = [(h, s, n) for (h, _d, s), n in zip(viewer.parts, viewer.sizes, strict=True) if h >= resumed_at]
            old = [p for p in later if p[0] - p[1] >= 1.0]
            fresh = next(((h, s) for h, s, _n in later if h - s < 1.0), None)
            stale.append(len(old))
            stale_kb.append(sum(n for _h, _s, n in old) / 1024)
            if fresh is not None:
                ages.append(1000 * (fresh[0] - fresh[1]))
                waits.append(1000 * (fresh[0] - resumed_at))
        fps = [fps_between(v, t0, t1) for v in readers]
        gaps = [max_gap(v, t0, t1) for v in readers]
        result = {
            "run": run, "stall": stall, "src_fps": src_fps, "fps_min": min(fps), "fps_median": med(fps),
            "gap_ms": 1000 * max(gaps), "rss_start": rss_start, "rss_max": max(rss_samples),
            "growth": max(rss_samples) - rss_start, "readers_closed": sum(1 for v in readers if v.state == CLOSED),
            "dropped": len(dropped), "resumed": len(resumed),
            "drop_errors": collections.Counter(v.error for v in dropped),
            "viewer_counts": viewer_counts, "tcp_mem": tcp_mem, "stale": stale, "stale_kb": stale_kb,
            "part_kb": med([n / 1024 for v in readers for n in v.sizes]), "ages": ages, "waits": waits,
        }  # fmt: skip
        print(f"  slow run {run}, stall {stall:g}s: readers fps min {min(fps):.1f} (src {src_fps:.1f}), RSS "
              f"{rss_start:.0f} -> max {max(rss_samples):.0f} MB, stalled: {len(dropped)} dropped, {len(resumed)} "
              f"resumed (first fresh part age median {med(ages):.0f} ms), server viewers {viewer_counts}",
              flush=True)  # fmt: skip
        return result
    finally:
        if pump is not None:
            pump.close()
        server.stop()


def section_slow(factory: Factory, args: argparse.Namespace, report: list[str], rows: list[Row]) -> None:
    print(f"slow viewers: {args.slow_stalled} stop reading, {args.slow_readers} keep reading", flush=True)
    results = [
        slow_once(factory, args, stall, run) for run in range(1, args.slow_repeat + 1) for stall in args.slow_stalls
    ]
    report.append(
        f"### Slow viewers: {args.slow_stalled} viewers stop reading (SO_RCVBUF {args.slow_rcvbuf}), "
        f"{args.slow_readers} keep reading; test 640x480@{args.fps:g} (parts of "
        f"{med([r['part_kb'] for r in results]):.0f} KB); write timeout {WRITE_TIMEOUT:g} s\n"
    )
    report.append(
        "| run | stall s | readers fps min / median (source) | min ÷ source | readers max gap ms "
        "| RSS MB: start → max (growth) | kernel TCP memory MB: start → max | server viewers (s: count) "
        "| stalled dropped / resumed "
        "| resumed: stale parts (age > 1 s) drained, median (KB) | resumed: first fresh part age ms (median / max) "
        "| … received ms after resume (median) |"
    )
    report.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = []
    for r in results:
        share = r["fps_min"] / r["src_fps"]
        counts_text = ", ".join(f"{t}: {n}" for t, n in r["viewer_counts"])
        report.append(
            f"| {r['run']} | {r['stall']:g} | {r['fps_min']:.1f} / {r['fps_median']:.1f} ({r['src_fps']:.1f}) "
            f"| {100 * share:.0f}% | {r['gap_ms']:.0f} | {r['rss_start']:.0f} → {r['rss_max']:.0f} "
            f"({r['growth']:+.1f}) | {r['tcp_mem'][0]:.1f} → {max(r['tcp_mem']):.1f} "
            f"| {counts_text} | {r['dropped']} / {r['resumed']} "
            f"| {fmt(med(r['stale']), 0)} ({fmt(med(r['stale_kb']), 0)}) "
            f"| {fmt(med(r['ages']), 0)} / {fmt(max(r['ages'], default=float('nan')), 0)} "
            f"| {fmt(med(r['waits']), 0)} |"
        )
        fresh_ok = all(age <= 1000 * 2 / args.fps + 50 for age in r["ages"]) and len(r["ages"]) == r["resumed"]
        handled = r["dropped"] + len(r["ages"]) == args.slow_stalled
        lines += [
            f"run {r['run']}, stall {r['stall']:g} s: RSS growth {r['growth']:+.1f} MB (target <= 16 MB): "
            f"{verdict(r['growth'] <= 16)}",
            f"run {r['run']}, stall {r['stall']:g} s: slowest reader {100 * share:.0f}% of source fps "
            f"(target >= 95%): {verdict(share >= 0.95 and r['readers_closed'] == 0)}",
            f"run {r['run']}, stall {r['stall']:g} s: stalled viewers: {r['dropped']} dropped by the server "
            f"({dict(r['drop_errors'])}), {len(r['ages'])} resumed with a fresh frame (age <= 2 frame intervals "
            f"+ 50 ms once the buffered parts drained): {verdict(handled and fresh_ok)}",
        ]
    report.append("\n" + "\n".join(f"- {line}" for line in lines) + "\n")


def section_storm(factory: Factory, args: argparse.Namespace, report: list[str], rows: list[Row]) -> None:
    n = args.storm_viewers
    print(f"storm: {n} viewers connecting at once, {args.storm_rounds} rounds", flush=True)
    source = Source("test", 640, 480, args.fps)
    server = factory.camd(source).start()
    report.append(f"### Storms: {n} viewers connect at once, {args.storm_rounds} rounds; test 640x480@{args.fps:g}\n")
    report.append(
        "| round | got a frame | last first frame s | median first frame s | errors | capture fps in round "
        "| frames_captured after | /healthz after | viewers gone s |"
    )
    report.append("|---|---|---|---|---|---|---|---|---|")
    ok_all, captured_prev = True, int(server.status()["frames_captured"])
    try:
        for round_no in range(1, args.storm_rounds + 1):
            address, request = stream_request(server)
            pump = Pump(address, request)
            t0 = time.time()
            crowd = pump.open(n)
            pump.run(args.storm_deadline, until=functools.partial(all_started, crowd))
            firsts = [v.parts[0][1] - t0 for v in crowd if v.parts]
            errors = collections.Counter(v.error for v in crowd if not v.parts)
            errors.update(e for e in pump.errors.elements() if e)
            spent = time.time() - t0
            pump.close()
            health = server.healthz()
            t_closed = time.time()
            server.settle()
            gone = time.time() - t_closed
            captured = int(server.status()["frames_captured"])
            fps = (captured - captured_prev) / (time.time() - t0)
            ok = len(firsts) == n and health == 200 and captured > captured_prev
            ok_all = ok_all and ok
            captured_prev = captured
            err_text = ", ".join(f"{k}: {c}" for k, c in errors.items()) or "0"
            report.append(
                f"| {round_no} | {len(firsts)}/{n} | {max(firsts, default=float('nan')):.2f} "
                f"| {med(firsts):.2f} | {err_text} | {fps:.1f} | {captured} | {health} | {gone:.1f} |"
            )
            print(f"  storm round {round_no}: {len(firsts)}/{n} got a frame, last after "
                  f"{max(firsts, default=float('nan')):.2f}s (round {spent:.1f}s), errors {err_text}, "
                  f"healthz {health}, frames_captured {captured}", flush=True)  # fmt: skip
        alive = server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
    report.append(
        f"\n- every viewer got a frame in every round, /healthz 200 and frames_captured rising after each, "
        f"the daemon still running at the end ({alive}): {verdict(ok_all and alive)}\n"
    )


WARMUP_LINE = re.compile(r"warm-up discarded (\d+) frames in ([\d.]+)s")


def startup_once(factory: Factory, args: argparse.Namespace, run: int) -> dict[str, Any]:
    """Process start to the first live frame received by a viewer that connects as early as it can."""
    source = Source("test", 640, 480, args.fps)
    server = factory.camd(source, warmup=())
    address, request = stream_request(server)
    pump = Pump(address, request)
    attempts, viewer = 0, None
    first_any = live_at = float("nan")
    started = server.launch()
    try:
        deadline = time.monotonic() + args.startup_deadline
        while time.monotonic() < deadline:
            assert server.proc is not None
            if server.proc.poll() is not None:
                raise RuntimeError(f"camd exited with {server.proc.returncode}; see {server.log}")
            if viewer is None or viewer.state == CLOSED:
                if viewer is not None:
                    time.sleep(0.01)
                (viewer,) = pump.open(1)
                attempts += 1
            pump.run(0.01)
            if viewer.parts and first_any != first_any:
                first_any = viewer.parts[0][1] - started
            index = first_live(viewer.parts)
            if index is not None:
                live_at = viewer.parts[index][1] - started
                break
        status = server.status()
    finally:
        pump.close()
        server.stop()
    found = WARMUP_LINE.search(server.log.read_text(errors="replace"))
    warm_frames, warm_s = (int(found.group(1)), float(found.group(2))) if found else (0, float("nan"))
    result = {
        "run": run, "attempts": attempts, "first_any": first_any, "live_at": live_at, "warm_frames": warm_frames,
        "warm_s": warm_s, "live_state_at": status["camera"]["since"] - started, "settled": status["warmup"]["settled"],
    }  # fmt: skip
    print(f"  start-up run {run}: first part {first_any:.2f}s, first live frame {live_at:.2f}s after Popen; "
          f"warm-up {warm_frames} frames in {warm_s:.2f}s; {attempts} connection attempts", flush=True)  # fmt: skip
    return result


def section_startup(factory: Factory, args: argparse.Namespace, report: list[str], rows: list[Row]) -> None:
    print("start-up: Popen to the first live frame, default warm-up", flush=True)
    results = [startup_once(factory, args, run) for run in range(1, args.startup_runs + 1)]
    report.append(
        f"### Start-up: Popen to the first live frame at a viewer, default warm-up, test 640x480@{args.fps:g}\n"
    )
    report.append(
        "| run | connection attempts | first part (placeholder) s | first live frame s | camera live (status) s "
        "| warm-up (log) | budget = warm-up + 1 s | overhead s | within |"
    )
    report.append("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        budget = r["warm_s"] + 1
        report.append(
            f"| {r['run']} | {r['attempts']} | {r['first_any']:.2f} | {r['live_at']:.2f} | {r['live_state_at']:.2f} "
            f"| {r['warm_frames']} frames in {r['warm_s']:.2f} s | {budget:.2f} | {r['live_at'] - r['warm_s']:.2f} "
            f"| {verdict(r['live_at'] <= budget)} |"
        )
    live = med([r["live_at"] for r in results])
    budget = med([r["warm_s"] + 1 for r in results])
    overhead = med([r["live_at"] - r["warm_s"] for r in results])
    report.append(
        f"\n- median first live frame {live:.2f} s after Popen, median budget {budget:.2f} s, median time "
        f"beyond the warm-up {overhead:.2f} s (target <= 1 s): {verdict(overhead <= 1)}\n"
    )


SECTIONS = {"main": section_main, "recording": section_recording, "passthrough": section_passthrough,
            "idle": section_idle, "slow": section_slow, "storm": section_storm,
            "startup": section_startup}  # fmt: skip


def counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sections", default="main,recording,passthrough,idle", help="comma-separated: " + ", ".join(SECTIONS)
    )
    parser.add_argument("--servers", default="camd,floor,classic", help="for the main matrix (also: camd-base)")
    parser.add_argument(
        "--baseline-tree", type=Path, help="a checkout of camd to run as camd-base, e.g. from git archive"
    )
    parser.add_argument("--counts", type=counts, default=[1, 10, 50, 200], help="viewer counts of the main matrix")
    parser.add_argument("--recording-counts", type=counts, default=[1, 10, 50])
    parser.add_argument(
        "--recording-noise", type=float, default=0.0, help="sensor-like noise (std-dev) in the recordings; try 6"
    )
    parser.add_argument("--recording-baselines", action="store_true", help="also floor and classic on the recording")
    parser.add_argument("--repeat", type=int, default=2, help="runs of the main matrix")
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per point")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds after every viewer has its first frame")
    parser.add_argument("--idle-window", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="3 s windows, 1 run, 1 and 10 viewers")
    parser.add_argument("--client-cpu", type=int, default=0, help="core for the load client (-1: no pinning)")
    parser.add_argument("--server-cpu", type=int, default=1, help="core for the server under test")
    parser.add_argument("--slow-stalls", type=floats, default=[30.0], help="stall lengths of the slow section, s")
    parser.add_argument("--slow-readers", type=int, default=10)
    parser.add_argument("--slow-stalled", type=int, default=20)
    parser.add_argument("--slow-rcvbuf", type=int, default=4096, help="SO_RCVBUF of the stalled viewers")
    parser.add_argument("--slow-repeat", type=int, default=1)
    parser.add_argument("--storm-viewers", type=int, default=200)
    parser.add_argument("--storm-rounds", type=int, default=10)
    parser.add_argument("--storm-deadline", type=float, default=30.0, help="s for every viewer to get a frame")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--startup-deadline", type=float, default=60.0)
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--markdown", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.window, args.warmup, args.idle_window, args.repeat = 3.0, 1.0, 4.0, 1
        args.counts, args.recording_counts = [1, 10], [1]
    args.servers = args.servers.split(",")
    server_cpu: int | None = args.server_cpu
    if args.client_cpu < 0 or (os.cpu_count() or 1) < 2:
        server_cpu = None
    else:
        os.sched_setaffinity(0, {args.client_cpu})

    report = [
        f"## camd stream benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n",
        f"`python -m bench.run {' '.join(sys.argv[1:] if argv is None else argv)}` on {os.cpu_count()} cores, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; client on core {args.client_cpu}, "
        f"server on core {server_cpu}. CPU ms/frame = server CPU time ÷ frames delivered to all viewers; "
        "marginal = the same above the 1-viewer run (capture and encode left out).\n",
    ]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="camd-bench-") as tmp:
        factory = Factory(Path(tmp), server_cpu, max([*args.counts, *args.recording_counts]), args.baseline_tree)
        for name in args.sections.split(","):
            SECTIONS[name](factory, args, report, rows)
    report.append(f"Load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    text = "\n".join(report)
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps([{**asdict(row), "result": asdict(row.result)} for row in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
