"""camd.v4l2 without a camera: the ctypes structures match <linux/videodev2.h>, and what probe prints."""

from __future__ import annotations

import ctypes

import pytest

from camd import v4l2


@pytest.mark.parametrize(
    ("struct", "size"),
    [
        (v4l2.Capability, 104), (v4l2.FmtDesc, 64), (v4l2.FrmSizeEnum, 44), (v4l2.FrmIvalEnum, 52),
        (v4l2.QueryCtrl, 68), (v4l2.QueryMenu, 44), (v4l2.Control, 8), (v4l2.RequestBuffers, 20),
    ],
)  # fmt: skip
def test_structures_have_the_kernels_sizes(struct: type[ctypes.Structure], size: int) -> None:
    # The size is part of every ioctl number: a wrong one is ENOTTY from every driver.
    assert ctypes.sizeof(struct) == size


def test_ioctl_numbers_are_the_kernels() -> None:
    # As computed by the C preprocessor from <linux/videodev2.h> on x86_64 and arm64.
    assert v4l2.VIDIOC_QUERYCAP == 0x80685600
    assert v4l2.VIDIOC_ENUM_FMT == 0xC0405602
    assert v4l2.VIDIOC_REQBUFS == 0xC0145608
    assert v4l2.VIDIOC_G_CTRL == 0xC008561B
    assert v4l2.VIDIOC_S_CTRL == 0xC008561C
    assert v4l2.VIDIOC_QUERYCTRL == 0xC0445624
    assert v4l2.VIDIOC_QUERYMENU == 0xC02C5625
    assert v4l2.VIDIOC_ENUM_FRAMESIZES == 0xC02C564A
    assert v4l2.VIDIOC_ENUM_FRAMEINTERVALS == 0xC034564B


@pytest.mark.parametrize(
    ("name", "key"),
    [("Power Line Frequency", "power_line_frequency"), ("Exposure Time, Absolute", "exposure_time_absolute"),
     ("White Balance, Automatic", "white_balance_automatic"), ("Focus, Automatic Continuous",
     "focus_automatic_continuous")],
)  # fmt: skip
def test_control_keys_are_v4l2_ctls_names(name: str, key: str) -> None:
    assert v4l2.control_key(name) == key


def test_a_control_describes_its_range_default_and_value() -> None:
    menu = v4l2.ControlInfo("power_line_frequency", v4l2.CID_POWER_LINE_FREQUENCY, "menu", 0, 2, 1, 1, 2, False,
                            {0: "Disabled", 1: "50 Hz", 2: "60 Hz"})  # fmt: skip
    assert menu.describe() == (
        "power_line_frequency (menu): menu 0=Disabled, 1=50 Hz, 2=60 Hz, default 1 (50 Hz), now 2 (60 Hz)"
    )
    focus = v4l2.ControlInfo("focus_absolute", v4l2.CID_FOCUS_ABSOLUTE, "int", 0, 250, 5, 0, None, True)
    assert focus.describe() == (
        "focus_absolute (int): 0 to 250 step 5, default 0, now unreadable (inactive while the automatic mode is on)"
    )
    switch = v4l2.ControlInfo("focus_automatic_continuous", v4l2.CID_FOCUS_AUTO, "bool", 0, 1, 1, 1, 0, False)
    assert switch.describe() == "focus_automatic_continuous (bool): on/off, default on, now off"


def test_a_missing_node_is_an_oserror_not_a_crash(tmp_path: object) -> None:
    with pytest.raises(FileNotFoundError):
        v4l2.describe("/dev/video-camd-test-missing")
    assert v4l2.busy("/dev/video-camd-test-missing") is False
