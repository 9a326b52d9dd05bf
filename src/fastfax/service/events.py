"""The event queue (FaxInitializeEventQueue): every subscriber sees every event, in the
order they were published, as an iterator or an async iterator.

A subscriber that falls more than :data:`MAX_BACKLOG` events behind loses the oldest
and gets one ``overflow`` note in their place (``Event.data["lost"]``), so a forgotten
subscription cannot grow without bound.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .errors import ServiceClosed
from .model import Event, EventKind

__all__ = ["EventBus", "Subscription", "MAX_BACKLOG"]

#: Events a subscription holds before it starts dropping the oldest.
MAX_BACKLOG = 10000


class Subscription:
    """Events as they happen. Iterate (blocking) or ``async for``; :meth:`close` ends it
    (a blocked iteration then stops)."""

    def __init__(self, on_close: Callable[[Subscription], None] | None = None) -> None:
        self._on_close = on_close
        self._queue: collections.deque[Event] = collections.deque()
        self._cond = threading.Condition()
        self._lost = 0
        self.closed = False

    def put(self, event: Event) -> None:
        """Queue ``event`` for this subscriber (dropping the oldest past the backlog)."""
        with self._cond:
            if len(self._queue) >= MAX_BACKLOG:
                self._queue.popleft()
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
    """Numbers events and hands each to every open subscription."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._seq = 0

    def subscribe(self) -> Subscription:
        sub = Subscription(self._drop)
        with self._lock:
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
            for sub in self._subs:
                sub.put(event)
        return event

    def close(self) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.end()
