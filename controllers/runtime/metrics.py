"""Prometheus metrics written by hand (text exposition format 0.0.4), with the names Flux's controllers expose.

controller-runtime's ``controller_runtime_*`` and ``workqueue_*`` families, Flux's
``gotk_reconcile_duration_seconds`` and client-go's ``leader_election_master_status``, plus a few
``process_*`` gauges.
"""
from __future__ import annotations

import math
import os
import resource
import threading
import time
from typing import Callable, Iterable, Sequence

# controller-runtime's reconcile time buckets.
RECONCILE_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7,
                          0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20,
                          25, 30, 40, 50, 60)
# workqueue duration buckets: 10ns .. 1000s, factor 10.
WORKQUEUE_BUCKETS = tuple(1e-8 * 10 ** i for i in range(12))


def exponential_buckets_range(low: float, high: float, count: int) -> tuple[float, ...]:
    """``count`` buckets growing by a constant factor from ``low`` to ``high``."""
    factor = (high / low) ** (1 / (count - 1))
    return tuple(low * factor ** i for i in range(count))


# Flux: 10 buckets between 10ms and 30 minutes.
GOTK_DURATION_BUCKETS = exponential_buckets_range(0.01, 1800, 10)


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family:
    type_name = ""

    def __init__(self, name: str, help_: str, labels: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help_, tuple(labels)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], object] = {}

    def _key(self, labels: dict[str, str] | Sequence[str]) -> tuple[str, ...]:
        if isinstance(labels, dict):
            return tuple(str(labels.get(n, "")) for n in self.label_names)
        return tuple(str(v) for v in labels)

    def remove(self, *values: str) -> None:
        with self._lock:
            self._series.pop(self._key(values), None)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.type_name}"]


class Counter(_Family):
    type_name = "counter"

    def inc(self, *values: str, amount: float = 1.0) -> None:
        key = self._key(values)
        with self._lock:
            self._series[key] = self._series.get(key, 0.0) + amount

    def value(self, *values: str) -> float:
        with self._lock:
            return self._series.get(self._key(values), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._series.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_fmt(v)}" for k, v in items]


class Gauge(Counter):
    type_name = "gauge"

    def set(self, *values: str, value: float) -> None:
        with self._lock:
            self._series[self._key(values)] = float(value)


