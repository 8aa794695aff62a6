"""The work queue of a controller: keys (``namespace/name``) in, one worker per key at a time out.

Semantics (as client-go's workqueue that controller-runtime uses):

- a key is queued at most once; adding a key that is already queued is a no-op;
- a key being processed is never handed to another worker; if it is added meanwhile it is marked dirty
  and queued again when its worker calls :meth:`WorkQueue.done` — so changes are never lost and one
  object's reconciliations run in order;
- keys wait for a time with :meth:`WorkQueue.add_after` (one pending deadline per key: the latest call
  decides it) or with :meth:`WorkQueue.add_rate_limited` (per-key exponential backoff);
- parallelism across keys is the number of worker threads calling :meth:`WorkQueue.get`.
"""
from __future__ import annotations

import collections
import heapq
import random
import threading
import time
from typing import Callable, Hashable, Protocol


class QueueMetrics(Protocol):
    """What the queue reports (see :class:`controllers.runtime.metrics.Metrics.queue_metrics`)."""

    def add(self) -> None: ...
    def depth(self, n: int) -> None: ...
    def retry(self) -> None: ...
    def queued_for(self, seconds: float) -> None: ...
    def worked_for(self, seconds: float) -> None: ...
    def processing(self, started: list[float], now: float) -> None: ...


class ExponentialBackoff:
    """Per-key exponential backoff: ``base * 2**failures`` capped at ``cap``; :meth:`forget` resets a key."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0):
        self.base, self.cap = base, cap
        self._failures: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def when(self, key: Hashable) -> float:
        """The delay before the next retry of ``key`` (and count this failure)."""
        with self._lock:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        if n > 64:
            return self.cap
        return min(self.base * (2 ** n), self.cap)

    def failures(self, key: Hashable) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._failures.pop(key, None)


def jitter(duration: float, percentage: float, rng: random.Random | None = None) -> float:
    """``duration`` spread uniformly by +/- ``percentage`` percent (Flux's interval jitter)."""
    if duration <= 0 or percentage <= 0 or percentage >= 100:
        return duration
    p = percentage / 100.0
    r = (rng or random).random()
    return duration * (1 + p * (2 * r - 1))


class WorkQueue:
    """A thread-safe, de-duplicating, delaying, rate-limited work queue (see the module docstring)."""

    def __init__(self, backoff: ExponentialBackoff | None = None, metrics: QueueMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.backoff = backoff or ExponentialBackoff()
        self._metrics = metrics
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: collections.deque = collections.deque()
        self._dirty: set = set()
        self._processing: dict[Hashable, float] = {}
        self._added_at: dict[Hashable, float] = {}
        self._deadlines: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = 0
        self._shutdown = False

    # ------------------------------------------------------------------ adding

    def add(self, key: Hashable) -> None:
        """Queue ``key`` now (no-op if already queued; re-run after the current run if it is processing)."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: Hashable) -> None:
        if self._shutdown or key in self._dirty:
            return
        if self._metrics:
            self._metrics.add()
        self._dirty.add(key)
        self._added_at.setdefault(key, self._clock())
        if key in self._processing:
            return
        self._queue.append(key)
        self._report_depth()
        self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds, replacing any deadline it was already waiting for."""
        if delay <= 0:
            self.cancel(key)
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            deadline = self._clock() + delay
            self._deadlines[key] = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: Hashable) -> float:
        """Queue ``key`` after its next backoff delay; returns that delay."""
        delay = self.backoff.when(key)
        if self._metrics:
            self._metrics.retry()
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        """Reset the backoff of ``key`` (after a success)."""
        self.backoff.forget(key)

    def cancel(self, key: Hashable) -> None:
        """Drop the deadline ``key`` is waiting for, if any."""
        with self._cond:
            self._deadlines.pop(key, None)

    def deadline(self, key: Hashable) -> float | None:
        """Seconds until ``key``'s pending deadline (None when not waiting)."""
        with self._cond:
            d = self._deadlines.get(key)
            return None if d is None else d - self._clock()

    # ------------------------------------------------------------------ taking

    def _promote_due(self) -> float | None:
        """Queue the keys whose deadline passed; return seconds until the next deadline."""
        now = self._clock()
        while self._heap:
            deadline, _, key = self._heap[0]
            if self._deadlines.get(key) != deadline:
                heapq.heappop(self._heap)  # superseded or cancelled
                continue
            if deadline > now:
                return deadline - now
            heapq.heappop(self._heap)
            del self._deadlines[key]
            self._add_locked(key)
        return None

    def get(self, timeout: float | None = None) -> Hashable | None:
        """Block until a key is ready and mark it processing; None on shutdown or timeout."""
        end = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    now = self._clock()
                    self._processing[key] = now
                    self._dirty.discard(key)
                    added = self._added_at.pop(key, now)
                    if self._metrics:
                        self._metrics.queued_for(now - added)
                    self._report_depth()
                    return key
                if end is not None:
                    left = end - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: Hashable) -> None:
        """Mark ``key`` processed; queue it again if it was added while processing."""
        with self._cond:
            started = self._processing.pop(key, None)
            if started is not None and self._metrics:
                self._metrics.worked_for(self._clock() - started)
            if key in self._dirty and not self._shutdown:
                self._queue.append(key)
                self._report_depth()
                self._cond.notify()

    # ------------------------------------------------------------------ state

    def shutdown(self) -> None:
        """Stop handing out keys; blocked :meth:`get` calls return None."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    @property
    def is_shutdown(self) -> bool:
        return self._shutdown

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def processing(self) -> list[Hashable]:
        with self._cond:
            return list(self._processing)

    def waiting(self) -> dict[Hashable, float]:
        """Keys waiting for a deadline, with the seconds left."""
        with self._cond:
            now = self._clock()
            return {k: d - now for k, d in self._deadlines.items()}

    def report(self) -> None:
        """Push the gauges (depth, unfinished work) to the metrics."""
        if self._metrics:
            with self._cond:
                self._metrics.depth(len(self._queue))
                self._metrics.processing(list(self._processing.values()), self._clock())

    def _report_depth(self) -> None:
        if self._metrics:
            self._metrics.depth(len(self._queue))
