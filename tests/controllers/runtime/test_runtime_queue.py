"""Work queue: per-key order, no concurrent same key, bounded parallelism, delays, backoff, jitter."""
from __future__ import annotations

import random
import threading
import time

import pytest

from controllers.runtime.queue import ExponentialBackoff, WorkQueue, jitter


def run_workers(q: WorkQueue, n: int, work) -> list[threading.Thread]:
    def loop():
        while True:
            key = q.get()
            if key is None:
                return
            try:
                work(key)
            finally:
                q.done(key)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def stop(q: WorkQueue, threads: list[threading.Thread]) -> None:
    q.shutdown()
    for t in threads:
        t.join(5)


def test_add_deduplicates_queued_keys():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(timeout=0) == "a"
    assert q.get(timeout=0) == "b"
    assert q.get(timeout=0.01) is None


def test_key_added_while_processing_runs_again_after_done():
    q = WorkQueue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")  # while processing: not handed out again ...
    assert q.get(timeout=0.05) is None
    q.done("a")  # ... but queued again once done
    assert q.get(timeout=0) == "a"
    q.done("a")
    assert q.get(timeout=0.01) is None


def test_same_key_never_processed_concurrently_and_in_order():
    q = WorkQueue()
    active: dict[str, int] = {}
    overlap: list[str] = []
    seen: dict[str, list[int]] = {k: [] for k in "abc"}
    versions = {k: 0 for k in "abc"}
    lock = threading.Lock()

    def work(key):
        with lock:
            active[key] = active.get(key, 0) + 1
            if active[key] > 1:
                overlap.append(key)
            seen[key].append(versions[key])
        time.sleep(0.002)
        with lock:
            active[key] -= 1

    threads = run_workers(q, 4, work)
    for i in range(200):
        key = "abc"[i % 3]
        with lock:
            versions[key] = i
        q.add(key)
        if i % 7 == 0:
            time.sleep(0.001)
    deadline = time.monotonic() + 5
    while (len(q) or q.processing()) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop(q, threads)
    assert not overlap
    for key in "abc":
        # versions observed by one key's runs only go forward, and the last change was processed
        assert seen[key] == sorted(seen[key])
        assert seen[key][-1] == versions[key]


def test_parallel_across_keys_bounded_by_worker_count():
    q = WorkQueue()
    running, peak = [0], [0]
    lock = threading.Lock()

    def work(key):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    threads = run_workers(q, 3, work)
    for i in range(12):
        q.add(f"ns/obj-{i}")
    start = time.monotonic()
    while (len(q) or q.processing()) and time.monotonic() - start < 5:
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    stop(q, threads)
    assert peak[0] == 3
    assert elapsed < 12 * 0.05  # ran in parallel


def test_add_after_delays_and_latest_deadline_wins():
    q = WorkQueue()
    q.add_after("a", 0.15)
    assert q.get(timeout=0.05) is None
    q.add_after("a", 0.02)  # replaces the pending deadline
    t0 = time.monotonic()
    assert q.get(timeout=1) == "a"
    assert time.monotonic() - t0 < 0.12
    q.done("a")
    assert q.get(timeout=0.2) is None  # the superseded deadline does not fire


def test_cancel_drops_pending_deadline():
    q = WorkQueue()
    q.add_after("a", 0.03)
    assert q.deadline("a") is not None
    q.cancel("a")
    assert q.deadline("a") is None
    assert q.get(timeout=0.1) is None


def test_delayed_key_that_is_processing_is_marked_dirty():
    q = WorkQueue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add_after("a", 0.01)
    time.sleep(0.03)
    assert q.get(timeout=0.02) is None  # promoted, but "a" is still processing
    q.done("a")
    assert q.get(timeout=0) == "a"


def test_backoff_grows_exponentially_to_cap_and_resets():
    b = ExponentialBackoff(0.005, 1000.0)
    delays = [b.when("k") for _ in range(20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert all(later >= earlier for earlier, later in zip(delays, delays[1:]))
    assert delays[-1] == 1000.0
    assert b.failures("k") == 20
    assert b.when("other") == 0.005  # per item
    b.forget("k")
    assert b.failures("k") == 0
    assert b.when("k") == 0.005


def test_backoff_huge_failure_counts_stay_capped():
    b = ExponentialBackoff(0.75, 900.0)
    for _ in range(200):
        d = b.when("k")
    assert d == 900.0


def test_add_rate_limited_uses_backoff_and_forget_resets():
    q = WorkQueue(ExponentialBackoff(0.01, 1.0))
    assert q.add_rate_limited("a") == 0.01
    assert q.add_rate_limited("a") == 0.02
    assert q.get(timeout=1) == "a"
    q.done("a")
    q.forget("a")
    assert q.add_rate_limited("a") == 0.01


@pytest.mark.parametrize("pct", [5, 10, 50])
def test_jitter_stays_within_bounds(pct):
    rng = random.Random(42)
    samples = [jitter(600.0, pct, rng) for _ in range(2000)]
    low, high = 600 * (1 - pct / 100), 600 * (1 + pct / 100)
    assert all(low <= s <= high for s in samples)
    assert min(samples) < 600 < max(samples)  # spreads both ways


def test_jitter_disabled_or_invalid_leaves_duration():
    assert jitter(60.0, 0) == 60.0
    assert jitter(60.0, 100) == 60.0
    assert jitter(0.0, 5) == 0.0


def test_shutdown_unblocks_getters():
    q = WorkQueue()
    results = []
    t = threading.Thread(target=lambda: results.append(q.get()))
    t.start()
    time.sleep(0.02)
    q.shutdown()
    t.join(2)
    assert results == [None]