class Histogram(_Family):
    type_name = "histogram"

    def __init__(self, name: str, help_: str, labels: Sequence[str] = (), buckets: Iterable[float] = ()):
        super().__init__(name, help_, labels)
        self.buckets = tuple(sorted(buckets))

    def observe(self, *values: str, value: float) -> None:
        key = self._key(values)
        with self._lock:
            counts, total = self._series.get(key) or ([0] * len(self.buckets), [0.0, 0])
            for i, upper in enumerate(self.buckets):
                if value <= upper:
                    counts[i] += 1
            total[0] += value
            total[1] += 1
            self._series[key] = (counts, total)

    def count(self, *values: str) -> int:
        with self._lock:
            entry = self._series.get(self._key(values))
        return entry[1][1] if entry else 0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), list(t))) for k, (c, t) in self._series.items())
        lines = self.header()
        for key, (counts, (total, n)) in items:
            for upper, c in zip(self.buckets, counts):
                le = 'le="' + _fmt(upper) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {c}")
            le = 'le="+Inf"'
            lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {n}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_fmt(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {n}")
        return lines


class Registry:
    """A set of metric families rendered together; collectors run just before rendering."""

    def __init__(self) -> None:
        self._families: list[_Family] = []
        self._collectors: list[Callable[[], None]] = []

    def register(self, family: _Family) -> _Family:
        self._families.append(family)
        return family

    def counter(self, name: str, help_: str, labels: Sequence[str] = ()) -> Counter:
        return self.register(Counter(name, help_, labels))  # type: ignore[return-value]

    def gauge(self, name: str, help_: str, labels: Sequence[str] = ()) -> Gauge:
        return self.register(Gauge(name, help_, labels))  # type: ignore[return-value]

    def histogram(self, name: str, help_: str, labels: Sequence[str] = (), buckets: Iterable[float] = ()) -> Histogram:
        return self.register(Histogram(name, help_, labels, buckets))  # type: ignore[return-value]

    def add_collector(self, fn: Callable[[], None]) -> None:
        self._collectors.append(fn)

    def render(self) -> str:
        for fn in self._collectors:
            try:
                fn()
            except Exception:  # a failing collector must not break the endpoint
                pass
        lines: list[str] = []
        for fam in self._families:
            lines.extend(fam.render())
        return "\n".join(lines) + "\n"


class _QueueMetrics:
    """The workqueue metrics of one named queue (adapter given to :class:`controllers.runtime.queue.WorkQueue`)."""

    def __init__(self, m: "Metrics", name: str):
        self._m, self._labels = m, (name, name)

    def add(self) -> None:
        self._m.workqueue_adds.inc(*self._labels)

    def depth(self, n: int) -> None:
        self._m.workqueue_depth.set(*self._labels, value=n)

    def retry(self) -> None:
        self._m.workqueue_retries.inc(*self._labels)

    def queued_for(self, seconds: float) -> None:
        self._m.workqueue_queue_duration.observe(*self._labels, value=seconds)

    def worked_for(self, seconds: float) -> None:
        self._m.workqueue_work_duration.observe(*self._labels, value=seconds)

    def processing(self, started: list[float], now: float) -> None:
        self._m.workqueue_unfinished.set(*self._labels, value=sum(now - s for s in started))
        self._m.workqueue_longest.set(*self._labels, value=max((now - s for s in started), default=0.0))


class Metrics:
    """The metric families of one controller process."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        c = ("controller",)
        self.reconcile_total = r.counter("controller_runtime_reconcile_total",
                                         "Total number of reconciliations per controller", ("controller", "result"))
        self.reconcile_errors = r.counter("controller_runtime_reconcile_errors_total",
                                          "Total number of reconciliation errors per controller", c)
        self.terminal_errors = r.counter("controller_runtime_terminal_reconcile_errors_total",
                                         "Total number of terminal reconciliation errors per controller", c)
        self.reconcile_panics = r.counter("controller_runtime_reconcile_panics_total",
                                          "Total number of reconciliation panics per controller", c)
        self.reconcile_time = r.histogram("controller_runtime_reconcile_time_seconds",
                                          "Length of time per reconciliation per controller", c, RECONCILE_TIME_BUCKETS)
        self.max_concurrent = r.gauge("controller_runtime_max_concurrent_reconciles",
                                      "Maximum number of concurrent reconciles per controller", c)
        self.active_workers = r.gauge("controller_runtime_active_workers",
                                      "Number of currently used workers per controller", c)
        q = ("controller", "name")
        self.workqueue_depth = r.gauge("workqueue_depth", "Current depth of workqueue", q)
        self.workqueue_adds = r.counter("workqueue_adds_total", "Total number of adds handled by workqueue", q)
        self.workqueue_queue_duration = r.histogram(
            "workqueue_queue_duration_seconds", "How long in seconds an item stays in workqueue before being requested",
            q, WORKQUEUE_BUCKETS)
        self.workqueue_work_duration = r.histogram(
            "workqueue_work_duration_seconds", "How long in seconds processing an item from workqueue takes",
            q, WORKQUEUE_BUCKETS)
        self.workqueue_unfinished = r.gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by work_duration.", q)
        self.workqueue_longest = r.gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.", q)
        self.workqueue_retries = r.counter("workqueue_retries_total", "Total number of retries handled by workqueue", q)
        self.gotk_duration = r.histogram("gotk_reconcile_duration_seconds",
                                         "The duration in seconds of a GitOps Toolkit resource reconciliation.",
                                         ("kind", "name", "namespace"), GOTK_DURATION_BUCKETS)
        self.leader = r.gauge("leader_election_master_status",
                              "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
                              "1 indicates master. 'name' is the string used to identify the lease.", ("name",))
        self.process_start = r.gauge("process_start_time_seconds",
                                     "Start time of the process since unix epoch in seconds.")
        self.process_rss = r.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
        self.process_cpu = r.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
        self.process_start.set(value=time.time() - _uptime())
        r.add_collector(self._collect_process)

    def queue_metrics(self, name: str) -> _QueueMetrics:
        return _QueueMetrics(self, name)

    def render(self) -> str:
        return self.registry.render()

    def _collect_process(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self.process_cpu._lock:
            self.process_cpu._series[()] = usage.ru_utime + usage.ru_stime
        try:
            with open("/proc/self/statm") as f:
                pages = int(f.read().split()[1])
            self.process_rss.set(value=pages * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, IndexError):
            self.process_rss.set(value=usage.ru_maxrss * 1024)


def _uptime() -> float:
    """Seconds since this process started."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            boot_uptime = float(f.read().split()[0])
        return boot_uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
