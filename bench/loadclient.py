"""A load client for multipart/x-mixed-replace streams: N viewers on one thread, measured over a window.

Every viewer is a non-blocking socket on one epoll loop; the client parses the
response properly (HTTP/1.1 chunked or not, each part's headers, Content-Length)
without looking at the JPEG bytes beyond their first and last two. Over the
window it measures per-viewer fps, capture-to-receive latency from X-Timestamp,
the longest gap between frames, invalid parts and errors, and samples the
server's CPU time and RSS from /proc, so that CPU per delivered frame can be
compared between servers. It reports its own CPU use so that a saturated client
is not mistaken for a slow server.

    python -m bench.loadclient http://127.0.0.1:8080/stream.mjpg -n 50 --user admin --password x --pid 1234
"""

from __future__ import annotations

import argparse
import base64
import collections
import errno
import json
import os
import select
import socket
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

RECV_SIZE = 256 * 1024
MAX_HEAD = 16 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --- the server process, from /proc -----------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's worker is a child of its master)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        children[int(fields[1])].append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * PAGE_SIZE
        except OSError:
            continue
    return total


def machine_busy_seconds() -> float:
    """CPU seconds spent on anything but idle and iowait, all cores together, since boot."""
    with open("/proc/stat", "rb") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


# --- one viewer's connection --------------------------------------------------------------------

# Connection states.
CONNECTING, SENDING, RESPONSE, STREAM, CLOSED = range(5)
# Multipart states.
PART_HEAD, PART_BODY, RESYNC = range(3)


@dataclass
class Window:
    """What the viewers saw between ``start`` and ``end`` (wall-clock seconds)."""

    start: float = 0.0
    end: float = 0.0
    open: bool = False
    latencies: list[float] = field(default_factory=list)
    timestamps: set[float] = field(default_factory=set)


