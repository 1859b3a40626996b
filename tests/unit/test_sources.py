"""camd.sources without a camera: rotating and mirroring the picture, what that does to passthrough,
and how long OpenCV waits for a V4L2 frame."""

from __future__ import annotations

import os

import numpy as np
import pytest

from camd.settings import load
from camd.sources import Captured, Opener, Oriented, SourceInfo, V4L2Source, make_source


class Corner:
    """A 4x2 source whose only white pixel is the top-left one; optionally as JPEG bytes."""

    description = "corner"

    def __init__(self, jpeg: bool = False) -> None:
        self.jpeg = jpeg

    def open(self) -> SourceInfo:
        return SourceInfo("test", 4, 2, 10.0, "MJPG" if self.jpeg else "BGR3", passthrough=self.jpeg)

    def read(self) -> Captured:
        pixels = np.zeros((2, 4, 3), np.uint8)
        pixels[0, 0] = 255
        if self.jpeg:
            import cv2

            big = cv2.resize(pixels, (64, 32), interpolation=cv2.INTER_NEAREST)
            return Captured(1.0, jpeg=cv2.imencode(".jpg", big)[1].tobytes())
        return Captured(1.0, pixels=pixels)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("rotate", "flip", "shape", "white"),
    [(0, "horizontal", (2, 4), (0, 3)), (0, "vertical", (2, 4), (1, 0)), (90, "none", (4, 2), (0, 1)),
     (180, "none", (2, 4), (1, 3)), (270, "none", (4, 2), (3, 0)), (90, "horizontal", (4, 2), (3, 1))],
)  # fmt: skip
def test_rotate_and_flip_move_the_picture(
    rotate: int, flip: str, shape: tuple[int, int], white: tuple[int, int]
) -> None:
    source = Oriented(Corner(), rotate, flip)
    info = source.open()
    assert (info.height, info.width) == shape and info.passthrough is False
    frame = source.read()
    assert frame is not None and frame.pixels is not None
    assert frame.pixels.shape[:2] == shape
    assert tuple(int(i) for i in np.argwhere(frame.pixels[:, :, 0] == 255)[0]) == white


def test_a_jpeg_camera_is_decoded_to_be_turned() -> None:
    frame = Oriented(Corner(jpeg=True), 90, "none").read()
    assert frame is not None and frame.jpeg is None and frame.pixels is not None
    assert frame.pixels.shape == (64, 32, 3)


def test_turning_a_v4l2_camera_turns_passthrough_off_and_keeps_its_device() -> None:
    settings = load({"source": "/dev/video3", "rotate": "180"}, environ={})
    source = make_source(settings)
    assert isinstance(source, Oriented) and source.device == "/dev/video3"
    assert isinstance(source.inner, V4L2Source) and source.inner.passthrough == "off"
    plain = make_source(load({"source": "2"}, environ={}))
    assert isinstance(plain, V4L2Source) and plain.device == "/dev/video2" and plain.passthrough == "auto"
    # The camera auto chose is what a reopen asks for again.
    again = make_source(load({"source": "auto"}, environ={}), device="/dev/video5")
    assert isinstance(again, V4L2Source) and again.device == "/dev/video5"


def test_the_opener_hands_out_the_first_source_once_then_fresh_ones_of_the_same_camera() -> None:
    settings = load({"source": "/dev/video7"}, environ={})
    opener = Opener(settings)
    first, second, third = opener(), opener(), opener()
    assert len({id(first), id(second), id(third)}) == 3  # a worker stuck in a read keeps its own
    assert opener.device == "/dev/video7"
    assert [source.device for source in (first, second, third)] == ["/dev/video7"] * 3  # type: ignore[attr-defined]


def test_a_v4l2_camera_sets_opencvs_wait_for_a_frame_to_the_stall_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    variable = "OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT"
    monkeypatch.setenv(variable, "")  # so that the test leaves the environment as it found it
    monkeypatch.delenv(variable)
    V4L2Source("/dev/video0", load({"stall_timeout": "4.2s"}, environ={}))
    assert os.environ[variable] == "5"  # whole seconds, rounded up
    monkeypatch.delenv(variable)
    V4L2Source("/dev/video0", load({"stall_timeout": "0.5s"}, environ={}))
    assert os.environ[variable] == "2"  # a first frame may take over a second
    monkeypatch.setenv(variable, "7")
    V4L2Source("/dev/video0", load({"stall_timeout": "4s"}, environ={}))
    assert os.environ[variable] == "7"  # the user's own choice wins
