"""The activity monitor: an output on the hub that scores the newest live frame a few times a second.

It runs on its own thread at ``activity_rate``, so a fast camera costs no more
than a slow one and capture never waits for it. Scores feed the event tracker;
events and the level of each active minute go to the day's activity log; at an
event's end the frame of its peak is saved as an event still (at most one per
``activity_min_gap``). Logs of days whose stills retention deleted go too.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from camd.activity import Detector, Event, Events, Sample, parse_mask, small_grey
from camd.activity_log import ActivityLog, day_minutes, day_start
from camd.frames import Frame
from camd.hub import LIVE, Hub
from camd.settings import Settings
from camd.stills import NoPicture, StillError, StillsWriter
from camd.stills_index import day_of

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 60.0
MAX_FRAME_AGE = 2.0  # seconds, or 3 frame intervals of a slow camera: an older frame means it stalled


def _grey(frame: Frame) -> np.ndarray | None:
    if frame.passthrough:
        return small_grey(jpeg=frame.jpeg())
    return small_grey(pixels=frame.pixels())


class ActivityMonitor:
    """Scores frames, tracks events, writes the activity log and saves event stills."""

    def __init__(self, settings: Settings, hub: Hub, activity_log: ActivityLog, stills: StillsWriter | None = None):
        self.settings = settings
        self.hub = hub
        self.log = activity_log
        self.stills = stills
        self.detector = Detector(
            rate=settings.activity_rate, sensitivity=settings.activity_sensitivity,
            min_area=settings.activity_min_area, mask=parse_mask(settings.activity_mask),
        )  # fmt: skip
        self.events = Events(settings.activity_quiet)
        self.level = 0.0
        self.last_active: float | None = None
        self.samples = 0
        self.seconds = 0.0  # time spent scoring, for the status and the bench
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # around the event going on and the minute being summed
        self._last_seq = -1
        self._size = (0, 0)
        self._peak_frame: Frame | None = None
        self._finishing: Event | None = None  # ended, its still and log line on their way
        self._last_still_time = -1e18
        self._minute = 0
        self._minute_level = 0.0
        self._housekeeping = 0.0
        self._oldest_day: str | None = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self._restore()
        self._thread = threading.Thread(target=self._run, name="activity", daemon=True)
        self._thread.start()
        log.info(
            "activity: %g pictures/s, sensitivity %d, min area %g%%, %d mask rectangle(s), event stills %s",
            self.settings.activity_rate, self.settings.activity_sensitivity, self.settings.activity_min_area,
            len(self.detector.mask_rects), "on" if self.settings.activity_stills else "off",
        )  # fmt: skip

    def stop(self, timeout: float = 3.0) -> None:
        """Stop sampling; the event going on is ended and logged, the minute so far written."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            event = self._finishing = self.events.close()
            self._flush_minute()
        if event is not None:
            self._finish(event, save_still=False)

    def _restore(self) -> None:
        """After a restart: when the last activity and the last event still were, from the logs."""
        now = time.time()
        for day in (day_of(now - 86400), day_of(now)):
            for event in self.log.read(day).events:
                end = event.get("end") or event.get("start")
                if end is not None:
                    self.last_active = max(self.last_active or 0.0, float(end))
                if event.get("still"):
                    self._last_still_time = max(self._last_still_time, float(event["peak_time"]))

    # --- sampling -----------------------------------------------------------------

    def _run(self) -> None:
        interval = 1.0 / self.settings.activity_rate
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + interval, time.monotonic())
            try:
                self._step()
            except Exception:
                log.exception("scoring activity failed")
            oldest = self.stills.index.oldest() if self.stills is not None else None
            oldest_day = oldest.day if oldest is not None else None
            # Retention just deleted the last still of a day (or the clock passed midnight): prune now.
            if oldest_day != self._oldest_day or time.monotonic() >= self._housekeeping:
                self._oldest_day = oldest_day
                self._housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
                self.prune()

    def _step(self) -> None:
        frame = self.hub.latest_live
        camera = self.hub.camera
        too_old = max(MAX_FRAME_AGE, 3.0 / max(camera.fps, 0.1))
        if camera.state != LIVE or frame is None or frame.age > too_old:
            self._interrupted()
            return
        if frame.seq == self._last_seq:
            return
        self._last_seq = frame.seq
        started = time.perf_counter()
        try:
            small = _grey(frame)
        except ValueError:
            small = None
        if small is None:
            return
        if (frame.width, frame.height) != self._size:
            self._size = (frame.width, frame.height)
            self.detector.reset()
        sample = self.detector.feed(small)
        self.seconds += time.perf_counter() - started
        self.samples += 1
        self.observe(frame, frame.timestamp, sample)

    def observe(self, frame: Frame | None, when: float, sample: Sample) -> None:
        """Account one scored picture: minute level, events, event stills."""
        with self._lock:
            self.level = sample.level
            self._add_to_minute(when, sample.level)
            if sample.active:
                self.last_active = when
            started, ended = self.events.feed(when, sample)
            peak_frame = self._peak_frame
            if ended is not None:
                # Its still is made from peak_frame below; between events no frame is held (a full-size
                # picture, for as long as the scene stays quiet).
                self._finishing, self._peak_frame = ended, None
            current = self.events.current
            if current is not None and current.peak_time == when:
                self._peak_frame = frame
        if ended is not None:
            self._finish(ended, peak_frame=peak_frame)
        if started is not None:
            self.hub.counters.incr("activity_events")
            self.log.append({"kind": "start", "start": round(started.start, 3)}, started.start)
            log.info("activity: an event started (%.1f%% of the picture changed)", sample.level * 100)

    def _interrupted(self) -> None:
        """The camera went away or stalled: an event going on ends, the scene is learnt afresh."""
        self.level = 0.0
        self.detector.reset()
        with self._lock:
            event = self._finishing = self.events.close()
        if event is not None:
            self._finish(event)

    def _finish(self, event: Event, *, peak_frame: Frame | None = None, save_still: bool = True) -> None:
        if peak_frame is None:
            peak_frame, self._peak_frame = self._peak_frame, None
        if save_still and peak_frame is not None:
            event.still = self._event_still(event, peak_frame)
        record = {"kind": "end", **event.as_record()}
        self.log.append(record, event.start)
        with self._lock:
            if self._finishing is event:
                self._finishing = None
        log.info(
            "activity: an event ended after %.1fs, peak %.1f%%%s", (event.end or event.start) - event.start,
            event.peak * 100, f", still {event.still}" if event.still else "",
        )  # fmt: skip

    def _event_still(self, event: Event, frame: Frame) -> str | None:
        if not self.settings.activity_stills or self.stills is None:
            return None
        if event.peak_time - self._last_still_time < self.settings.activity_min_gap:
            return None
        try:
            still = self.stills.take_frame(frame)
        except (NoPicture, StillError) as exc:
            log.info("no event still: %s", exc)
            return None
        self._last_still_time = event.peak_time
        self.hub.counters.incr("activity_stills")
        return still.path

    # --- minutes --------------------------------------------------------------------

    def _add_to_minute(self, when: float, level: float) -> None:
        minute = int(when // 60 * 60)
        if minute != self._minute:
            self._flush_minute()
            self._minute, self._minute_level = minute, 0.0
        self._minute_level = max(self._minute_level, level)

    def _flush_minute(self) -> None:
        # Only minutes that saw activity are written: a quiet day makes a tiny log.
        if self._minute and self._minute_level > 0:
            self.log.append(
                {"kind": "minute", "minute": self._minute, "level": round(self._minute_level, 4)}, self._minute
            )
        self._minute_level = 0.0

    # --- housekeeping ---------------------------------------------------------------

    def prune(self) -> None:
        """Delete the logs of days before the oldest still (retention took those stills)."""
        now = time.time()
        today = day_of(now)
        if self.stills is not None and (oldest := self.stills.index.oldest()) is not None:
            keep_from = min(oldest.day, today)
        elif self.settings.stills_max_age:
            keep_from = min(day_of(now - self.settings.stills_max_age), today)
        else:
            return
        self.log.prune(keep_from)

    # --- what the web app shows -------------------------------------------------------

    def day(self, day: str, now: float | None = None) -> dict[str, Any]:
        """The day's events and per-minute levels (0-1) as ``GET /api/activity`` returns them."""
        now = time.time() if now is None else now
        stored = self.log.read(day)
        with self._lock:
            # The event going on, and one that just ended whose still and end are on their way to the log:
            # both show as going on (end null), so an event with an end is final, its still known.
            live = [event.copy() for event in (self.events.current, self._finishing) if event is not None]
            for item in live:
                item.end = None
            minute, minute_level = self._minute, self._minute_level
        events = []
        for stored_event in stored.events:
            event: dict[str, Any] = stored_event
            match = next((item for item in live if abs(item.start - event["start"]) <= 0.01), None)
            if match is not None:
                event = match.as_record()
                live.remove(match)
            elif event["end"] is None:
                # Started before a crash or a stop that could not log its end: it is over, its end unknown.
                event = {**event, "end": event["start"], "interrupted": True}
            events.append(event)
        events.extend(item.as_record() for item in live if day_of(item.start) == day)  # not logged yet
        events.sort(key=lambda event: event["start"])
        start = day_start(day)
        count = day_minutes(day)
        if day == day_of(now):
            count = min(count, int((now - start) // 60) + 1)
        elif start > now:
            count = 0
        levels = [0.0] * count
        minutes = dict(stored.minutes)
        if minute and minute_level > 0:
            minutes[minute] = max(minute_level, minutes.get(minute, 0.0))
        for when, level in minutes.items():
            index = int((when - start) // 60)
            if 0 <= index < count:
                levels[index] = max(levels[index], round(level, 4))
        return {"day": day, "events": events, "levels": levels}

    def status(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        with self._lock:
            # An event that just ended is still going on until its still and end are logged, as in day().
            active = self.events.current is not None or self._finishing is not None
        last = self.last_active
        return {
            "level": round(self.level, 4),
            "active": active,
            "last_activity": last,
            # Measured here, so a page shows "12 min ago" right whatever its own clock says.
            "seconds_since_activity": None if last is None else round(max(0.0, now - last), 1),
            "events": self.hub.counters.get("activity_events"),
            "event_stills": self.hub.counters.get("activity_stills"),
            "light_switches": self.detector.light_switches,
            "samples": self.samples,
            "ms_per_sample": round(self.seconds / self.samples * 1000, 3) if self.samples else None,
            "rate": self.settings.activity_rate,
            "log_failures": self.log.failures,
        }
