"""Fan-out: one thread writes each new frame to every stream viewer with non-blocking sends.

The front authenticates a viewer's request like any other, then gives the
viewer's socket (and the response head it has not sent yet) to this thread,
which owns it until the viewer goes away and then closes it. Every viewer is
sent the same bytes object (built once per frame per variant, plain or as a
chunk), so the cost per viewer per frame is one ``send`` call. Each viewer keeps
the variant it asked for (``?width=``, ``?quality=``); viewers of the frame's own
JPEG are served first, so that making the smaller variants never delays them. A viewer that cannot keep up is
never queued for: it finishes the part it is on and then gets the newest frame,
and one that makes no progress for ``write_timeout`` is dropped.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from camd.frames import Frame
from camd.http import parts
from camd.hub import Hub
from camd.variants import VariantKey, Variants, is_own

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 20.0
# Unsent bytes the kernel may hold for a viewer (TCP_NOTSENT_LOWAT). Without a bound Linux grows the
# send buffer of a viewer that stops reading to megabytes (tcp_wmem), i.e. seconds of old frames it
# must play through before the newest one, in kernel memory. With it, send() stops taking bytes and
# the fan-out skips frames for that viewer instead; a part larger than this takes a few sends.
NOTSENT_LOWAT = 64 * 1024
_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError)


@dataclass(eq=False)
class Viewer:
    """One connected stream viewer, as the fan-out thread sees it."""

    sock: socket.socket
    chunked: bool
    interval: float  # seconds between frames for this viewer; 0 = every frame
    on_end: Callable[[], None] | None = None  # called once when the viewer ends (releases its slot)
    key: VariantKey | None = None  # the picture variant it receives; None = the frame's own JPEG
    watched: bool = False  # counted by ``Variants.watch`` (undone once, when it ends)
    last_seq: int = -1
    fd: int = -1
    buffer: memoryview | None = None
    offset: int = 0
    in_frame: bool = False  # whether ``buffer`` is a frame's part (or the response head before the first)
    due: float = 0.0
    progress_at: float = 0.0
    writing: bool = False
    frames_sent: int = 0
    reason: str = ""


class Fanout:
    """Writes frames from the hub to viewers' sockets from a single epoll thread."""

    def __init__(
        self, hub: Hub, max_clients: int, write_timeout: float = WRITE_TIMEOUT, variants: Variants | None = None
    ) -> None:
        self.hub = hub
        self.variants = variants
        self.max_clients = max_clients
        self.write_timeout = write_timeout
        self._slots = 0
        self._slots_lock = threading.Lock()
        self._pending: collections.deque[Viewer] = collections.deque()
        self._viewers: dict[int, Viewer] = {}
        self._epoll = select.epoll()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fanout", daemon=True)
        self._new_frame = False
        # The current frame's parts per (variant, chunked), built once and shared by that variant's viewers.
        self._parts_of: Frame | None = None
        self._parts: dict[tuple[VariantKey | None, bool], bytes] = {}
        # Counted here and added to the hub's (locked) counters once per loop, not once per send.
        self._frames_sent = 0
        self._bytes_sent = 0
        self._sent_by_key: dict[VariantKey, list[int]] = {}  # [frames, bytes] per variant, flushed with the rest

    # --- admission ---------------------------------------------------------------

    def reserve(self) -> bool:
        """Take one of the ``max_clients`` viewer slots; False when all are taken."""
        with self._slots_lock:
            if self._stopping or self._slots >= self.max_clients:
                return False
            self._slots += 1
            return True

    def release(self) -> None:
        with self._slots_lock:
            self._slots -= 1

    @property
    def viewers(self) -> int:
        return self._slots

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self.hub.add_listener(self._on_publish)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """End every stream (closing its socket) and the thread."""
        with self._slots_lock:
            self._stopping = True
        self.hub.remove_listener(self._on_publish)
        self._wake()
        self._thread.join(timeout)
        self._end_pending()

    def attach(
        self,
        sock: socket.socket,
        *,
        chunked: bool,
        fps: float | None,
        pending: bytes = b"",
        on_end: Callable[[], None] | None = None,
        key: VariantKey | None = None,
    ) -> None:
        """Take over a viewer's socket: send ``pending`` (the response head), then the newest frame and the rest.

        From here on the fan-out owns the socket: it closes it and calls ``on_end`` once when the viewer ends.
        ``key`` is the picture variant to send (None: the frame's own JPEG).
        """
        viewer = Viewer(sock, chunked, 1.0 / fps if fps else 0.0, on_end, key if self.variants is not None else None)
        if pending:
            viewer.buffer = memoryview(pending)
        self._pending.append(viewer)
        if self._stopping:
            self._end_pending()
            return
        self._wake()

    # --- the thread -------------------------------------------------------------

    def _on_publish(self, frame: Frame) -> None:
        self._new_frame = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.eventfd_write(self._wake_fd, 1)
        except BlockingIOError:
            pass  # the counter is full of wake-ups already
        except OSError:
            if not self._stopping:
                raise

    def _run(self) -> None:
        last_sweep = time.monotonic()
        try:
            while not self._stopping:
                for fd, events in self._epoll.poll(1.0):
                    if fd == self._wake_fd:
                        self._drain_wake()
                        continue
                    viewer = self._viewers.get(fd)
                    if viewer is None:
                        continue
                    if events & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                        self._on_readable(viewer)
                    if events & select.EPOLLOUT and viewer.buffer is not None:
                        self._send(viewer)
                if self._frames_sent or self._bytes_sent:
                    self._flush_counters()
                now = time.monotonic()
                if now - last_sweep >= 1.0:
                    last_sweep = now
                    self._drop_stalled(now)
        except Exception:
            log.exception("the stream fan-out failed")
        finally:
            self._flush_counters()
            for viewer in list(self._viewers.values()):
                self._end(viewer, "stopping")
            self._end_pending()
            self._epoll.close()

    def _end_pending(self) -> None:
        while True:
            try:
                viewer = self._pending.popleft()
            except IndexError:
                return
            self._end(viewer, "stopping")

    def _flush_counters(self) -> None:
        counters = self.hub.counters
        counters.incr("stream_frames_sent", self._frames_sent)
        counters.incr("stream_bytes_sent", self._bytes_sent)
        self._frames_sent = self._bytes_sent = 0
        if self._sent_by_key and self.variants is not None:
            for key, (frames, nbytes) in self._sent_by_key.items():
                self.variants.count_sent(key, frames, nbytes)
            self._sent_by_key = {}

    def _tally(self, viewer: Viewer, frames: int, nbytes: int) -> None:
        """Count what a variant's viewer was sent (``Variants.count_sent`` gets it in batches)."""
        if viewer.key is None:
            return
        tally = self._sent_by_key.get(viewer.key)
        if tally is None:
            tally = self._sent_by_key[viewer.key] = [0, 0]
        tally[0] += frames
        tally[1] += nbytes

    def _drain_wake(self) -> None:
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass
        while self._pending:
            self._add(self._pending.popleft())
        if self._new_frame:
            self._new_frame = False
            frame = self.hub.latest
            if frame is not None:
                now = time.monotonic()
                # The frame's own JPEG first: its viewers never wait for a variant to be made.
                later = []
                for viewer in list(self._viewers.values()):
                    if viewer.buffer is not None:
                        continue
                    if is_own(viewer.key, frame):
                        self._offer(viewer, frame, now)
                    else:
                        later.append(viewer)
                for viewer in later:
                    self._offer(viewer, frame, time.monotonic())

    def _add(self, viewer: Viewer) -> None:
        try:
            viewer.sock.setblocking(False)
            if viewer.sock.family in (socket.AF_INET, socket.AF_INET6):
                viewer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
            fd = viewer.sock.fileno()
            self._epoll.register(fd, _IN)
        except (OSError, ValueError) as exc:
            self._end(viewer, f"gone before streaming: {exc}")
            return
        viewer.fd = fd
        self._viewers[fd] = viewer
        if viewer.key is not None and self.variants is not None:
            self.variants.watch(viewer.key)
            viewer.watched = True
        now = time.monotonic()
        viewer.due = now + viewer.interval
        viewer.progress_at = now
        if viewer.buffer is not None:
            self._send(viewer)  # the response head first; the newest frame follows it
            return
        frame = self.hub.latest
        if frame is not None:
            self._offer(viewer, frame, now)

    def _part(self, frame: Frame, key: VariantKey | None, chunked: bool) -> bytes:
        """``frame``'s part for this variant and framing, built on first use and kept while it is the newest."""
        if frame is not self._parts_of:
            self._parts_of = frame
            self._parts = {}
        if is_own(key, frame):
            key = None  # one shared part for every viewer of the frame's own bytes, whatever they asked
        data = self._parts.get((key, chunked))
        if data is None:
            jpeg = frame.jpeg() if key is None or self.variants is None else self.variants.jpeg(frame, key)
            data = parts.part(jpeg, frame.timestamp)
            if chunked:
                data = parts.chunk(data)
            self._parts[(key, chunked)] = data
        return data

    def _offer(self, viewer: Viewer, frame: Frame, now: float) -> None:
        """Start sending ``frame`` to an idle viewer if it is new to it and due."""
        if frame.seq <= viewer.last_seq:
            return
        if viewer.interval:
            if now < viewer.due - 0.005:
                return
            # Keep to the viewer's grid; after a long gap start a new one.
            viewer.due = max(viewer.due + viewer.interval, now)
        try:
            data = self._part(frame, viewer.key, viewer.chunked)
        except Exception:
            log.exception("cannot encode frame %d", frame.seq)
            viewer.last_seq = frame.seq
            return
        viewer.last_seq = frame.seq
        viewer.progress_at = now
        # The hot path, once per viewer per frame: usually the whole part fits in the socket's
        # buffer, so one send of the shared bytes (no slice, no clock read, no lock) finishes it.
        try:
            sent = viewer.sock.send(data)
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._end(viewer, f"send failed: {exc.strerror or exc}")
            return
        self._bytes_sent += sent
        if sent == len(data):
            viewer.frames_sent += 1
            self._frames_sent += 1
            if viewer.key is not None:
                self._tally(viewer, 1, sent)
            return
        if viewer.key is not None:
            self._tally(viewer, 0, sent)
        # The rest goes out as the socket drains (EPOLLOUT); the newest frame follows it.
        viewer.buffer = memoryview(data)
        viewer.offset = sent
        viewer.in_frame = True
        self._modify(viewer, _IN | _OUT)

    def _send(self, viewer: Viewer) -> None:
        """The socket can take more of the bytes it is on (EPOLLOUT)."""
        buffer = viewer.buffer
        assert buffer is not None
        try:
            sent = viewer.sock.send(buffer[viewer.offset :])
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._end(viewer, f"send failed: {exc.strerror or exc}")
            return
        if sent:
            viewer.offset += sent
            viewer.progress_at = time.monotonic()
            self._bytes_sent += sent
            if viewer.key is not None:
                self._tally(viewer, 0, sent)
        if viewer.offset < len(buffer):
            if not viewer.writing:
                self._modify(viewer, _IN | _OUT)
            return
        viewer.buffer = None
        viewer.offset = 0
        if viewer.in_frame:
            viewer.frames_sent += 1
            self._frames_sent += 1
            if viewer.key is not None:
                self._tally(viewer, 1, 0)
        if viewer.writing:
            self._modify(viewer, _IN)
        latest = self.hub.latest
        if latest is not None and latest.seq > viewer.last_seq:
            # A newer frame arrived while this one was on its way: send the newest now.
            self._offer(viewer, latest, time.monotonic())

    def _modify(self, viewer: Viewer, mask: int) -> None:
        try:
            self._epoll.modify(viewer.fd, mask)
            viewer.writing = bool(mask & _OUT)
        except OSError as exc:
            self._end(viewer, f"socket gone: {exc}")

    def _on_readable(self, viewer: Viewer) -> None:
        """A viewer sends nothing after its request; data here is noise, EOF means it left."""
        try:
            data = viewer.sock.recv(4096)
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._end(viewer, f"connection error: {exc.strerror or exc}")
            return
        if not data:
            self._end(viewer, "viewer left")

    def _drop_stalled(self, now: float) -> None:
        for viewer in list(self._viewers.values()):
            if viewer.buffer is not None and now - viewer.progress_at > self.write_timeout:
                self._end(viewer, f"no progress for {self.write_timeout:g}s")

    def _end(self, viewer: Viewer, reason: str) -> None:
        """Forget the viewer, close its socket and release its slot: once, whatever ended it."""
        if viewer.reason:
            return
        viewer.reason = reason
        if self._viewers.pop(viewer.fd, None) is not None:
            try:
                self._epoll.unregister(viewer.fd)
            except (OSError, ValueError):
                pass
        try:
            viewer.sock.close()
        except OSError:
            pass
        if viewer.watched and viewer.key is not None and self.variants is not None:
            viewer.watched = False
            self.variants.unwatch(viewer.key)
        log.debug("viewer ended after %d frames: %s", viewer.frames_sent, reason)
        if viewer.on_end is not None:
            on_end, viewer.on_end = viewer.on_end, None
            on_end()


class StreamBody:
    """The body of one viewer's response, which the front hands to the fan-out instead of iterating.

    It stands for a ``max_clients`` slot the view has reserved: released once, by the fan-out when
    the viewer ends, or by ``close()`` when the body is never handed over (HEAD, an error, a stop).
    """

    def __init__(self, fanout: Fanout, fps: float | None, key: VariantKey | None = None) -> None:
        self.fanout = fanout
        self.fps = fps
        self.key = key
        self._lock = threading.Lock()
        self._handed = False
        self._released = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(())  # the frames are the fan-out's to send

    def hand_off(self, sock: socket.socket, *, chunked: bool, pending: bytes) -> None:
        """Give the viewer's socket and its unsent response head to the fan-out."""
        with self._lock:
            if self._released:
                sock.close()
                return
            self._handed = True
        self.fanout.attach(sock, chunked=chunked, fps=self.fps, pending=pending, on_end=self._release, key=self.key)

    def close(self) -> None:
        """The WSGI close(): frees the slot unless the fan-out has the viewer."""
        with self._lock:
            if self._handed:
                return
        self._release()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self.fanout.release()
