"""What a viewer gets from camd over a slow link: a network namespace whose loopback is shaped with tc.

The harness makes a network namespace of its own (``ip netns add``), brings its
loopback up, lowers lo's MTU to 1500 (tbf drops packets larger than its burst,
and lo's default MTU is 64 KB) and shapes it with a token bucket (``tc qdisc add
dev lo root tbf rate 2mbit burst 32kbit latency 400ms``). camd and the viewer both
run inside it (``ip netns exec``) and talk over 127.0.0.1, so nothing outside the
namespace is touched and every byte of the stream, and its ACKs, crosses the
shaped link. The viewer is bench.loadclient: fps, and frame age (receive time
minus the part's X-Timestamp) p50/p95. The namespace, and every process in it,
is removed at the end, also on Ctrl-C or SIGTERM. Needs root (CAP_NET_ADMIN and
CAP_SYS_ADMIN) and iproute2.

    sudo .venv/bin/python -m bench.slowlink                          # test pattern and recording, full size
    sudo .venv/bin/python -m bench.slowlink --rate 5mbit --sources test --paths '/stream.mjpg?width=640'

``SlowLink`` is also the way to run anything else inside the shaped namespace
(e.g. a browser for the live page): ``link.popen([...])``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bench.run import make_recording
from camd.users import set_password

REPO = Path(__file__).resolve().parent.parent
USER = "bench"
FAST_WARMUP = ("--warmup-delay", "0.2", "--warmup-frames", "3", "--warmup-max", "2")
MTU = 1500


@dataclass(frozen=True)
class Shape:
    """A tbf token bucket: rate, bucket size and the longest a packet may queue (tc's own units)."""

    rate: str = "2mbit"
    burst: str = "32kbit"  # 4 KB: a few 1500-byte packets, so that the rate holds over short spans too
    latency: str = "400ms"  # the queue the bucket may build, like a home router's buffer

    def tc_args(self) -> list[str]:
        return ["tbf", "rate", self.rate, "burst", self.burst, "latency", self.latency]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class SlowLink:
    """A network namespace with a shaped loopback; a context manager that always removes it."""

    def __init__(self, shape: Shape, name: str | None = None) -> None:
        self.shape = shape
        self.name = name or f"camd-slow-{os.getpid()}-{secrets.token_hex(2)}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> SlowLink:
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "link", "set", "lo", "mtu", str(MTU))
            subprocess.run(
                ["ip", "netns", "exec", self.name, "tc", "qdisc", "add", "dev", "lo", "root", *self.shape.tc_args()],
                check=True, capture_output=True, text=True, timeout=10,
            )  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as a command line that runs inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the namespace; it is stopped when the link is closed."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.command(argv), **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace to the end (bounded by ``timeout``), its output as text."""
        return subprocess.run(
            self.command(argv), check=False, timeout=timeout, capture_output=True, text=True, **kwargs
        )

    def qdisc(self) -> str:
        """tc's view of the shaped loopback: the settings in effect and what was sent and dropped."""
        return self.run(["tc", "-s", "qdisc", "show", "dev", "lo"], timeout=10).stdout.strip()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Anything still inside is a child of ours (ip netns exec only runs what we started): end it by pid.
        listed = subprocess.run(
            ["ip", "netns", "pids", self.name], check=False, capture_output=True, text=True, timeout=10
        )
        for pid in listed.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True, timeout=10)


# --- inside the namespace -----------------------------------------------------------------------


