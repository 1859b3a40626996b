"""A mistyped flag gets a "did you mean", like a mistyped key in the TOML file."""

from __future__ import annotations

import pytest

from camd import cli


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [(["--stils-interval", "5m"], "--stills-interval"), (["run", "--prot", "8000"], "--port"),
     (["run", "--sorce=test"], "--source"), (["passwd", "--delte", "bob"], "--delete"),
     (["still", "--state-dri", "/tmp/x"], "--state-dir")],
)  # fmt: skip
def test_typo_suggests_the_flag(argv: list[str], suggestion: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"did you mean {suggestion}?" in error, error


def test_nothing_close_is_argparse_s_own_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["run", "--zzzzzz"])
    error = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in error and "did you mean" not in error


def test_right_flags_still_parse() -> None:
    args = cli.parse_args(["--stills-interval", "0", "--port", "8000"])
    assert args.command == "run" and args.stills_interval == "0" and args.port == "8000"
