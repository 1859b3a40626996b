"""Binding is checked first: a busy port is a one-line usage error (exit 2) before camd creates anything."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from camd.http import BindError, bind

REPO = Path(__file__).resolve().parents[2]


def test_bind_listens_on_a_free_port() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        sock.close()


def test_a_busy_port_is_named_with_what_to_do() -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(BindError) as caught:
            bind("127.0.0.1", port)
        assert str(caught.value) == f"port {port} is in use (another camd?); choose another with --port"
    finally:
        taken.close()


def test_an_address_that_is_not_ours_names_host_and_port() -> None:
    with pytest.raises(BindError) as caught:
        bind("192.0.2.1", 8080)  # TEST-NET-1: on no interface of this machine
    assert "192.0.2.1" in str(caught.value) and "8080" in str(caught.value)


def test_camd_run_on_a_busy_port_exits_2_with_one_line_and_creates_nothing(tmp_path: Path) -> None:
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    state = tmp_path / "state"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "camd", "run", "--source", "test", "--host", "127.0.0.1", "--port", str(port),
             "--state-dir", str(state)],
            capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
        )  # fmt: skip
    finally:
        taken.close()
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"camd: port {port} is in use (another camd?); choose another with --port"], result.stderr
    assert not (state / "users").exists()