class Viewer:
    """One stream connection: HTTP response, chunked framing and multipart parsing."""

    def __init__(self, index: int, request: bytes, window: Window) -> None:
        self.index = index
        self.request = request
        self.window = window
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.state = CONNECTING
        self.head = bytearray()
        self.boundary_line = b""
        self.chunked = False
        self.chunk_left = -1  # >0: data bytes left in this chunk; -1: reading a size line; -2: its CRLF
        self.crlf_left = 0
        self.size_line = bytearray()
        self.part_state = PART_HEAD
        self.part_head = bytearray()
        self.body_left = 0
        self.first2 = b""
        self.last2 = b""
        self.timestamp = 0.0
        self.after_part = False  # a part ended: the next header block must open with CRLF
        self.error = ""
        # Measurements.
        self.frames_total = 0
        self.frames_in_window = 0
        self.last_frame_at = 0.0
        self.max_gap = 0.0
        self.invalid: collections.Counter[str] = collections.Counter()

    # --- transport ---

    def on_bytes(self, buf: bytearray, pos: int, end: int, now: float) -> None:
        """Bytes from the socket, in ``buf[pos:end]``."""
        if self.state == RESPONSE:
            pos = self._response_head(buf, pos, end)
            if pos < 0:
                return
        if not self.chunked:
            self._body(buf, pos, end, now)
            return
        while pos < end:
            if self.chunk_left > 0:
                take = min(self.chunk_left, end - pos)
                self._body(buf, pos, pos + take, now)
                pos += take
                self.chunk_left -= take
                if self.chunk_left == 0:
                    self.chunk_left, self.crlf_left = -2, 2
            elif self.chunk_left == -2:
                take = min(self.crlf_left, end - pos)
                pos += take
                self.crlf_left -= take
                if self.crlf_left == 0:
                    self.chunk_left = -1
            else:
                newline = buf.find(b"\n", pos, end)
                if newline < 0:
                    self.size_line += buf[pos:end]
                    if len(self.size_line) > 1024:
                        self._fail("chunk size line too long")
                    return
                self.size_line += buf[pos:newline]
                pos = newline + 1
                try:
                    size = int(bytes(self.size_line).split(b";")[0].strip(), 16)
                except ValueError:
                    self._fail(f"bad chunk size {bytes(self.size_line[:40])!r}")
                    return
                self.size_line.clear()
                if size == 0:
                    self._fail("the stream ended (last chunk)")
                    return
                self.chunk_left = size

    def _response_head(self, buf: bytearray, pos: int, end: int) -> int:
        """Parse the HTTP response head; the position after it, or -1 while incomplete."""
        old = len(self.head)
        self.head += buf[pos:end]
        stop = self.head.find(b"\r\n\r\n", max(0, old - 3))
        if stop < 0:
            if len(self.head) > MAX_HEAD:
                self._fail("response head too long")
            return -1
        used = stop + 4 - old
        lines = bytes(self.head[:stop]).decode("latin-1").split("\r\n")
        self.head.clear()
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "200":
            self._fail(f"status {' '.join(status[1:])}")
            return -1
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        ctype = headers.get("content-type", "")
        if not ctype.startswith("multipart/x-mixed-replace") or "boundary=" not in ctype:
            self._fail(f"content type {ctype!r}")
            return -1
        boundary = ctype.split("boundary=", 1)[1].split(";")[0].strip().strip('"')
        self.boundary_line = b"--" + boundary.encode()
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.state = STREAM
        return pos + used

    # --- multipart ---

    def _body(self, buf: bytearray, pos: int, end: int, now: float) -> None:
        """Bytes of the multipart body (after any chunked framing), in ``buf[pos:end]``."""
        while pos < end:
            if self.part_state == PART_BODY:
                take = min(self.body_left, end - pos)
                if len(self.first2) < 2:
                    self.first2 += buf[pos : pos + min(take, 2 - len(self.first2))]
                stop = pos + take
                self.last2 = (self.last2 + buf[max(pos, stop - 2) : stop])[-2:]
                pos = stop
                self.body_left -= take
                if self.body_left == 0:
                    self._part_done(now)
            elif self.part_state == PART_HEAD:
                old = len(self.part_head)
                piece = min(end, pos + 4096)
                self.part_head += buf[pos:piece]
                stop = self.part_head.find(b"\r\n\r\n", max(0, old - 3))
                if stop < 0:
                    pos = piece
                    if len(self.part_head) > MAX_HEAD:
                        self._invalid("bad_header")
                    continue
                pos += stop + 4 - old
                self._part_head(bytes(self.part_head[:stop]))
                self.part_head.clear()
            else:  # RESYNC: look for the next boundary line
                old = len(self.part_head)
                piece = min(end, pos + RECV_SIZE)
                self.part_head += buf[pos:piece]
                marker = b"\r\n" + self.boundary_line + b"\r\n"
                found = self.part_head.find(marker)
                if found < 0:
                    del self.part_head[: max(0, len(self.part_head) - len(marker))]
                    pos = piece
                    continue
                pos += found + 2 - old
                self.part_head.clear()
                self.part_state = PART_HEAD
                self.after_part = False

    def _part_head(self, head: bytes) -> None:
        if self.after_part:
            if not head.startswith(b"\r\n"):
                self.invalid["length_mismatch"] += 1
            self.after_part = False
        lines = head.lstrip(b"\r\n").split(b"\r\n")
        if lines[0].rstrip() != self.boundary_line:
            self._invalid("bad_header")
            return
        length, stamp, ctype = -1, None, b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
            elif name == b"x-timestamp":
                try:
                    stamp = float(value)
                except ValueError:
                    stamp = None
            elif name == b"content-type":
                ctype = value.strip()
        if length <= 0 or stamp is None or ctype != b"image/jpeg":
            self._invalid("bad_header")
            return
        self.timestamp = stamp
        self.body_left = length
        self.first2 = self.last2 = b""
        self.part_state = PART_BODY

    def _part_done(self, now: float) -> None:
        self.part_state = PART_HEAD
        self.after_part = True
        if self.first2 != b"\xff\xd8":
            self.invalid["not_jpeg_start"] += 1
            return
        if self.last2 != b"\xff\xd9":
            self.invalid["length_mismatch"] += 1
            return
        self.frames_total += 1
        window = self.window
        if window.open and now >= window.start:
            self.frames_in_window += 1
            if self.last_frame_at:
                self.max_gap = max(self.max_gap, now - self.last_frame_at)
            window.latencies.append(now - self.timestamp)
            window.timestamps.add(self.timestamp)
        self.last_frame_at = now

    def _invalid(self, why: str) -> None:
        self.invalid[why] += 1
        self.part_state = RESYNC
        self.after_part = False

    def _fail(self, why: str) -> None:
        if not self.error:
            self.error = why
        self.state = CLOSED

    def step(self, epoll: select.epoll, buf: bytearray, view: memoryview, read_mask: int = select.EPOLLIN) -> None:
        """Move the connection on after epoll said its socket is ready: connect, send the request, read.

        ``read_mask`` is what to wait for once the request is out (0 keeps a paused viewer unread).
        The caller closes a viewer that ends up CLOSED.
        """
        if self.state == CONNECTING:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._fail(f"connect: {os.strerror(code)}")
            else:
                self.state = SENDING
        if self.state == SENDING:
            try:
                sent = self.sock.send(self.request)
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(f"send: {exc.strerror or exc}")
            else:
                self.request = self.request[sent:]
                if not self.request:
                    self.state = RESPONSE
                    epoll.modify(self.sock.fileno(), read_mask)
                return
        if self.state in (RESPONSE, STREAM):
            try:
                count = self.sock.recv_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fail(f"recv: {exc.strerror or exc}")
            else:
                if count == 0:
                    self._fail("closed by the server")
                else:
                    self.on_bytes(buf, 0, count, time.time())


