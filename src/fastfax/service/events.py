"""The event queue (FaxInitializeEventQueue): every subscriber sees every event, in the
order they were published, as an iterator or an async iterator.

A subscriber that falls more than :data:`MAX_BACKLOG` events behind loses the oldest
and gets one ``overflow`` note in their place (``Event.data["lost"]``), so a forgotten
subscription cannot grow without bound.

The bus keeps the last :data:`LOG_SIZE` events, and the service's store logs every event
(:class:`EventBus`): a client that was away (a remote client whose connection dropped,
or whose node restarted) subscribes again with ``since`` set to the last ``seq`` it saw
and gets what it missed first, then what happens next, with nothing twice and nothing
left out, also from another node sharing the store (one series of numbers for all).
When what a client missed is no longer kept, its first event says so in
``Event.data["lost"]`` (how many events it missed, or -1 when that is not known).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .errors import RequestError, ServiceClosed
from .model import Event, EventKind
from .store import Store, StoreUnavailable

__all__ = ["EventBus", "Subscription", "MAX_BACKLOG", "LOG_SIZE"]

#: Events a subscription holds before it starts dropping the oldest.
MAX_BACKLOG = 10000
#: Events the bus keeps for subscribers that come back (``since``); with a store,
#: older ones are read from its log.
LOG_SIZE = 10000
#: Seconds between two writes of published events to the store's log (they are
#: written together).
FLUSH = 0.02
#: Seconds between two reads of the log of a shared store (other nodes' events).
POLL = 0.25
#: Events the store's log keeps (older ones go at the hourly trim).
KEEP = 1_000_000


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
        #: events published on this node before this number are not for it (a stream
        #: opened without ``since`` starts with what is published after it opened)
        self.first = 0

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
    subscription.

    Without a ``store``: events are numbered from 1 and delivered at once. With one,
    every event is appended to the store's log first (a thread of the bus writes what
    was published, at most every :data:`FLUSH` seconds, then delivers it): the store
    numbers it, one series
    for every node that shares the store, and a subscriber coming back to any node,
    also after every node restarted, gets what it missed from the log without a gap;
    on a shared store the bus delivers the other nodes' events too (it reads the log
    every :data:`POLL` seconds). An event published but not yet logged when the
    process is killed was never delivered, so nobody misses it. ``node``: this node's
    name, kept with its events."""

    def __init__(
        self, store: Store | None = None, node: str = "", log_size: int = LOG_SIZE
    ) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._store = store
        self._node = node
        self._log: collections.deque[Event] = collections.deque(maxlen=log_size)
        self._pending: list[Event] = []  # published, not yet logged (with a store)
        self._published = 0  # events published here so far
        self._number: dict[int, int] = {}  # id(event) -> its number among those, till logged
        self._wake = threading.Condition()
        self._done = 0  # events published here that are delivered (in publish order)
        self._delivered = threading.Condition(self._lock)
        self._closing = False
        self._thread: threading.Thread | None = None
        self._seq = 0 if store is None else store.event_bounds()[1]  # the log's last
        if store is None:
            return
        self._thread = threading.Thread(target=self._run, name="fastfax-events", daemon=True)
        self._thread.start()

    def subscribe(
        self, since: int | None = None, allow: Callable[[Event], bool] | None = None
    ) -> Subscription:
        """A new subscription; with ``since`` (a ``seq`` seen before), first every kept
        event after it; ``allow``: which events it may see. Raises
        :class:`RequestError` for a ``since`` not yet reached."""
        if since is not None and (not isinstance(since, int) or isinstance(since, bool)):
            raise RequestError(f"since is an event sequence number, got {since!r}")
        sub = Subscription(self._drop, allow)
        if since is None:  # not what was published before, though delivered after
            with self._wake:
                sub.first = self._published
        with self._lock:
            if since is not None:
                last = self._seq
                if since > last and self._store is not None and self._store.shared:
                    last = max(last, self._store.event_bounds()[1])  # not yet read here
                if since > last:
                    raise RequestError(f"no event {since} yet: the last is {last}")
                missed = [e for e in self._log if e.seq > since]
                first = missed[0].seq if missed else self._seq + 1
                if first > since + 1 and self._store is not None:  # the rest from the log
                    older = [_event(r) for r in self._store.events_after(since, MAX_BACKLOG)
                             if r["seq"] < first]  # fmt: skip
                    missed = older + missed
                    first = missed[0].seq if missed else self._seq + 1
                if first > since + 1:
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
        """Publish an event; with a store, it gets its ``seq`` once logged (a moment
        later) and is delivered then."""
        if self._store is not None:
            event = Event(0, kind, time.time(), job_id, port, data)
            with self._wake:
                self._number[id(event)] = self._published
                self._published += 1
                self._pending.append(event)
                self._wake.notify()
            return event
        with self._lock:
            self._seq += 1
            event = Event(self._seq, kind, time.time(), job_id, port, data)
            self._deliver([event])
        return event

    def _deliver(self, events: list[Event]) -> None:
        """Hand ``events`` (numbered, in order) to every subscription (under the lock)."""
        for event in events:
            if event.seq <= self._seq and self._store is not None:
                continue  # delivered already
            self._seq = max(self._seq, event.seq)
            self._log.append(event)
            number = self._number.pop(id(event), None)
            for sub in self._subs:
                if number is None or number >= sub.first:
                    sub.put(event)
            if number is not None:
                self._done = number + 1
        self._delivered.notify_all()

    def settle(self, timeout: float = 2.0) -> None:
        """Wait until every event published before this call has been delivered (with a
        store they are logged first, a moment later), at most ``timeout`` seconds."""
        if self._store is None:
            return
        with self._wake:
            target = self._published
        deadline = time.monotonic() + timeout
        with self._delivered:
            while self._done < target and (left := deadline - time.monotonic()) > 0:
                self._delivered.wait(left)

    def _run(self) -> None:
        """Log what was published, then deliver it (and, on a shared store, what other
        nodes logged), until :meth:`close` (which logs what is left)."""
        store = self._store
        assert store is not None
        poll = POLL if store.shared else None
        while True:
            with self._wake:
                if not self._pending and not self._closing:
                    self._wake.wait(poll)
                batch, self._pending = self._pending, []
                closing = self._closing
            try:
                self._flush(store, batch)
            except Exception as exc:  # the store is away (or a bug): keep them, try again
                if isinstance(exc, StoreUnavailable):
                    logging.getLogger(__name__).warning("logging events: %s", exc)
                else:
                    logging.getLogger(__name__).exception("logging events failed")
                with self._wake:
                    self._pending[:0] = batch
                if closing:
                    return
                time.sleep(1.0)
                continue
            if closing:
                return
            time.sleep(FLUSH)  # what is published meanwhile goes in the next batch

    def _flush(self, store: Store, batch: list[Event]) -> None:
        if batch:
            seqs = store.add_events([
                {"at": e.time, "kind": e.kind.value, "job_id": e.job_id, "port": e.port,
                 "node": self._node, "data": e.data} for e in batch
            ])  # fmt: skip
            for event, seq in zip(batch, seqs, strict=True):
                event.seq = seq
        if store.shared:  # every node's, in the log's order
            ours = {e.seq: e for e in batch}
            while True:
                rows = store.events_after(self._seq, 1000)
                with self._lock:
                    self._deliver([ours.get(r["seq"]) or _event(r) for r in rows])
                if len(rows) < 1000:
                    break
        else:
            with self._lock:
                self._deliver(batch)

    def trim(self, keep: int = KEEP) -> None:
        """Drop all but the last ``keep`` events from the store's log."""
        if self._store is not None:
            self._store.forget_events(self._seq - keep + 1)

    def close(self) -> None:
        """Log what is left, end every subscription."""
        if self._thread is not None:
            with self._wake:
                self._closing = True
                self._wake.notify()
            self._thread.join()
        with self._lock:
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.end()


def _event(row: dict[str, Any]) -> Event:
    """An event of the store's log."""
    return Event(row["seq"], EventKind(row["kind"]), row["at"], row["job_id"], row["port"],
                 row["data"])  # fmt: skip
