"""The stream fan-out over socketpairs: order, newest-not-oldest, the write timeout, the slot released once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from camd.http import parts
from camd.http.fanout import Fanout, StreamBody
from camd.hub import Hub


def wait_until(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def jpeg(number: int, size: int = 300) -> bytes:
    """A stand-in for a JPEG: the fan-out only frames bytes, it never decodes them."""
    body = f"frame {number:06d} ".encode()
    return b"\xff\xd8" + body + b"x" * (size - len(body) - 4) + b"\xff\xd9"


class Reader:
    """The viewer's end of a socketpair, parsing parts (plain or chunked) as they arrive."""

    def __init__(self, sock: socket.socket, chunked: bool) -> None:
        self.sock, self.chunked = sock, chunked
        self.buffer = b""
        self.sock.settimeout(5)

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError
        self.buffer += data

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def head(self, text: bytes) -> None:
        assert self._take(len(text)) == text

    def part(self) -> bytes:
        """The next part's JPEG."""
        if self.chunked:
            size = int(self._line(), 16)
            raw = self._take(size)
            assert self._take(2) == b"\r\n"
        else:
            raw = b""
            while raw.count(b"\r\n\r\n") == 0:
                raw += self._take(1)
            length = int(raw.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            raw += self._take(length + 2)
        head, _, rest = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"--" + parts.BOUNDARY.encode())
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert rest[length:] == b"\r\n"
        return rest[:length]


@pytest.fixture
def hub() -> Hub:
    return Hub(80)


@pytest.fixture
def fanout(hub: Hub) -> Iterator[Fanout]:
    fanout = Fanout(hub, max_clients=4, write_timeout=1.0)
    fanout.start()
    yield fanout
    fanout.stop()


def frame_number(data: bytes) -> int:
    return int(data[2:].split(b" ")[1])


@pytest.mark.parametrize("chunked", [False, True])
def test_frames_arrive_in_order_after_the_pending_head(hub: Hub, fanout: Fanout, chunked: bool) -> None:
    hub.publish(jpeg=jpeg(0))
    ours, theirs = socket.socketpair()
    released: list[int] = []
    assert fanout.reserve()
    fanout.attach(
        ours,
        chunked=chunked,
        fps=None,
        pending=b"HEAD BYTES\r\n",
        on_end=lambda: (released.append(1), fanout.release()),
    )
    reader = Reader(theirs, chunked)
    reader.head(b"HEAD BYTES\r\n")
    assert frame_number(reader.part()) == 0  # the newest frame at once, not the next one
    seen = []
    for number in range(1, 30):
        hub.publish(jpeg=jpeg(number))
        seen.append(frame_number(reader.part()))
    assert seen == list(range(1, 30))
    theirs.close()
    wait_until(lambda: released, 3, "the slot to be released")
    assert fanout.viewers == 0 and released == [1]


def test_a_stalled_reader_gets_the_newest_frame_not_old_ones(hub: Hub, fanout: Fanout) -> None:
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    hub.publish(jpeg=jpeg(0, 100_000))
    fanout.attach(ours, chunked=False, fps=None)
    reader = Reader(theirs, False)
    for number in range(1, 20):  # published while the viewer reads nothing
        hub.publish(jpeg=jpeg(number, 100_000))
        time.sleep(0.02)
    received = [frame_number(reader.part())]
    while received[-1] != 19:
        received.append(frame_number(reader.part()))
    # The parts already on their way are finished, then the newest follows: the ones in between are skipped.
    assert received == sorted(received) and len(received) <= 4, received


def test_a_reader_that_stops_is_dropped_after_the_write_timeout_and_released_once(hub: Hub, fanout: Fanout) -> None:
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    released: list[float] = []
    assert fanout.reserve()
    body = StreamBody(fanout, None)
    body.hand_off(ours, chunked=True, pending=b"")
    started = time.monotonic()
    for number in range(40):
        hub.publish(jpeg=jpeg(number, 200_000))
        time.sleep(0.01)
    wait_until(lambda: fanout.viewers == 0, 5, "the stalled viewer to be dropped")
    released.append(time.monotonic() - started)
    assert released[0] >= 1.0  # not before the write timeout
    body.close()  # the WSGI close() after a hand-off must not release the slot again
    assert fanout.viewers == 0
    theirs.settimeout(1)
    received = b""
    while True:  # the fan-out closed its end
        data = theirs.recv(1 << 20)
        if not data:
            break
        received += data


def test_a_body_never_handed_off_releases_its_slot_on_close(fanout: Fanout) -> None:
    assert fanout.reserve()
    body = StreamBody(fanout, 5.0)
    assert list(body) == []
    body.close()
    body.close()
    assert fanout.viewers == 0


def test_stop_ends_viewers_and_releases_every_slot(hub: Hub) -> None:
    fanout = Fanout(hub, max_clients=4)
    fanout.start()
    hub.publish(jpeg=jpeg(0))
    pairs = [socket.socketpair() for _ in range(3)]
    for ours, _ in pairs:
        assert fanout.reserve()
        StreamBody(fanout, None).hand_off(ours, chunked=False, pending=b"")
    wait_until(lambda: all(theirs.recv(10, socket.MSG_PEEK) for _, theirs in pairs), 3, "first frames")
    fanout.stop()
    assert fanout.viewers == 0
    assert not fanout.reserve()  # stopping: no new viewer
    late, theirs = socket.socketpair()
    done = threading.Event()
    fanout.attach(late, chunked=False, fps=None, on_end=done.set)
    assert done.is_set()  # attached after stop: closed and released at once
    theirs.settimeout(1)
    assert theirs.recv(10) == b""
