"""The event queue (FaxInitializeEventQueue): every subscriber sees every event, in the
order they were published, as an iterator or an async iterator.

A subscriber that falls more than :data:`MAX_BACKLOG` events behind loses the oldest
and gets one ``overflow`` note in their place (``Event.data["lost"]``), so a forgotten
subscription cannot grow without bound.

The bus keeps the last :data:`LOG_SIZE` events: a client that was away (a remote client
whose connection dropped) subscribes again with ``since`` set to the last ``seq`` it saw
and gets what it missed first, then what happens next, with nothing twice and nothing
left out. Sequence numbers keep growing across restarts of a spool's service (each run
starts at ``run << 32``): when what a client missed is no longer kept, or happened
before a restart, its first event says so in ``Event.data["lost"]`` (how many events
it missed, or -1 when that is not known).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .errors import RequestError, ServiceClosed
from .model import Event, EventKind

__all__ = ["EventBus", "Subscription", "MAX_BACKLOG", "LOG_SIZE"]

#: Events a subscription holds before it starts dropping the oldest.
MAX_BACKLOG = 10000
#: Events the bus keeps for subscribers that come back (``since``).
LOG_SIZE = 10000


class Subscription:
    """Events as they happen. Iterate (blocking) or ``async for``; :meth:`close` ends it
    (a blocked iteration then stops)."""

    def __init__(
        self,
        on_close: Callable[[Subscription], None] | None = None,
        allow: Callable[[Event], bool] | None = None,
    ) -> None:
        self._on_close = on_close
        self.allow = allow  #: events this subscriber may see (None: all)
        self._queue: collections.deque[Event] = collections.deque()
        self._cond = threading.Condition()
        self._lost = 0
        self.closed = False

    def put(self, event: Event) -> None:
        """Queue ``event`` for this subscriber (dropping the oldest past the backlog);
        an event it may not see is left out."""
        if self.allow is not None and not self.allow(event):
            return
        with self._cond:
            if len(self._queue) >= MAX_BACKLOG:
                self._queue.popleft()
                if self._lost >= 0:
                    self._lost += 1
            self._queue.append(event)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None if ``timeout`` seconds pass first. Raises
        :class:`ServiceClosed` once closed and drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                if self.closed:
                    raise ServiceClosed("the event subscription is closed")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            event = self._queue.popleft()
            if self._lost:
                event.data = {**event.data, "lost": self._lost}
                self._lost = 0
            return event

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        try:
            event = self.get()
        except ServiceClosed:
            raise StopIteration from None
        assert event is not None
        return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            try:
                event = self.get(0)
            except ServiceClosed:
                raise StopAsyncIteration from None
            if event is not None:
                return event
            await asyncio.sleep(0.01)

    def end(self) -> None:
        """Mark the stream ended: readers get what is queued, then stop."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop receiving; events already queued can still be read."""
        if self._on_close is not None:
            self._on_close(self)
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Numbers events, keeps the last ``log_size`` and hands each to every open
    subscription. ``run``: this service run's number (its events are numbered from
    ``run << 32`` on)."""

    def __init__(self, run: int = 0, log_size: int = LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._base = self._seq = run << 32
        self._log: collections.deque[Event] = collections.deque(maxlen=log_size)

    def subscribe(
        self, since: int | None = None, allow: Callable[[Event], bool] | None = None
    ) -> Subscription:
        """A new subscription; with ``since`` (a ``seq`` seen before), first every kept
        event after it; ``allow``: which events it may see. Raises
        :class:`RequestError` for a ``since`` not yet reached."""
        if since is not None and (not isinstance(since, int) or isinstance(since, bool)):
            raise RequestError(f"since is an event sequence number, got {since!r}")
        sub = Subscription(self._drop, allow)
        with self._lock:
            if since is not None:
                if since > self._seq:
                    raise RequestError(f"no event {since} yet: the last is {self._seq}")
                missed = [e for e in self._log if e.seq > since]
                first = missed[0].seq if missed else self._seq + 1
                if since < self._base:
                    sub._lost = -1  # from an earlier run: how many is not known
                elif first > since + 1:
                    sub._lost = first - since - 1
                for event in missed:
                    sub.put(event)
            self._subs.append(sub)
        return sub

    def _drop(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(
        self,
        kind: EventKind,
        *,
        job_id: int | None = None,
        port: str | None = None,
        **data: Any,
    ) -> Event:
        with self._lock:
            self._seq += 1
            event = Event(self._seq, kind, time.time(), job_id, port, data)
            self._log.append(event)
            for sub in self._subs:
                sub.put(event)
        return event

    def close(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.end()
