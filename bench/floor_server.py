"""The reference floor: the least a Python MJPEG server can spend per delivered frame.

One thread, one epoll, non-blocking sockets; each frame is encoded once and
wrapped once (multipart part inside an HTTP/1.1 chunk, the same bytes camd
sends), and every viewer is sent that one shared buffer. A viewer still busy
with a frame skips the frames that arrive meanwhile and then gets the newest
one. No WSGI, no Flask, no counters: whatever camd spends above this is the
price of its web framework and bookkeeping.

Frames come from a capture thread like camd's: camd.sources.TestPatternSource
and cv2.imencode once per frame, or an MJPEG recording's packets as they are.

    python -m bench.floor_server --port 8081 --user admin --password secret
"""

from __future__ import annotations

import argparse
import base64
import errno
import hmac
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass

import cv2

from camd.sources import FFmpegSource, SourceError, TestPatternSource

BOUNDARY = b"camdframe"
PART_HEAD = b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Timestamp: %.6f\r\n\r\n"
RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=" + BOUNDARY + b"\r\n"
    b"Cache-Control: no-store\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)
UNAUTHORIZED = (
    b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="camd"\r\nContent-Length: 0\r\n'
    b"Connection: close\r\n\r\n"
)


@dataclass(eq=False)
class Client:
    sock: socket.socket
    request: bytearray
    streaming: bool = False
    buffer: memoryview | None = None
    offset: int = 0
    seq: int = 0
    writing: bool = False


def chunked_part(jpeg: bytes, timestamp: float) -> bytes:
    body = b"".join((PART_HEAD % (len(jpeg), timestamp), jpeg, b"\r\n"))
    return b"%x\r\n%b\r\n" % (len(body), body)


class FloorServer:
    def __init__(self, port: int, host: str, user: str, password: str) -> None:
        self.listener = socket.create_server((host, port), backlog=1024)
        self.listener.setblocking(False)
        self.auth = b"Basic " + base64.b64encode(f"{user}:{password}".encode())
        self.epoll = select.epoll()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.epoll.register(self.listener.fileno(), select.EPOLLIN)
        self.epoll.register(self.wake_fd, select.EPOLLIN)
        self.clients: dict[int, Client] = {}
        self.latest: tuple[bytes, int] = (b"", 0)  # the newest part and its number, replaced whole
        self.stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def publish(self, part: bytes) -> None:
        """Called from the capture thread: the newest frame, ready to send."""
        self.latest = (part, self.latest[1] + 1)
        os.eventfd_write(self.wake_fd, 1)

    def serve(self) -> None:
        listen_fd = self.listener.fileno()
        while not self.stop.is_set():
            for fd, events in self.epoll.poll(0.5):
                if fd == listen_fd:
                    self._accept()
                elif fd == self.wake_fd:
                    os.eventfd_read(self.wake_fd)
                    part, seq = self.latest
                    for client in list(self.clients.values()):
                        if client.streaming and client.buffer is None:
                            self._start(client, part, seq)
                else:
                    found = self.clients.get(fd)
                    if found is None:
                        continue
                    if events & select.EPOLLOUT and found.buffer is not None:
                        self._send(found)
                    elif events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        self._read(found)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    return
                raise
            sock.setblocking(False)
            self.clients[sock.fileno()] = Client(sock, bytearray())
            self.epoll.register(sock.fileno(), select.EPOLLIN)

    def _read(self, client: Client) -> None:
        try:
            data = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(client)
            return
        if client.streaming:
            return  # a viewer has nothing more to say
        client.request += data
        end = client.request.find(b"\r\n\r\n")
        if end < 0:
            if len(client.request) > 16384:
                self._close(client)
            return
        authorized = False
        for line in bytes(client.request[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"authorization":
                authorized = hmac.compare_digest(value.strip(), self.auth)
        if not authorized:
            client.sock.send(UNAUTHORIZED)
            self._close(client)
            return
        client.sock.send(RESPONSE_HEAD)  # a fresh socket's buffer takes it whole
        client.streaming = True
        part, seq = self.latest
        if part:
            self._start(client, part, seq)

    def _start(self, client: Client, part: bytes, seq: int) -> None:
        if seq <= client.seq:
            return
        client.buffer, client.offset, client.seq = memoryview(part), 0, seq
        self._send(client)

    def _send(self, client: Client) -> None:
        assert client.buffer is not None
        try:
            client.offset += client.sock.send(client.buffer[client.offset :])
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close(client)
            return
        if client.offset < len(client.buffer):
            if not client.writing:
                client.writing = True
                self.epoll.modify(client.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
            return
        client.buffer = None
        if client.writing:
            client.writing = False
            self.epoll.modify(client.sock.fileno(), select.EPOLLIN)
        part, seq = self.latest
        if seq > client.seq:
            self._start(client, part, seq)

    def _close(self, client: Client) -> None:
        fd = client.sock.fileno()
        self.clients.pop(fd, None)
        try:
            self.epoll.unregister(fd)
        except OSError:
            pass
        client.sock.close()


def capture(server: FloorServer, source: str, width: int, height: int, fps: float, quality: int) -> None:
    """The camera thread: one JPEG and one wrapped part per frame, whoever watches."""
    if source == "test":
        pattern = TestPatternSource(width, height, fps)
        pattern.open()
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        while not server.stop.is_set():
            frame = pattern.read()
            assert frame.pixels is not None
            ok, jpeg = cv2.imencode(".jpg", frame.pixels, params)
            if ok:
                server.publish(chunked_part(jpeg.tobytes(), frame.timestamp))
        return
    path = source.removeprefix("file:")
    recording = FFmpegSource(path, recording=True, passthrough="on", fps=fps)
    try:
        recording.open()
    except SourceError as exc:
        sys.exit(f"floor_server: {exc}")
    while not server.stop.is_set():
        captured = recording.read()
        if captured is not None and captured.jpeg is not None:
            server.publish(chunked_part(captured.jpeg, captured.timestamp))
        elif captured is not None and captured.pixels is not None:
            ok, jpeg = cv2.imencode(".jpg", captured.pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                server.publish(chunked_part(jpeg.tobytes(), captured.timestamp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default=os.environ.get("BENCH_PASSWORD", ""))
    parser.add_argument("--source", default="test", help="test or file:PATH (an MJPEG recording, sent as it is)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args(argv)
    server = FloorServer(args.port, args.host, args.user, args.password)
    signal.signal(signal.SIGTERM, lambda *_: server.stop.set())
    signal.signal(signal.SIGINT, lambda *_: server.stop.set())
    threading.Thread(
        target=capture, args=(server, args.source, args.width, args.height, args.fps, args.quality), daemon=True
    ).start()
    print(f"floor serving on http://{args.host}:{server.port}/stream.mjpg", flush=True)
    started = time.monotonic()
    server.serve()
    print(f"floor stopped after {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
