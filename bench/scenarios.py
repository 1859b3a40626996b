"""Viewers that misbehave on purpose: stall and resume, storm in, or connect before the server is up.

``bench.loadclient.run_load`` measures N well-behaved viewers over a window.
These scenarios need finer control over each viewer (stop reading one while the
others read, open and close a crowd at once, retry a refused connection), so
they drive ``loadclient.Viewer`` (the same HTTP and multipart parsing) from a
small epoll pump of their own and keep every complete part's receive time and
``X-Timestamp``.
"""

from __future__ import annotations

import collections
import errno
import itertools
import os
import select
import socket
import time
from collections.abc import Callable

from bench.loadclient import CLOSED, RECV_SIZE, Viewer, Window


class Tracked(Viewer):
    """A viewer that remembers every complete part: (head received, part received, X-Timestamp)."""

    def __init__(self, index: int, request: bytes, rcvbuf: int | None = None) -> None:
        super().__init__(index, request, Window())
        if rcvbuf:
            # Before connect(), so that the window the kernel advertises is small too.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.opened_at = time.time()
        self.head_at = 0.0
        self.part_length = 0
        self.parts: list[tuple[float, float, float]] = []
        self.sizes: list[int] = []  # each part's Content-Length, in step with ``parts``
        self.paused = False
        self.closed_at = 0.0

    def _part_head(self, head: bytes) -> None:
        self.head_at = time.time()
        super()._part_head(head)
        self.part_length = self.body_left

    def _part_done(self, now: float) -> None:
        before = self.frames_total
        super()._part_done(now)
        if self.frames_total > before:
            self.parts.append((self.head_at, now, self.timestamp))
            self.sizes.append(self.part_length)


class Pump:
    """Viewers on one epoll loop; each can be paused (no recv at all) and resumed."""

    def __init__(self, address: tuple[str, int], request: bytes) -> None:
        self.address = address
        self.request = request
        self.epoll = select.epoll()
        self.viewers: dict[int, Tracked] = {}
        self.errors: collections.Counter[str] = collections.Counter()
        self.buf = bytearray(RECV_SIZE)
        self.view = memoryview(self.buf)

    def open(self, count: int, rcvbuf: int | None = None) -> list[Tracked]:
        opened = []
        for index in range(count):
            viewer = Tracked(len(self.viewers) + index, self.request, rcvbuf)
            code = viewer.sock.connect_ex(self.address)
            if code not in (0, errno.EINPROGRESS):
                viewer._fail(f"connect: {os.strerror(code)}")
                viewer.sock.close()
                viewer.closed_at = time.time()
                self.errors[viewer.error] += 1
            else:
                self.viewers[viewer.fd] = viewer
                self.epoll.register(viewer.fd, select.EPOLLOUT)
            opened.append(viewer)
        return opened

    def pause(self, viewer: Tracked) -> None:
        if viewer.state != CLOSED:
            self.epoll.modify(viewer.fd, 0)
        viewer.paused = True

    def resume(self, viewer: Tracked) -> None:
        viewer.paused = False
        if viewer.state != CLOSED:
            self.epoll.modify(viewer.fd, select.EPOLLIN)

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Serve the viewers for ``seconds`` or until ``until()`` is true."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if until is not None and until():
                return
            for fd, _events in self.epoll.poll(0.02):
                viewer = self.viewers.get(fd)
                if viewer is not None:
                    self._serve(viewer)

    def _serve(self, viewer: Tracked) -> None:
        viewer.step(self.epoll, self.buf, self.view, 0 if viewer.paused else select.EPOLLIN)
        if viewer.state == CLOSED:
            self._close(viewer)
            self.errors[viewer.error] += 1

    def _close(self, viewer: Tracked) -> None:
        if self.viewers.pop(viewer.fd, None) is not None:
            self.epoll.unregister(viewer.fd)
            viewer.sock.close()
            viewer.closed_at = time.time()

    def close_all(self) -> None:
        for viewer in list(self.viewers.values()):
            viewer.state = CLOSED
            self._close(viewer)

    def close(self) -> None:
        self.close_all()
        self.epoll.close()


def all_started(viewers: list[Tracked], parts: int = 1) -> bool:
    """Every viewer has ``parts`` complete parts or has ended."""
    return all(len(v.parts) >= parts or v.state == CLOSED for v in viewers)


def fps_between(viewer: Tracked, start: float, end: float) -> float:
    """Parts the viewer completed between two wall-clock times, per second."""
    return sum(1 for _head, done, _stamp in viewer.parts if start <= done < end) / (end - start)


def max_gap(viewer: Tracked, start: float, end: float) -> float:
    """The longest time between complete parts within [start, end), in seconds."""
    times = [done for _head, done, _stamp in viewer.parts if start <= done < end]
    return max((b - a for a, b in itertools.pairwise(times)), default=float("nan"))


def first_live(parts: list[tuple[float, float, float]], gap: float = 0.25) -> int | None:
    """Index of a part that is certainly live: the later of the first two parts < ``gap`` apart by X-Timestamp.

    The placeholder ("CAMERA STARTING / warming up") is published once a second;
    live frames come at the source's rate. The earlier part of the first close pair
    may still be the last placeholder, so the later one is taken: at most one frame
    interval late, never a placeholder.
    """
    for index in range(len(parts) - 1):
        if 0 < parts[index + 1][2] - parts[index][2] < gap:
            return index + 1
    return None