def sent_so_far(url: str) -> int:
    """Print camd's stream frames and bytes sent so far (its /api/status), as JSON; run inside the namespace."""
    token = base64.b64encode(f"{USER}:{os.environ['BENCH_PASSWORD']}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        status = json.load(response)
    print(json.dumps({"frames": status["stream_frames_sent"], "bytes": status["stream_bytes_sent"]}))
    return 0


def wait_healthy(url: str, timeout: float) -> int:
    """Poll ``url`` (camd's /healthz) until it answers 200; run inside the namespace. Exit status 0 when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return 0
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    return 1


# --- a run --------------------------------------------------------------------------------------


@contextmanager
def camd_in(link: SlowLink, workdir: Path, source: str, password: str, extra: Sequence[str] = ()) -> Iterator[int]:
    """camd inside the namespace on 127.0.0.1:8080 with ``source`` at 1280x720@30; yields its pid once healthy."""
    state = workdir / f"state-{secrets.token_hex(3)}"
    state.mkdir()
    users = workdir / "users"
    if not users.exists():
        set_password(users, USER, password)
    log_path = state / "camd.log"
    argv = [
        sys.executable, "-m", "camd", "run", "--source", source, "--width", "1280", "--height", "720", "--fps", "30",
        "--host", "127.0.0.1", "--port", "8080", "--state-dir", str(state), "--users-file", str(users),
        *FAST_WARMUP, *extra,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = link.popen(
            argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    probe = [sys.executable, "-m", "bench.slowlink", "--wait-healthy", "http://127.0.0.1:8080/healthz"]
    if link.run(probe, timeout=90, cwd=REPO).returncode != 0:
        raise RuntimeError(f"camd did not become healthy inside {link.name}; see {log_path}")
    try:
        yield proc.pid  # ip netns exec execs the command: this is camd's own pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def view(link: SlowLink, path: str, password: str, pid: int, window: float, warmup: float) -> dict[str, Any]:
    """One viewer inside the namespace for ``window`` seconds (after ``warmup``): bench.loadclient's figures."""
    argv = [
        sys.executable, "-m", "bench.loadclient", f"http://127.0.0.1:8080{path}", "-n", "1", "--user", USER,
        "--window", f"{window:g}", "--warmup", f"{warmup:g}", "--pid", str(pid), "--json",
    ]  # fmt: skip
    env = {**os.environ, "BENCH_PASSWORD": password}  # not on the command line, where ps would show it
    done = link.run(argv, timeout=window + warmup + 60, cwd=REPO, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the viewer failed: {done.stderr.strip()}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def sent(link: SlowLink, password: str) -> dict[str, int]:
    """camd's stream frames and bytes sent so far, asked from inside the namespace."""
    argv = [sys.executable, "-m", "bench.slowlink", "--sent-so-far", "http://127.0.0.1:8080/api/status"]
    done = link.run(argv, timeout=30, cwd=REPO, env={**os.environ, "BENCH_PASSWORD": password})
    if done.returncode != 0:
        raise RuntimeError(f"camd's /api/status did not answer: {done.stderr.strip()}")
    return dict(json.loads(done.stdout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", default=Shape.rate, help="tbf rate (default %(default)s)")
    parser.add_argument("--burst", default=Shape.burst, help="tbf burst (default %(default)s)")
    parser.add_argument("--latency", default=Shape.latency, help="tbf latency (default %(default)s)")
    parser.add_argument("--sources", default="test,recording", help="comma-separated: test, recording")
    parser.add_argument(
        "--paths", default="/stream.mjpg", help="comma-separated stream paths to view, e.g. '/stream.mjpg?width=640'"
    )
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured per viewer")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds the viewer watches before measuring")
    parser.add_argument("--noise", type=float, default=6.0, help="sensor-like noise of the recording (std-dev)")
    # The harness's own helpers, run inside the namespace.
    parser.add_argument("--wait-healthy", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--sent-so-far", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.wait_healthy:
        return wait_healthy(args.wait_healthy, 60)
    if args.sent_so_far:
        return sent_so_far(args.sent_so_far)
    if os.geteuid() != 0:
        print("bench.slowlink needs root: it makes a network namespace and shapes its loopback", file=sys.stderr)
        return 2

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    shape = Shape(args.rate, args.burst, args.latency)
    password = secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix="camd-slowlink-") as tmp, SlowLink(shape) as link:
        workdir = Path(tmp)
        print(f"namespace {link.name}: lo mtu {MTU}, tc qdisc {' '.join(shape.tc_args())}", flush=True)
        labels = {
            "test": "test pattern 1280x720@30",
            "recording": f"camera-like MJPEG recording 1280x720@30 (noise {args.noise:g}, passthrough)",
        }
        print("| source | path | fps | frame age p50 ms | frame age p95 ms | longest gap ms | KB/frame | Mbit/s |")
        print("|---|---|---|---|---|---|---|---|")
        for name in args.sources.split(","):
            label = labels[name.strip()]
            spec = "test"
            if name.strip() == "recording":
                spec = f"file:{make_recording(workdir / 'camera.avi', 1280, 720, 30, noise=args.noise)}"
            with camd_in(link, workdir, spec, password) as pid:
                for path in args.paths.split(","):
                    before = sent(link, password)
                    got = view(link, path, password, pid, args.window, args.warmup)
                    after = sent(link, password)
                    frames, size = after["frames"] - before["frames"], after["bytes"] - before["bytes"]
                    kb = size / frames / 1024 if frames else float("nan")
                    mbit = got["fps_median"] * kb * 1024 * 8 / 1e6
                    print(
                        f"| {label} | `{path}` | {got['fps_median']:.1f} | {got['latency_p50_ms']:.0f} "
                        f"| {got['latency_p95_ms']:.0f} | {got['max_gap_ms']:.0f} | {kb:.1f} | {mbit:.2f} |",
                        flush=True,
                    )
        print(f"\ntc after the runs:\n{link.qdisc()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
