"""Prometheus metrics of a running fax service (``GET /metrics`` on the daemon).

Gathered from the service's public state and its event bus, never by changing it: the
job store and the port table are read at each scrape; counters are fed by a
subscription to the event bus (they count from this server's start, as Prometheus
counters do); line busy time is integrated by sampling the port table between
scrapes (utilisation is ``rate(fastfax_line_busy_seconds_total[5m])``).

Metrics (every name starts ``fastfax_``)::

    jobs{type,state}                       gauge    jobs in the queue by type and state
    queue_oldest_pending_age_seconds       gauge    age of the oldest job waiting to go out
    faxes_total{direction}                 counter  faxes sent / received
    pages_total{direction}                 counter  pages sent / received
    calls_total{direction,outcome}         counter  call outcomes (completed, busy, ...)
    line_state{port,state}                 gauge    1 for each port's current state
    line_busy{port}                        gauge    1 while the port is in a call
    line_busy_seconds_total{port}          counter  seconds the port spent in calls
    conversion_pages_total                 counter  pages converted for sending
    conversion_seconds_total               counter  seconds spent converting them
    http_requests_total{method,route,status} counter HTTP requests answered
    http_refused_total{reason}             counter  connections and calls refused (503)
    http_connections, http_calls_running, http_calls_waiting, http_streams  gauges
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..devices.contract import DeviceState
from .errors import ServiceClosed
from .model import EventKind, JobState
from .server import Service

__all__ = ["Metrics", "CONTENT_TYPE"]

#: The media type of :meth:`Metrics.render`'s text.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Call outcomes of a send, by the event that reports them.
_OUTCOMES = {
    EventKind.COMPLETED, EventKind.BUSY, EventKind.NO_ANSWER, EventKind.BAD_ADDRESS,
    EventKind.FATAL_ERROR, EventKind.ABORTING, EventKind.NO_DIAL_TONE, EventKind.DISCONNECTED,
    EventKind.NOT_FAX_CALL, EventKind.CALL_DELAYED, EventKind.CALL_BLACKLISTED,
    EventKind.OFFLINE,
}  # fmt: skip
_WAITING = (JobState.PREPARING, JobState.PENDING, JobState.RETRYING, JobState.NOLINE)
#: Jobs whose submission time is kept until their pages are ready (conversion time).
_MAX_QUEUED = 100_000


class Metrics:
    """The metrics of ``service``; ``front`` returns the HTTP front's gauges
    (connections, calls_running, calls_waiting, streams). Call :meth:`pump` now and
    then (it reads the events so far and samples the lines); :meth:`render` scrapes."""

    def __init__(self, service: Service, front: Callable[[], dict[str, int]]) -> None:
        self.service = service
        self._front = front
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        reg = self.registry
        self.http_requests = Counter(
            "fastfax_http_requests", "HTTP requests answered", ["method", "route", "status"],
            registry=reg,
        )  # fmt: skip
        self.http_refused = Counter(
            "fastfax_http_refused", "Connections and calls refused with 503", ["reason"],
            registry=reg,
        )  # fmt: skip
        self.faxes = Counter("fastfax_faxes", "Faxes sent or received", ["direction"], registry=reg)
        self.pages = Counter("fastfax_pages", "Pages sent or received", ["direction"], registry=reg)
        self.calls = Counter(
            "fastfax_calls", "Call outcomes", ["direction", "outcome"], registry=reg
        )
        self.conversion_pages = Counter(
            "fastfax_conversion_pages", "Pages converted for sending", registry=reg
        )
        self.conversion_seconds = Counter(
            "fastfax_conversion_seconds", "Seconds spent converting documents", registry=reg
        )
        self._busy_seconds: dict[str, float] = {p: 0.0 for p in service.ports}
        self._sampled = time.monotonic()
        self._queued: dict[int, float] = {}
        self._sub = service.bus.subscribe()
        reg.register(_StateCollector(self))

    def pump(self) -> None:
        """Count the events published since the last pump; add line busy time."""
        with self._lock:
            now = time.monotonic()
            dt, self._sampled = now - self._sampled, now
            for port in self._busy_seconds:
                if self.service.ports.is_busy(port):
                    self._busy_seconds[port] += dt
            while True:
                try:
                    event = self._sub.get(0)
                except ServiceClosed:
                    return
                if event is None:
                    return
                self._count(event.kind, event.job_id, event.port, event.time, event.data)

    def _count(
        self, kind: EventKind, job: int | None, port: str | None, when: float, data: dict
    ) -> None:
        if kind is EventKind.JOB_QUEUED and job is not None:
            if len(self._queued) >= _MAX_QUEUED:
                self._queued.pop(next(iter(self._queued)))
            self._queued[job] = when
        elif kind is EventKind.PREPARED:
            self.conversion_pages.inc(int(data.get("pages", 0)))
            start = self._queued.pop(job, None) if job is not None else None
            seconds = data.get("seconds", None if start is None else when - start)
            if seconds is not None:
                self.conversion_seconds.inc(max(0.0, float(seconds)))
        if kind is EventKind.COMPLETED and data.get("direction") == "receive":
            self.faxes.labels("received").inc()
            self.pages.labels("received").inc(int(data.get("pages", 0)))
            self.calls.labels("receive", "partial" if data.get("partial") else "completed").inc()
        elif kind in _OUTCOMES and port is not None:  # the end of a call to send
            self.calls.labels("send", kind.value).inc()
            if kind is EventKind.COMPLETED:
                self.faxes.labels("sent").inc()
                self.pages.labels("sent").inc(int(data.get("pages", 0)))

    def render(self) -> bytes:
        """The metrics in Prometheus' text format (touches the store: not on an event loop);
        counts every event published before the scrape."""
        self.service.bus.settle()
        self.pump()
        return generate_latest(self.registry)

    def close(self) -> None:
        self._sub.close()

    def state(self) -> Iterator[Metric]:
        """The gauges read from the service at scrape time."""
        service = self.service
        jobs = GaugeMetricFamily("fastfax_jobs", "Jobs in the queue", labels=["type", "state"])
        counts: dict[tuple[str, str], int] = {}
        oldest = None
        for row in service.store.jobs():
            key = (row["type"], row["state"])
            counts[key] = counts.get(key, 0) + 1
            if row["type"] == "send" and JobState(row["state"]) in _WAITING:
                oldest = row["submitted"] if oldest is None else min(oldest, row["submitted"])
        for kind in ("send", "receive"):
            for state in JobState:
                jobs.add_metric([kind, state.value], counts.get((kind, state.value), 0))
        yield jobs
        yield GaugeMetricFamily(
            "fastfax_queue_oldest_pending_age_seconds",
            "Age of the oldest job waiting to be sent (0: none waits)",
            value=0.0 if oldest is None else max(0.0, time.time() - oldest),
        )
        states = GaugeMetricFamily(
            "fastfax_line_state", "1 for the state each line is in", labels=["port", "state"]
        )
        busy = GaugeMetricFamily(
            "fastfax_line_busy", "1 while the line is in a call", labels=["port"]
        )
        seconds = CounterMetricFamily(
            "fastfax_line_busy_seconds", "Seconds the line spent in calls", labels=["port"]
        )
        with self._lock:
            spent = dict(self._busy_seconds)
        for port in service.ports:
            now = service.ports.snapshot(port).state
            for state in DeviceState:
                states.add_metric([port, state.value], float(state is now))
            busy.add_metric([port], float(service.ports.is_busy(port)))
            seconds.add_metric([port], spent.get(port, 0.0))
        yield from (states, busy, seconds)
        for name, value in self._front().items():
            yield GaugeMetricFamily(f"fastfax_http_{name}", f"HTTP front: {name}", value=value)


class _StateCollector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        return self._metrics.state()

    def describe(self) -> list[Any]:
        return []
