"""One daemon per state directory: an exclusive ``flock`` on ``<state_dir>/.lock`` that also names its pid.

Two daemons on one folder would both save stills (doubled ``-1`` files) and fight
over the users file. The kernel drops the lock when the process ends, however it
ends, so a crash never leaves a stale lock; the file itself stays (removing it
would race with a daemon starting).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = ".lock"


class StateDirBusy(RuntimeError):
    """Another process holds the state directory's lock."""


class StateLock:
    """Held for the daemon's whole life; ``acquire`` before creating anything else in the folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write this process's pid into it; StateDirBusy names the holder."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise StateDirBusy(f"another camd{who} is already running with state_dir={str(self.state_dir)!r}") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def running_pid(state_dir: Path) -> int | None:
    """The pid of the daemon that holds ``state_dir``'s lock, or None when no daemon does."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        return None  # nobody holds it: the pid in the file is from a daemon that has ended
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
