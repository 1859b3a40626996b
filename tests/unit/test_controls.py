"""camd.controls without a camera: which controls the settings ask for, in which order, and warnings said once."""

from __future__ import annotations

import logging

import cv2
import pytest

from camd import controls
from camd.settings import SettingsError, load


def asked(**values: object) -> list[tuple[str, int]]:
    return [(ask.setting, ask.value) for ask in controls.wanted(load(values, environ={}, config=None))]


def test_nothing_set_leaves_every_control_to_the_camera() -> None:
    assert asked() == []


def test_automatic_modes_go_before_the_values_they_would_block() -> None:
    # A UVC camera refuses exposure_time_absolute while auto exposure is on, and focus_absolute while autofocus is.
    assert asked(exposure="100", focus="40", brightness="-3", power_line_frequency="60") == [
        ("power_line_frequency", 2), ("auto_exposure", controls.EXPOSURE_MANUAL), ("exposure", 100),
        ("autofocus", 0), ("focus", 40), ("brightness", -3),
    ]  # fmt: skip


@pytest.mark.parametrize(("raw", "value"), [("50", 1), ("60Hz", 2), ("off", 0), ("auto", 3)])
def test_power_line_frequency_values(raw: str, value: int) -> None:
    assert asked(power_line_frequency=raw) == [("power_line_frequency", value)]


def test_opencv_sets_the_controls_it_maps_and_camd_the_others() -> None:
    settings = load({"power_line_frequency": "50", "auto_white_balance": "off", "autofocus": "on"}, environ={})
    props = {ask.setting: ask.prop for ask in controls.wanted(settings)}
    assert props == {"power_line_frequency": None, "auto_white_balance": cv2.CAP_PROP_AUTO_WB,
                     "autofocus": cv2.CAP_PROP_AUTOFOCUS}  # fmt: skip


@pytest.mark.parametrize(
    ("values", "named"),
    [({"exposure": "100", "auto_exposure": "on"}, "exposure"), ({"focus": "10", "autofocus": "on"}, "focus"),
     ({"rotate": "90", "passthrough": "on"}, "passthrough"), ({"power_line_frequency": "55"}, "power_line_frequency"),
     ({"rotate": "45"}, "rotate"), ({"flip": "diagonal"}, "flip")],
)  # fmt: skip
def test_contradictions_and_bad_values_are_one_line_naming_the_setting(values: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load(values, environ={})


def test_camera_means_unset() -> None:
    settings = load({"brightness": "camera", "autofocus": "camera", "power_line_frequency": "camera"}, environ={})
    assert (settings.brightness, settings.autofocus, settings.power_line_frequency) == (None, None, None)


def test_a_problem_is_warned_once_then_only_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    applier = controls.Controls(load({"focus": "10"}, environ={}))
    caplog.set_level(logging.DEBUG, logger="camd.controls")
    for _ in range(3):  # as on every reopen
        applier.apply("/dev/video-camd-test-missing", cv2.VideoCapture())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "/dev/video-camd-test-missing" in warnings[0].getMessage()
