"""One daemon per state directory: the flock on <state_dir>/.lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from camd.lock import StateDirBusy, StateLock, running_pid

HOLD = """
import sys, time
from pathlib import Path
from camd.lock import StateLock
StateLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(30)
"""


def test_second_lock_is_refused_and_names_the_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = StateLock(state)
    first.acquire()  # creates the directory
    with pytest.raises(StateDirBusy, match=f"pid {os.getpid()}.*{state}"):
        StateLock(state).acquire()
    assert running_pid(state) == os.getpid()
    first.release()
    assert running_pid(state) is None  # the pid left in the file is not believed
    second = StateLock(state)
    second.acquire()
    second.release()


def test_lock_of_another_process_and_its_end(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert running_pid(tmp_path) == holder.pid
        with pytest.raises(StateDirBusy):
            StateLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(10)
    # The kernel dropped the lock with the process: no stale lock after a crash.
    assert running_pid(tmp_path) is None
    lock = StateLock(tmp_path)
    lock.acquire()
    lock.release()


def test_no_lock_file_means_no_daemon(tmp_path: Path) -> None:
    assert running_pid(tmp_path) is None