# --- the load run -------------------------------------------------------------------------------


@dataclass
class Result:
    """One run's figures; times in ms, rates per second."""

    viewers: int
    window_s: float
    connected: int
    fps_min: float
    fps_median: float
    fps_max: float
    source_fps: float  # distinct X-Timestamps seen by all viewers together, per second
    frames: int  # delivered to all viewers in the window
    latency_p50_ms: float
    latency_p95_ms: float
    max_gap_ms: float
    invalid: dict[str, int]
    errors: dict[str, int]
    server_cpu_s: float
    server_cpu_pct: float
    server_cpu_ms_per_frame: float
    server_rss_mb: float
    client_cpu_pct: float
    others_cpu_pct: float  # the rest of the machine, in % of one core: the noise from other work

    def line(self) -> str:
        return (
            f"N={self.viewers:<4} fps min/med {self.fps_min:5.1f}/{self.fps_median:5.1f} (src {self.source_fps:4.1f})"
            f"  lat p50/p95 {self.latency_p50_ms:5.1f}/{self.latency_p95_ms:5.1f} ms  gap {self.max_gap_ms:5.0f} ms"
            f"  cpu {self.server_cpu_pct:5.1f}% = {self.server_cpu_ms_per_frame:.3f} ms/frame"
            f"  rss {self.server_rss_mb:5.0f} MB  client {self.client_cpu_pct:4.1f}%"
            f"  others {self.others_cpu_pct:4.0f}%"
            f"  invalid {sum(self.invalid.values())} errors {sum(self.errors.values())}"
        )


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def build_request(url: str, user: str | None, password: str | None) -> tuple[tuple[str, int], bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError("only http:// URLs")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: camd-bench", "Accept: */*"]
    if user is not None:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    return (host, port), ("\r\n".join(lines) + "\r\n\r\n").encode()


def run_load(
    url: str,
    viewers: int,
    *,
    user: str | None = None,
    password: str | None = None,
    window: float = 10.0,
    warmup: float = 2.0,
    connect_timeout: float = 30.0,
    server_pid: int | None = None,
) -> Result:
    """Open ``viewers`` streams, let them settle for ``warmup`` s, then measure for ``window`` s."""
    address, request = build_request(url, user, password)
    win = Window()
    conns: dict[int, Viewer] = {}
    epoll = select.epoll(max(viewers, 1) + 1)
    buf = bytearray(RECV_SIZE)
    view = memoryview(buf)
    errors: collections.Counter[str] = collections.Counter()
    for index in range(viewers):
        viewer = Viewer(index, request, win)
        code = viewer.sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            viewer.error = f"connect: {os.strerror(code)}"
            viewer.state = CLOSED
            viewer.sock.close()
            errors[viewer.error] += 1
            continue
        conns[viewer.fd] = viewer
        epoll.register(viewer.fd, select.EPOLLOUT)

    pids = process_tree(server_pid) if server_pid else []
    started = time.monotonic()
    settle_deadline = started + connect_timeout
    phase = "settle"
    window_end = 0.0
    cpu0 = cpu1 = busy0 = busy1 = 0.0
    client0 = client1 = os.times()
    rss_samples: list[int] = []
    next_sample = 0.0
    while True:
        mono = time.monotonic()
        if phase == "settle":
            live = [v for v in conns.values() if v.state != CLOSED]
            ready = all(v.frames_total > 0 for v in live)
            if (ready and mono - started >= warmup) or mono > settle_deadline:
                phase = "window"
                if pids:
                    pids = process_tree(pids[0])
                    cpu0 = cpu_seconds(pids)
                client0 = os.times()
                busy0 = machine_busy_seconds()
                win.start, win.open = time.time(), True
                window_end = mono + window
                next_sample = mono
        elif phase == "window":
            if mono >= next_sample and pids:
                rss_samples.append(rss_bytes(pids))
                next_sample = mono + 0.5
            if mono >= window_end:
                win.end, win.open = time.time(), False
                if pids:
                    cpu1 = cpu_seconds(pids)
                client1 = os.times()
                busy1 = machine_busy_seconds()
                break
        for fd, _events in epoll.poll(0.05):
            viewer = conns[fd]
            viewer.step(epoll, buf, view)
            if viewer.state == CLOSED:
                epoll.unregister(fd)
                viewer.sock.close()
                if phase != "done":
                    errors[viewer.error] += 1

    for viewer in conns.values():
        if viewer.state != CLOSED:
            viewer.sock.close()
    epoll.close()

    span = win.end - win.start
    rates = [v.frames_in_window / span for v in conns.values()] or [0.0]
    rates += [0.0] * (viewers - len(conns))
    invalid: collections.Counter[str] = collections.Counter()
    for viewer in conns.values():
        invalid.update(viewer.invalid)
    frames = sum(v.frames_in_window for v in conns.values())
    server_cpu = cpu1 - cpu0
    client_cpu = (client1.user + client1.system) - (client0.user + client0.system)
    return Result(
        viewers=viewers,
        window_s=round(span, 3),
        connected=sum(1 for v in conns.values() if v.frames_total > 0),
        fps_min=round(min(rates), 2),
        fps_median=round(statistics.median(rates), 2),
        fps_max=round(max(rates), 2),
        source_fps=round(len(win.timestamps) / span, 2),
        frames=frames,
        latency_p50_ms=round(percentile(win.latencies, 0.50) * 1000, 2),
        latency_p95_ms=round(percentile(win.latencies, 0.95) * 1000, 2),
        max_gap_ms=round(max((v.max_gap for v in conns.values()), default=0.0) * 1000, 1),
        invalid=dict(invalid),
        errors=dict(errors),
        server_cpu_s=round(server_cpu, 3),
        server_cpu_pct=round(100 * server_cpu / span, 1),
        server_cpu_ms_per_frame=round(1000 * server_cpu / frames, 4) if frames else float("nan"),
        server_rss_mb=round(max(rss_samples, default=0) / 2**20, 1),
        client_cpu_pct=round(100 * client_cpu / span, 1),
        others_cpu_pct=round(100 * ((busy1 - busy0) - server_cpu - client_cpu) / span, 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("-n", "--viewers", type=int, default=1)
    parser.add_argument("--user")
    parser.add_argument("--password", default=os.environ.get("BENCH_PASSWORD"))
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds after every viewer has a frame")
    parser.add_argument("--pid", type=int, help="server process to sample CPU time and RSS of")
    parser.add_argument("--cpu", type=int, help="pin this client to that CPU")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = run_load(
        args.url, args.viewers, user=args.user, password=args.password,
        window=args.window, warmup=args.warmup, server_pid=args.pid,
    )  # fmt: skip
    print(json.dumps(asdict(result)) if args.json else result.line())
    if result.client_cpu_pct > 80:
        print(f"warning: the client used {result.client_cpu_pct}% of a core; it may be the bottleneck", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
