"""A fixed pool of worker threads that run the web app, fed from a bounded queue.

Requests wait in the queue only up to ``max_queued``; beyond that the caller is
told no and answers 503 itself. Continuations of a response already under way
(pulling more of a large body, closing its iterator) are not refused: there is
at most one per connection, so they are bounded by the connections themselves.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

WORKERS = 8
MAX_QUEUED = 64

Job = Callable[[], None]


@dataclass(eq=False)
class _Idle:
    event: threading.Event = field(default_factory=threading.Event)
    job: Job | None = None
    stop: bool = False


class Pool:
    """``workers`` threads taking jobs, the most recently idle one first.

    A FIFO of idle workers would hand successive jobs to every thread in turn, and each
    thread would end up holding the memory native code keeps per thread it ever ran on
    (caches of the C allocator and of native libraries; OpenCV's text drawing kept megabytes
    per thread before camd.text gave it one thread). Waking the worker that went idle last
    keeps the set of threads that ever did work as small as the load.
    """

    def __init__(self, workers: int = WORKERS, max_queued: int = MAX_QUEUED, name: str = "http-worker") -> None:
        self.workers = workers
        self.max_queued = max_queued
        self._name = name
        self._lock = threading.Lock()
        self._queued: collections.deque[tuple[Job, bool]] = collections.deque()
        self._requests_queued = 0
        self._idle: list[_Idle] = []  # a stack: the last one in is the first woken
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> None:
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job: Job, *, request: bool = True) -> bool:
        """Run ``job`` on a worker; False (and not queued) when ``request`` and the queue is full."""
        with self._lock:
            if self._stopping:
                return False
            if self._idle:
                idle = self._idle.pop()
                idle.job = job
                idle.event.set()
                return True
            if request:
                if self._requests_queued >= self.max_queued:
                    return False
                self._requests_queued += 1
            self._queued.append((job, request))
            return True

    def stop(self, timeout: float = 2.0) -> bool:
        """Let running jobs finish (up to ``timeout`` in all), drop queued ones, end the threads; True if all ended."""
        with self._lock:
            self._stopping = True
            self._queued.clear()
            self._requests_queued = 0
            while self._idle:
                idle = self._idle.pop()
                idle.stop = True
                idle.event.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _next(self, idle: _Idle) -> Job | None:
        with self._lock:
            if self._stopping:
                return None
            if self._queued:
                job, request = self._queued.popleft()
                if request:
                    self._requests_queued -= 1
                return job
            idle.event.clear()
            idle.job = None
            self._idle.append(idle)
        idle.event.wait()
        return None if idle.stop else idle.job

    def _work(self) -> None:
        idle = _Idle()
        while True:
            job = self._next(idle)
            if job is None:
                return
            try:
                job()
            except Exception:  # a job handles its own errors; this is the last line of defence
                log.exception("a worker job failed")
