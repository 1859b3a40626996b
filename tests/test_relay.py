"""The README's relay: the unit's ffmpeg publishes camd's stream to nginx-rtmp; its HLS plays, camd sees one viewer.

Runs the README's two nginx blocks (the rtmp block and the HLS location) in a
real nginx with Debian's RTMP module, and the ExecStart of
``systemd/camd-relay.service`` as it is, with only the input URL, the RTMP port and
the HLS directory pointed at the test's. Prints camd's CPU with the publisher
attached and how old the newest frame of each HLS segment is when the segment
reaches the playlist.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from tests.support import nginx, require_tool, stop_process, wait_until
from tests.support.daemon import FAST_WARMUP, PASSWORD, REPO, USER, Daemon

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
README_HLS_PATH = "/var/lib/nginx/camd-hls"
README_RTMP_LISTEN = "127.0.0.1:1935"
UNIT = REPO / "systemd" / "camd-relay.service"
SEGMENT = re.compile(r"^#EXTINF:([0-9.]+),?\n(?:#.*\n)*live-(\d+)\.ts$", re.MULTILINE)


def readme_relay_blocks() -> tuple[str, str]:
    """The rtmp block and the HLS location, as the README's relay section shows them."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"^## A big audience: relay through nginx\n(.*?)^## ", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no section 'A big audience: relay through nginx'"
    blocks = re.findall(r"```nginx\n(.*?)```", match.group(1), re.DOTALL)
    assert len(blocks) == 2, "the relay section should show the rtmp block and the HLS location"
    rtmp, location = blocks
    assert rtmp.lstrip().startswith("rtmp {") and README_HLS_PATH in rtmp and README_RTMP_LISTEN in rtmp
    assert location.lstrip().startswith("location /hls/") and README_HLS_PATH in location
    return rtmp, location


