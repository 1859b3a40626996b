"""The stream end to end on the test pattern: parts, headers, credentials."""

from __future__ import annotations

import time

from tests.conftest import Daemon, decode, read_parts


def test_stream_parts_have_length_timestamp_and_decode(daemon: Daemon) -> None:
    parts = read_parts(daemon.url("/stream.mjpg"), 10, auth=daemon.auth)
    assert len(parts) == 10
    stamps = [float(part.headers["x-timestamp"]) for part in parts]
    assert stamps == sorted(stamps) and len(set(stamps)) == 10
    assert abs(stamps[-1] - time.time()) < 5
    for part in parts:
        assert part.headers["content-type"] == "image/jpeg"
        assert int(part.headers["content-length"]) == len(part.body)
        assert decode(part.body).shape == (480, 640, 3)


def test_stream_needs_credentials(daemon: Daemon) -> None:
    response = daemon.get("/stream.mjpg", auth=False)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="camd"'
