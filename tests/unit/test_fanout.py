"""The stream fan-out over socketpairs: order, newest-not-oldest, the write timeout, the slot released once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from camd.frames import Frame
from camd.http import parts
from camd.http.fanout import Fanout, StreamBody
from camd.hub import Hub
from camd.variants import VariantKey, Variants
from tests.support import wait_until


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
    wait_until(lambda: released, 3, what="the slot to be released")
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
    wait_until(lambda: fanout.viewers == 0, 5, what="the stalled viewer to be dropped")
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
    wait_until(lambda: all(theirs.recv(10, socket.MSG_PEEK) for _, theirs in pairs), 3, what="first frames")
    fanout.stop()
    assert fanout.viewers == 0
    assert not fanout.reserve()  # stopping: no new viewer
    late, theirs = socket.socketpair()
    done = threading.Event()
    fanout.attach(late, chunked=False, fps=None, on_end=done.set)
    assert done.is_set()  # attached after stop: closed and released at once
    theirs.settimeout(1)
    assert theirs.recv(10) == b""


# --- variants (?width=, ?quality=) ---------------------------------------------------------------


def real_jpeg(number: int, width: int = 640, height: int = 360) -> bytes:
    """A real JPEG (variants decode it), its frame number drawn so that frames differ."""
    image = np.full((height, width, 3), 90, np.uint8)
    cv2.rectangle(image, (number * 13 % (width - 40), 40), (number * 13 % (width - 40) + 40, 80), (255, 255, 255), -1)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def width_of(data: bytes) -> int:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the part does not decode"
    return int(image.shape[1])


@pytest.fixture
def variant_fanout() -> Iterator[tuple[Hub, Variants, Fanout]]:
    hub = Hub(80)
    hub.set_camera(width=640, height=360)
    variants = Variants(hub.counters)
    fanout = Fanout(hub, max_clients=8, write_timeout=1.0, variants=variants)
    fanout.start()
    yield hub, variants, fanout
    fanout.stop()


def attach(fanout: Fanout, key: VariantKey | None, chunked: bool = False) -> Reader:
    ours, theirs = socket.socketpair()
    assert fanout.reserve()
    StreamBody(fanout, None, key).hand_off(ours, chunked=chunked, pending=b"")
    return Reader(theirs, chunked)


FULL, SMALL, LOW = VariantKey(None, 80), VariantKey(320, 80), VariantKey(480, 30)


def test_each_viewer_gets_its_variant_made_once_per_frame_and_full_size_gets_the_cameras_bytes(
    variant_fanout: tuple[Hub, Variants, Fanout],
) -> None:
    hub, variants, fanout = variant_fanout
    hub.publish(jpeg=real_jpeg(0))
    readers = {key: [attach(fanout, key, chunked) for chunked in (False, True)] for key in (FULL, SMALL, LOW)}
    for pair in readers.values():
        for reader in pair:
            reader.part()  # the newest frame at once
    wait_until(lambda: variants.viewers() == {FULL: 2, SMALL: 2, LOW: 2}, 3, what="every viewer to be watched")
    encodes_before = dict(variants.counts())
    sent = []
    for number in range(1, 11):
        sent.append(real_jpeg(number))
        hub.publish(jpeg=sent[-1])
        got = {key: [reader.part() for reader in pair] for key, pair in readers.items()}
        assert got[FULL] == [sent[-1], sent[-1]]  # the camera's own bytes, to plain and chunked viewers alike
        for key in (SMALL, LOW):
            assert got[key][0] == got[key][1]  # one encode shared by both of its viewers
        assert width_of(got[SMALL][0]) == 320 and width_of(got[LOW][0]) == 480
        assert len(got[LOW][0]) < len(sent[-1])
    counts = variants.counts()
    # Exactly one encode per frame per made variant; none for the full-size viewers.
    assert counts[SMALL][0] - encodes_before.get(SMALL, (0, 0))[0] == 10
    assert counts[LOW][0] - encodes_before.get(LOW, (0, 0))[0] == 10
    assert FULL not in counts
    wait_until(lambda: all(variants.sent().get(key, (0, 0))[0] >= 22 for key in readers), 3, what="sends to be counted")
    frames, nbytes = variants.sent()[FULL]
    assert frames == 22 and nbytes > 22 * len(sent[-1])


def test_a_variant_is_watched_exactly_while_its_viewers_are_connected(
    variant_fanout: tuple[Hub, Variants, Fanout],
) -> None:
    hub, variants, fanout = variant_fanout
    hub.publish(jpeg=real_jpeg(0))
    first, second = attach(fanout, SMALL), attach(fanout, SMALL)
    first.part(), second.part()
    assert variants.viewers() == {SMALL: 2}
    first.sock.close()
    wait_until(lambda: variants.viewers() == {SMALL: 1}, 3, what="the first viewer to be unwatched")
    hub.publish(jpeg=real_jpeg(1))
    assert width_of(second.part()) == 320
    second.sock.close()
    wait_until(lambda: variants.viewers() == {} and fanout.viewers == 0, 3, what="the variant to be unwatched")
    encodes = variants.counts()[SMALL][0]
    for number in range(2, 6):  # nobody watches: nothing is made
        hub.publish(jpeg=real_jpeg(number))
    time.sleep(0.2)
    assert variants.counts()[SMALL][0] == encodes


def test_stop_unwatches_every_variant_once(hub: Hub) -> None:
    hub.set_camera(width=640, height=360)
    variants = Variants(hub.counters)
    fanout = Fanout(hub, max_clients=4, variants=variants)
    fanout.start()
    hub.publish(jpeg=real_jpeg(0))
    readers = [attach(fanout, key) for key in (SMALL, SMALL, LOW)]
    for reader in readers:
        reader.part()
    assert variants.viewers() == {SMALL: 2, LOW: 1}
    fanout.stop()
    assert variants.viewers() == {} and fanout.viewers == 0


def test_full_size_viewers_are_sent_before_a_variant_is_made(variant_fanout: tuple[Hub, Variants, Fanout]) -> None:
    """Making a variant (slowed down here) never delays the viewers of the camera's bytes, whatever the attach order."""
    hub, variants, fanout = variant_fanout
    hub.publish(jpeg=real_jpeg(0))
    small = attach(fanout, SMALL)  # attached first
    full = attach(fanout, FULL)
    small.part(), full.part()
    original = variants.jpeg

    def slow(frame: Frame, key: VariantKey) -> bytes:
        time.sleep(0.5)
        return original(frame, key)

    variants.jpeg = slow  # type: ignore[method-assign]
    published = time.monotonic()
    hub.publish(jpeg=real_jpeg(1))
    full.part()
    full_after = time.monotonic() - published
    assert width_of(small.part()) == 320
    small_after = time.monotonic() - published
    assert full_after < 0.25 and small_after >= 0.5, (full_after, small_after)