def unit_command(values: dict[str, str]) -> list[str]:
    """The unit's ExecStart as an argv, its ``${NAME}`` filled from the unit's Environment= and ``values``."""
    text = UNIT.read_text()
    environment = dict(re.findall(r"^Environment=(\w+)=(\S*)$", text, re.MULTILINE))
    environment.update(values)
    match = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", text, re.MULTILINE)
    assert match, "camd-relay.service has no ExecStart"
    line = match.group(1).replace("\\\n", " ")
    names = set(re.findall(r"\$\{(\w+)\}", line))
    assert names <= environment.keys(), f"the test does not know {names - environment.keys()}"
    return [re.sub(r"\$\{(\w+)\}", lambda m: environment[m.group(1)], word) for word in shlex.split(line)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def relay_nginx(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """nginx in the foreground with the README's rtmp block and HLS location: (HTTP url, RTMP port, HLS dir)."""
    binary = require_tool("nginx")
    if not RTMP_MODULE.exists():
        message = f"{RTMP_MODULE} is missing: install libnginx-mod-rtmp"
        if os.environ.get("CAMD_REQUIRE_TOOLS") or os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    http_port, rtmp_port = free_port(), free_port()
    temp = tmp_path / "nginx"
    hls = tmp_path / "hls"
    temp.mkdir()
    rtmp, location = readme_relay_blocks()
    rtmp = rtmp.replace(README_HLS_PATH, str(hls)).replace(README_RTMP_LISTEN, f"127.0.0.1:{rtmp_port}")
    location = location.replace(README_HLS_PATH, str(hls))
    conf = nginx.write_conf(temp, http_port, location, module=str(RTMP_MODULE), top=rtmp)
    with nginx.running(binary, conf, lambda: _listens(rtmp_port)):
        yield f"http://127.0.0.1:{http_port}", rtmp_port, hls


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def first_pts(ffprobe: str, source: str) -> float:
    """The presentation time (s) of the first video frame ffprobe reads from a segment or a playlist."""
    done = subprocess.run(
        [
            ffprobe, "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
            "-show_entries", "packet=pts_time", "-of", "csv=p=0", source,
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip(), done.stderr
    return float(done.stdout.split()[0].strip(","))


def play(ffprobe: str, url: str) -> dict[str, object]:
    """What ffprobe decodes from the live playlist in about 3 seconds of it."""
    done = subprocess.run(
        [
            ffprobe, "-v", "error", "-read_intervals", "%+3", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", url,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    streams = json.loads(done.stdout)["streams"]
    assert streams, f"ffprobe found no video stream in {url}"
    return dict(streams[0])


def test_hls_from_the_relay_plays_while_camd_serves_one_viewer(
    daemon: Daemon, relay_nginx: tuple[str, int, Path]
) -> None:
    ffprobe = require_tool("ffprobe")
    require_tool("ffmpeg")
    http, rtmp_port, hls = relay_nginx
    status = lambda: daemon.get("/api/status").json()  # noqa: E731
    assert status()["viewers"] == 0
    pid = daemon.proc.pid  # type: ignore[union-attr]
    idle_before, idle_at = cpu_seconds(pid), time.monotonic()
    time.sleep(3)
    idle = (cpu_seconds(pid) - idle_before) / (time.monotonic() - idle_at)
    publisher = Publisher.start(daemon, rtmp_port, hls.parent / "ffmpeg.log")
    try:
        # ffmpeg stamps frames with the wall clock as they arrive, and its first frame is time 0 in the
        # segments; camd counts the viewer just before it sends that first frame.
        wait_until(lambda: not publisher.alive() or status()["viewers"] == 1, 20, 0.01, "ffmpeg to connect")
        assert publisher.alive(), publisher.said()
        started = time.time()

        seen: dict[int, float] = {}  # segment number: when it was first in the playlist
        durations: dict[int, float] = {}
        playlist = hls / "live.m3u8"

        def watch_playlist() -> bool:
            if playlist.exists():
                for duration, number in SEGMENT.findall(playlist.read_text()):
                    seen.setdefault(int(number), time.time())
                    durations[int(number)] = float(duration)
            return len(seen) >= 6 or not publisher.alive()

        wait_until(watch_playlist, 40, 0.02, "six HLS segments in the playlist")
        assert publisher.alive(), publisher.said()
        assert 0 in seen, "the first segment was missed"
        pts_zero = first_pts(ffprobe, str(hls / "live-0.ts"))  # the time in the segments of ffmpeg's first frame

        # Three players at once (the audience), while camd still counts one viewer.
        viewer_counts: list[int] = []
        watching = threading.Event()

        def poll_viewers() -> None:
            while not watching.is_set():
                viewer_counts.append(status()["viewers"])
                time.sleep(0.2)

        poller = threading.Thread(target=poll_viewers)
        poller.start()
        cpu_before, cpu_at = cpu_seconds(pid), time.monotonic()
        results: list[dict[str, object]] = []
        players = [
            threading.Thread(target=lambda: results.append(play(ffprobe, f"{http}/hls/live.m3u8"))) for _ in range(3)
        ]
        for player in players:
            player.start()
        for player in players:
            player.join(90)
        cpu = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - cpu_at)
        watching.set()
        poller.join(10)
        assert len(results) == 3
        for result in results:
            assert result["codec_name"] == "h264"
            assert (result["width"], result["height"]) == (640, 480)
            assert int(str(result["nb_read_frames"])) > 0
        assert viewer_counts and set(viewer_counts) == {1}, viewer_counts
        assert status()["viewers"] == 1
        assert requests.get(f"{http}/hls/live.m3u8", timeout=5).headers["Content-Type"] == (
            "application/vnd.apple.mpegurl"
        )

        # How old a segment's newest frame is when the segment reaches the playlist: segment n ends
        # the sum of the durations of segments 0..n after the first frame, which arrived at ``started``.
        assert sorted(seen) == list(range(len(seen))), f"segments were missed: {sorted(seen)}"
        ages = [seen[n] - (started + sum(durations[k] for k in range(n + 1))) for n in sorted(seen)]
        # A player joining now: how old is the first frame it gets?
        joined = time.time()
        behind = joined - (started + first_pts(ffprobe, f"{http}/hls/live.m3u8") - pts_zero)
        target = float(re.search(r"#EXT-X-TARGETDURATION:(\d+)", playlist.read_text()).group(1))  # type: ignore[union-attr]
        print(
            f"\nrelay: camd CPU with the publisher attached {100 * cpu:.1f}% of a core ({100 * idle:.1f}% before) "
            f"(640x480@30 test pattern, 3 HLS players, camd viewers {sorted(set(viewer_counts))}); "
            f"newest frame of a segment when it reaches the playlist: median {1000 * statistics.median(ages):.0f} ms, "
            f"max {1000 * max(ages):.0f} ms over {len(ages)} segments; a player joining (ffprobe, target duration "
            f"{target:g} s) starts with a frame {behind:.1f} s old"
        )
        # Live, not stuck or buffering: a joining player starts a few segments back, no more.
        assert max(ages) < 10 * target, ages
        assert 0 < behind < 10 * target, behind
    finally:
        stop_process(publisher.proc)


@dataclass
class Publisher:
    """The unit's ffmpeg as the test runs it; its stderr goes to a file, not a pipe nobody reads."""

    proc: subprocess.Popen[str]
    log: Path

    @classmethod
    def start(cls, daemon: Daemon, rtmp_port: int, log: Path) -> Publisher:
        command = unit_command(
            {
                "CAMD_RELAY_INPUT": f"http://{USER}:{quote(PASSWORD)}@127.0.0.1:{daemon.port}/stream.mjpg",
                "CAMD_RELAY_OUTPUT": f"rtmp://127.0.0.1:{rtmp_port}/camd/live",
            }
        )
        with open(log, "w") as stderr:
            return cls(subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=stderr, text=True), log)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def said(self) -> str:
        """Why it ended, for a failed assertion."""
        return f"ffmpeg exited with {self.proc.returncode}:\n" + self.log.read_text()[-4000:]


def newest_segment(hls: Path) -> int:
    playlist = hls / "live.m3u8"
    numbers = [int(number) for _, number in SEGMENT.findall(playlist.read_text())] if playlist.exists() else []
    return max(numbers, default=-1)


def test_the_publisher_reconnects_when_camd_crashes_and_comes_back(
    daemon_factory: Callable[..., Daemon], relay_nginx: tuple[str, int, Path]
) -> None:
    require_tool("ffmpeg")
    _, rtmp_port, hls = relay_nginx
    args = ("--source", "test", "--width", "640", "--height", "480", "--port", str(free_port()), *FAST_WARMUP)
    first = daemon_factory(*args)
    publisher = Publisher.start(first, rtmp_port, hls.parent / "ffmpeg.log")
    try:
        wait_until(lambda: not publisher.alive() or newest_segment(hls) >= 1, 30, 0.1, "HLS segments")
        assert publisher.alive(), publisher.said()
        first.stop(signal.SIGKILL)  # a clean stop ends the stream: ffmpeg exits and systemd restarts it
        before = newest_segment(hls)
        second = daemon_factory(*args)  # the same port, as when systemd restarts camd
        wait_until(
            lambda: not publisher.alive() or second.get("/api/status").json()["viewers"] == 1,
            30, 0.1, "ffmpeg to reconnect to the new camd",
        )  # fmt: skip
        assert publisher.alive(), publisher.said()
        wait_until(lambda: newest_segment(hls) >= before + 2, 30, 0.1, "new HLS segments after the restart")
        assert publisher.alive(), "the same ffmpeg process carried on"
    finally:
        stop_process(publisher.proc)


def test_the_unit_is_a_valid_and_sandboxed_systemd_unit(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    unit = tmp_path / "camd-relay.service"
    unit.write_text(UNIT.read_text())
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert (done.stdout + done.stderr).strip() == "" and done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.0, done.stdout
    text = UNIT.read_text()
    assert re.search(r"^Restart=always$", text, re.MULTILINE)  # ffmpeg exits 0 when camd stops cleanly
    command = unit_command({"CAMD_RELAY_INPUT": "http://camd/stream.mjpg"})
    for option in ("-reconnect", "-reconnect_streamed", "-reconnect_on_network_error", "-use_wallclock_as_timestamps"):
        assert command[command.index(option) + 1] == "1", option
    assert command[command.index("-tune") + 1] == "zerolatency"
    assert command[command.index("-preset") + 1] == "ultrafast"
