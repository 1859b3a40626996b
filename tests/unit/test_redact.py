"""Secrets in source URLs never reach a place that shows the URL."""

from __future__ import annotations

import pytest

from camd.redact import redact_url
from camd.settings import load


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:secret@cam/s", "rtsp://***@cam/s"),
        ("rtsp://admin:pa/ss@cam/s", "rtsp://***@cam/s"),
        ("rtsp://admin:p@ss@cam/s", "rtsp://***@cam/s"),
        ("rtsp://admin:p@ss/w@rd@192.168.1.20:554/Streaming/Channels/101", "rtsp://***@192.168.1.20:554/Streaming/Channels/101"),
        ("rtsp://admin:p?ss@cam/s", "rtsp://***@cam/s"),
        ("rtsp://admin:p#ss@cam/s", "rtsp://***@cam/s"),
        ("rtsp://admin:p:ss@cam:8554", "rtsp://***@cam:8554"),
        ("http://user@cam", "http://***@cam"),
        ("http://token-only@cam/video.mjpg", "http://***@cam/video.mjpg"),
        ("rtsp://admin:secret@[fe80::1%25eth0]:554/s", "rtsp://***@[fe80::1%25eth0]:554/s"),
        ("rtsp://admin:secret@", "rtsp://***"),
        ("http://cam/x?user=a@b.example&password=topsecret", "http://***"),
        ("http://cam/video.cgi?password=hunter2", "http://cam/video.cgi?password=***"),
        ("http://cam/video.cgi?user=admin&pwd=hunter2&res=hd", "http://cam/video.cgi?user=admin&pwd=***&res=hd"),
        ("http://cam/v?PASSWORD=a&Pass=b&passwd=c&Token=d&key=e&auth=f&secret=g&api_key=h&ACCESS_TOKEN=i",
         "http://cam/v?PASSWORD=***&Pass=***&passwd=***&Token=***&key=***&auth=***&secret=***&api_key=***"
         "&ACCESS_TOKEN=***"),
        ("http://u:p@cam/v?token=t", "http://***@cam/v?token=***"),
        ("http://cam/v?password=", "http://cam/v?password=***"),
        ("http://cam/v?password=a%26b&x=1", "http://cam/v?password=***&x=1"),
        ("rtsp://cam/s?channel=1&subtype=0", "rtsp://cam/s?channel=1&subtype=0"),
        ("rtsp://cam:554/s", "rtsp://cam:554/s"),
        ("RTSP://admin:secret@cam/s", "RTSP://***@cam/s"),
        ("/dev/video0", "/dev/video0"),
        ("auto", "auto"),
        ("file:/tmp/rec.mp4", "file:/tmp/rec.mp4"),
    ],
)  # fmt: skip
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("rtsp://admin:pa/ss@cam/s", ["pa/ss", "pa"]),
        ("rtsp://admin:p@ss@cam/s", ["p@ss", ":p"]),
        ("http://cam/x?user=a@b.example&password=topsecret", ["topsecret"]),
        ("http://a:b@c@d:e@cam/x", ["b@c", "e@"]),
        ("rtsp://admin:secret@[broken/s", ["secret"]),
    ],
)
def test_no_part_of_the_secret_is_left(url: str, secrets: list[str]) -> None:
    shown = redact_url(url)
    for secret in secrets:
        assert secret not in shown, shown


def test_the_settings_line_hides_the_password() -> None:
    settings = load({"source": "rtsp://admin:p@ss@cam/s?token=abc"}, environ={})
    assert settings.public_view()["source"] == "rtsp://***@cam/s?token=***"


def test_a_network_source_describes_itself_without_secrets() -> None:
    from camd.sources import make_source

    settings = load({"source": "rtsp://admin:p@ss@cam/s?pwd=x"}, environ={})
    # The description is what the log, /api/status, camd_info and camd probe show.
    assert make_source(settings).description == "rtsp://***@cam/s?pwd=***"


@pytest.mark.parametrize("source", ["foo://admin:secret@cam/s", "weird://admin:secret@cam"])
def test_a_bad_source_is_refused_without_its_secret(source: str) -> None:
    from camd.settings import SettingsError
    from camd.sources import make_source

    with pytest.raises(SettingsError) as refused:
        make_source(load({"source": source}, environ={}))
    assert "secret" not in str(refused.value) and "***" in str(refused.value)
