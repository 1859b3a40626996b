"""Camera controls from the settings (power line, exposure, white balance, focus, brightness), applied on open.

OpenCV's V4L2 backend sets the controls it maps to ``CAP_PROP_*``; the others
(power-line frequency) go to the driver directly with ``S_CTRL``. Each one is
checked first against what the camera offers: a control the camera lacks, or a
value outside its range, is one warning naming it, never a failure.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import cv2

from camd import v4l2
from camd.settings import Settings

log = logging.getLogger(__name__)

POWER_LINE = {"off": 0, "50": 1, "60": 2, "auto": 3}
# V4L2's auto_exposure menu: 1 is manual; a UVC camera offers 3 (aperture priority) as its automatic mode.
EXPOSURE_MANUAL = 1
EXPOSURE_AUTOMATIC = (3, 0)


@dataclass(frozen=True)
class Wanted:
    setting: str
    control_id: int
    value: int
    prop: int | None  # the CAP_PROP_* OpenCV maps to this control, or None: S_CTRL ourselves
    shown: str  # the value as the user wrote it, for messages


def wanted(settings: Settings) -> list[Wanted]:
    """The controls the settings ask for, in an order the driver accepts (automatic modes before values)."""
    asks: list[Wanted] = []
    if settings.power_line_frequency is not None:
        value = POWER_LINE[settings.power_line_frequency]
        asks.append(
            Wanted("power_line_frequency", v4l2.CID_POWER_LINE_FREQUENCY, value, None, settings.power_line_frequency)
        )
    auto_exposure = settings.auto_exposure
    if settings.exposure is not None and auto_exposure is None:
        auto_exposure = False  # a fixed exposure only takes effect in manual mode
    if auto_exposure is not None:
        value = EXPOSURE_AUTOMATIC[0] if auto_exposure else EXPOSURE_MANUAL
        shown = "on" if auto_exposure else "off"
        asks.append(Wanted("auto_exposure", v4l2.CID_EXPOSURE_AUTO, value, cv2.CAP_PROP_AUTO_EXPOSURE, shown))
    if settings.exposure is not None:
        value = settings.exposure
        asks.append(Wanted("exposure", v4l2.CID_EXPOSURE_ABSOLUTE, value, cv2.CAP_PROP_EXPOSURE, str(value)))
    if settings.auto_white_balance is not None:
        value, shown = int(settings.auto_white_balance), "on" if settings.auto_white_balance else "off"
        asks.append(Wanted("auto_white_balance", v4l2.CID_AUTO_WHITE_BALANCE, value, cv2.CAP_PROP_AUTO_WB, shown))
    autofocus = settings.autofocus
    if settings.focus is not None and autofocus is None:
        autofocus = False
    if autofocus is not None:
        shown = "on" if autofocus else "off"
        asks.append(Wanted("autofocus", v4l2.CID_FOCUS_AUTO, int(autofocus), cv2.CAP_PROP_AUTOFOCUS, shown))
    if settings.focus is not None:
        value = settings.focus
        asks.append(Wanted("focus", v4l2.CID_FOCUS_ABSOLUTE, value, cv2.CAP_PROP_FOCUS, str(value)))
    if settings.brightness is not None:
        value = settings.brightness
        asks.append(Wanted("brightness", v4l2.CID_BRIGHTNESS, value, cv2.CAP_PROP_BRIGHTNESS, str(value)))
    return asks


class Controls:
    """Applies the settings' controls after every (re)open; warns once per control, not on every reopen."""

    def __init__(self, settings: Settings) -> None:
        self.asks = wanted(settings)
        self._warned: set[str] = set()

    def apply(self, device: str, cap: cv2.VideoCapture) -> None:
        if not self.asks:
            return
        try:
            with v4l2.opened(device) as fd:
                for ask in self.asks:
                    self._apply_one(device, fd, cap, ask)
        except OSError as exc:
            self.warn_once("controls", f"cannot set camera controls on {device}: {exc.strerror or exc}")

    def _apply_one(self, device: str, fd: int, cap: cv2.VideoCapture, ask: Wanted) -> None:
        info = v4l2.query_control(fd, ask.control_id)
        value = ask.value
        if info is None:
            self.warn_once(ask.setting, f"{ask.setting}: {device} has no such control; leaving it")
            return
        if ask.setting == "auto_exposure" and info.menu and value not in info.menu:
            choices = EXPOSURE_AUTOMATIC if value != EXPOSURE_MANUAL else (EXPOSURE_MANUAL,)
            value = next((item for item in choices if item in info.menu), value)
        if not info.minimum <= value <= info.maximum or (info.kind == "menu" and value not in info.menu):
            allowed = ", ".join(map(str, info.menu)) if info.kind == "menu" else f"{info.minimum} to {info.maximum}"
            self.warn_once(ask.setting, f"{ask.setting}={ask.shown}: {device} allows {allowed}; leaving it")
            return
        if ask.prop is not None:
            cap.set(ask.prop, value)
        else:
            try:
                v4l2.set_control(fd, ask.control_id, value)
            except OSError as exc:
                self.warn_once(ask.setting, f"{ask.setting}={ask.shown}: {device} refused it ({exc.strerror or exc})")
                return
        now = v4l2.get_control(fd, ask.control_id)
        if now != value:
            self.warn_once(ask.setting, f"{ask.setting}={ask.shown}: {device} kept {now}")
            return
        log.debug("%s: %s set to %d", device, ask.setting, value)

    def warn_once(self, key: str, message: str, logger: logging.Logger = log) -> None:
        # Every reopen applies the controls again: say what is wrong once, not on every reconnect.
        if key in self._warned:
            logger.debug("%s", message)
            return
        self._warned.add(key)
        logger.warning("%s", message)


@functools.lru_cache(maxsize=4)
def for_settings(settings: Settings) -> Controls:
    """One Controls per settings object, shared by every source made from it (so each warning is said once)."""
    return Controls(settings)
