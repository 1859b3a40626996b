"""systemd's notify socket, played by the test: records every message camd sends."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time

from tests.support import wait_until

WATCHDOG_USEC = "2000000"  # 2 s: camd checks (and feeds) every 0.5 s


class NotifySocket:
    """The AF_UNIX datagram socket systemd would own; records every message camd sends."""

    def __init__(self) -> None:
        # sun_path is limited to 108 bytes: pytest's tmp_path can be longer.
        self.dir = tempfile.mkdtemp(prefix="camd-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.partition("=")[::2] for line in data.decode().splitlines() if line)
            self.messages.append((time.monotonic(), fields))

    def env(self, watchdog_usec: str | None = WATCHDOG_USEC) -> dict[str, str]:
        env = {"NOTIFY_SOCKET": self.path}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = watchdog_usec
        return env

    def count(self, key: str, since: float = 0.0, until: float = float("inf")) -> int:
        return sum(1 for at, fields in list(self.messages) if key in fields and since <= at < until)

    def values(self, key: str) -> list[str]:
        return [fields[key] for _, fields in list(self.messages) if key in fields]

    def wait_for(self, key: str, timeout: float = 20, value: str | None = None) -> None:
        wait_until(
            lambda: any(key in fields and value in (None, fields[key]) for _, fields in list(self.messages)),
            timeout, what=f"{key}={value or '...'} on the notify socket",
        )  # fmt: skip

    def wait_watchdogs(self, count: int, timeout: float = 20) -> None:
        start = time.monotonic()
        wait_until(lambda: self.count("WATCHDOG", since=start) >= count, timeout, what=f"{count} WATCHDOG=1")

    def close(self) -> None:
        self._closing.set()
        self._thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
