"""Durations as people write them: parsed from 5m/7d/1h30m, shown the same way in help, ranges and logs."""

from __future__ import annotations

import pytest

from camd import cli
from camd.settings import SettingsError, describe_range, format_duration, load, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("250ms", 0.25), ("90s", 90), ("5m", 300), ("12h", 43200), ("7d", 604800),
     ("1h30m", 5400), (" 2m ", 120), ("0", 0)],
)  # fmt: skip
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "5x", "-1", "m5", "", "1h 30m", "nan"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (2, "2s"), (2.5, "2.5s"), (90, "1m30s"), (300, "5m"), (5400, "1h30m"),
     (86400, "1d"), (604800, "7d"), (3661, "1h1m1s")],
)  # fmt: skip
def test_format_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_ranges_and_log_line_use_units() -> None:
    assert describe_range("stall_timeout") == "500ms to 10m"
    assert describe_range("stills_interval") == "at most 7d"
    line = load({"stills_interval": "10m", "stills_max_age": "30d"}, environ={}).describe(only_changed=True)
    assert line == "stills_interval=10m stills_max_age=30d"
    assert "stills_interval=5m" in load({}, environ={}).describe()


def test_help_shows_defaults_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 5m)" in text and "(default: 7d)" in text and "(default: 2s)" in text
    assert "300s" not in text and "604800" not in text


def test_stills_interval_zero_turns_periodic_stills_off() -> None:
    assert load({"stills_interval": "0"}, environ={}).stills_interval == 0
    with pytest.raises(SettingsError, match="stills_interval"):
        load({"stills_interval": "8d"}, environ={})
