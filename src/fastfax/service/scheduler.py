"""The queue's engine: which job goes on which port, when, and what happens after.

One scheduler thread wakes on every change (and at least once a second) and:
deletes finished jobs older than the dirty days; starts routing received faxes (each
routing method in its own bounded pool of threads, with its own time limit); and,
unless the queue is paused, gives each due send job (highest priority first, then
oldest) to the free send port with the lowest priority number, on a worker thread.
Discount-period jobs wait for the discount window. A failed call is retried after the
retry delay, up to the configured retries; after a line or protocol failure once the
call reached training the retry falls back (9600 bit/s, then ECM off, then 4800 bit/s); a bad
address, a call the line refuses (CALL_BLACKLISTED: a modem's BLACKLISTED, a SIP
trunk's 401/403/407) and a far end that refused T.38 are never retried.

Crash safety: a job is marked in progress (attempt counted) in the database before its
call starts, each page the far end confirms (MCF) is recorded as it is confirmed, and
the job is marked completed as soon as the far end has confirmed the last page; at
start, :meth:`Scheduler.recover` puts every job left in progress back in the queue
(and a node takes over the calls of nodes whose lease ran out); a call the service
stops is put back the same way. So a job is never lost, never reported done when it
was not, and not sent again once its completion was committed; a call cut after the
far end confirmed pages resumes with the next page, each page's header line saying it
is a continuation, or, when the configuration says ``interrupted = "hold"``, is held
(PAUSED) for an operator with a cause saying so.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import tiff
from ..devices.contract import Call, Outcome
from ..document.branding import apply_header
from ..files import write_files
from ..page import Page
from .config import LOG_CATEGORIES, Configuration, in_window
from .events import EventBus
from .model import DeviceState, EventKind, JobState, JobType
from .outbox import FOLDER as OUTBOX_FOLDER
from .outbox import Outbox
from .ports import PortTable
from .routing import ReceivedFax, RoutingMethod
from .spool import Spool
from .store import Store, StoreUnavailable

__all__ = ["Scheduler", "FALLBACK"]

out_log = logging.getLogger(LOG_CATEGORIES["outbound"])
in_log = logging.getLogger(LOG_CATEGORIES["inbound"])

#: Per fallback level (one more after each line or protocol failure): (max bit/s, ECM).
FALLBACK = [(None, True), (9600, True), (9600, False), (4800, False)]
#: Days a client's request id is remembered (a repeat within them creates nothing).
REQUEST_DAYS = 2
#: The retry delay grows up to this many times after a busy or delayed call.
MAX_BACKOFF = 8
#: Due jobs read from the store at once, in the order they go (highest priority first,
#: then oldest); the scheduler works through them over its next passes and reads again
#: when they are used up or something else may have become due first.
QUEUE_BATCH = 64
#: Finished jobs deleted per clean-up pass (one pass a second while there are more).
CLEAN_BATCH = 500
#: Threads of a routing method's pool unless its settings say (``workers``).
ROUTE_WORKERS = 2
#: Seconds a routing method may run beyond its own ``timeout`` (default 300 s) before
#: its attempt counts as failed.
ROUTE_GRACE = 5.0
_BACKOFF = {DeviceState.BUSY, DeviceState.CALL_DELAYED, DeviceState.NO_ANSWER}
#: Outcomes never retried (the job fails with the device's cause): a bad number, and a
#: call the line refuses (a modem's BLACKLISTED, a SIP trunk's 401/403/407).
_REFUSED = (DeviceState.BAD_ADDRESS, DeviceState.CALL_BLACKLISTED)
_DUE = (JobState.PENDING.value, JobState.RETRYING.value, JobState.NOLINE.value)
_STATE_EVENTS = {
    DeviceState.DIALING: EventKind.DIALING,
    DeviceState.SENDING: EventKind.SENDING,
    DeviceState.RECEIVING: EventKind.RECEIVING,
    DeviceState.RINGING: EventKind.RINGING,
    DeviceState.INITIALIZING: EventKind.INITIALIZING,
    DeviceState.NOT_FAX_CALL: EventKind.NOT_FAX_CALL,  # e.g. a voice call on a receiving line
}
_OUTCOME_EVENTS = {
    DeviceState.COMPLETED: EventKind.COMPLETED,
    DeviceState.BUSY: EventKind.BUSY,
    DeviceState.NO_ANSWER: EventKind.NO_ANSWER,
    DeviceState.BAD_ADDRESS: EventKind.BAD_ADDRESS,
    DeviceState.FATAL_ERROR: EventKind.FATAL_ERROR,
    DeviceState.ABORTING: EventKind.ABORTING,
    DeviceState.NO_DIAL_TONE: EventKind.NO_DIAL_TONE,
    DeviceState.DISCONNECTED: EventKind.DISCONNECTED,
    DeviceState.NOT_FAX_CALL: EventKind.NOT_FAX_CALL,
    DeviceState.CALL_DELAYED: EventKind.CALL_DELAYED,
    DeviceState.CALL_BLACKLISTED: EventKind.CALL_BLACKLISTED,
    DeviceState.OFFLINE: EventKind.OFFLINE,
}


def _report(row: dict[str, Any]) -> str:
    """A delivery report's text for a finished send job."""
    when = _dt.datetime.fromtimestamp(row["finished"] or time.time())
    info = row["info"]
    lines = [
        f"Fax job {row['id']} to {row['number']} ({info.get('recipient_name') or 'no name'})",
        f"state: {row['state']} at {when:%Y-%m-%d %H:%M:%S} after {row['attempts']} call(s)",
        f"document: {info.get('document_name', '')}, {row['pages']} page(s)",
    ]
    if row["cause"]:
        lines.append(f"cause: {row['cause']}")
    if info.get("billing_code"):
        lines.append(f"billing code: {info['billing_code']}")
    return "\n".join(lines) + "\n"


def _continuation(row: dict[str, Any], pages: list[Page], first: int) -> list[Page]:
    """The pages of a job after the ``first`` the far end confirmed in a call that was
    cut (its node died), each with a header line saying it continues that fax."""
    when = _dt.datetime.now()
    return [
        apply_header(page, f"CONTINUATION of fax {row['id']} from page {first + 1}"
                           f"  {when:%Y-%m-%d %H:%M}\tPage {first + 1 + n} of {len(pages)}")
        for n, page in enumerate(pages[first:])
    ]  # fmt: skip


def _reached_training(result: Any) -> bool:
    """Whether the T.30 ``result`` of a failed call shows it reached training: it trained
    (``rate`` > 0) or its training failed (FTT: ``fallbacks``; ``CANNOT_TRAIN``). Not a
    modem's ERROR to the dial nor a device's exception (no result): a slower retry would
    not help those."""
    cause = getattr(getattr(result, "cause", None), "name", "")
    return bool(getattr(result, "rate", 0) or getattr(result, "fallbacks", 0)
                or cause == "CANNOT_TRAIN")  # fmt: skip


def _time_limit(method: RoutingMethod) -> float:
    return float(getattr(method, "timeout", 300.0)) + ROUTE_GRACE


def _unclaimed_since(fence: int) -> str:
    """The condition on a job whose call of claim ``fence`` delivered its fax after the
    lease ran out: nobody claimed it since (still that token; requeued, or held for an
    operator). Such a job is completed by that call's outcome instead of sent again."""
    return f"state IN ('pending', 'paused', 'noline') AND fence = {fence}"


@dataclass
class _Round:
    """One routing attempt of a received fax: methods still running (name -> monotonic
    deadline), those done (name -> detail) and failed (name -> cause)."""

    row: dict[str, Any]
    routed: dict[str, str]
    pending: dict[str, float]
    failed: dict[str, str] = field(default_factory=dict)


class _Hooks:
    """What devices see of the service (see :class:`fastfax.devices.contract.Hooks`)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.sched = scheduler
        self.ports = scheduler.ports

    def settings(self, line_id: str) -> dict[str, Any]:
        return self.ports.settings(line_id)

    def claim(self, line_id: str) -> bool:
        with self.ports.lock:
            return not self.sched.stopping and self.ports.claim(line_id)

    def release(self, line_id: str) -> None:
        self.ports.release(line_id)
        self.sched.bus.publish(EventKind.LINE_RELEASED, port=line_id)
        self.sched._poke()

    def receiving(self, line_id: str, abort: threading.Event) -> None:
        self.ports.receiving(line_id, abort)

    def status(self, line_id: str, state: DeviceState, **fields: Any) -> None:
        status, changed = self.ports.report(line_id, state, **fields)
        if state is DeviceState.SENDING and fields.get("current_page") and changed:
            self.sched.confirmed(fields.get("job_id"), fields["current_page"])
        kind = _STATE_EVENTS.get(state)
        if kind is not None and changed:
            data = {"page": status.current_page} if state is DeviceState.SENDING else {}
            self.sched.bus.publish(kind, job_id=status.job_id, port=line_id, **data)

    def find_line(self, number: str, kind: str) -> str | None:
        return self.ports.find(number, kind)

    def received(
        self, line_id: str, result: Any, caller_id: str, from_job: int | None = None
    ) -> None:
        sched = self.sched
        pages = list(result.pages)
        try:
            file = sched.spool.write("in", pages)
        except StoreUnavailable:  # kept on this node's disk until the store is back
            file = sched.outbox.keep_pages(tiff.dumps(pages, "g4"))
        now = time.time()
        info = {
            "remote_id": str(getattr(result, "remote_id", "") or ""),
            "rate": int(getattr(result, "rate", 0) or 0),
            "ecm": bool(getattr(result, "ecm", False)),
            "caller_id": caller_id,
            "routed": {},
            **({} if from_job is None else {"from_job": from_job}),
        }
        if not result.ok:  # the call failed after these pages: keep them, say so
            info["partial"] = f"partial: the call ended early ({result.cause})"
        # stored straight into ROUTING (one commit; a run that stops while routing it
        # leaves it there, and the next start queues it again)
        route = not sched.stopping
        row = {
            "type": JobType.RECEIVE.value,
            "state": (JobState.ROUTING if route else JobState.PENDING).value,
            "number": caller_id,
            "submitted": now,
            "schedule": now,
            "started": now if route else None,
            "attempts": int(route),
            "pages": len(pages),
            "port": line_id,
            "file": file,
            "info": info,
            "cause": info.get("partial", ""),
            "node": sched.node,  # routed by this node: its line's routing settings
        }
        with sched.ports.lock:
            if from_job is not None and from_job in sched._calls:
                # a call of ours to a line of ours: stored with that call's outcome, in
                # one commit (then neither is without the other)
                sched._arrived[from_job] = (row, line_id)
                return
        sched.store_received(row, line_id)

    def stored(self, row: dict[str, Any], line_id: str) -> None:
        """A received fax's job ``row`` was committed: say so and route it."""
        sched, info, job_id, pages = self.sched, row["info"], row["id"], row["pages"]
        route = row["state"] == JobState.ROUTING.value
        in_log.info(
            "fax %d received on %s: %d page(s) from %r",
            job_id,
            line_id,
            pages,
            info["remote_id"],
        )
        sched.bus.publish(
            EventKind.COMPLETED,
            job_id=job_id,
            port=line_id,
            direction="receive",
            pages=pages,
            remote_id=info["remote_id"],
            **({"partial": True} if "partial" in info else {}),
        )
        if route:
            sched.begin_round({**row, "attempts": 0, "info": dict(info)})
        sched._poke()


class Scheduler:
    """The scheduler thread and its workers. It sees of the service only what it is
    given: the port table, the job store, the event bus, the spool's files, and
    callables for the live configuration, the routing methods in order (name, method)
    and the work to do on every tick (``on_tick``: expiring idle client sessions).

    ``node`` names this service among the nodes sharing the store: a job it puts on a
    line is claimed for it with a lease of the configuration's ``lease`` seconds,
    renewed (every third of it) while the call runs, and a fencing token; its outcome
    is written only while the job still holds that token, so a node whose claim was
    taken over (its lease ran out) does not act on it. In-progress jobs whose lease
    ran out go back to the queue."""

    def __init__(
        self,
        *,
        ports: PortTable,
        store: Store,
        bus: EventBus,
        spool: Spool,
        config: Callable[[], Configuration],
        routing: Callable[[], list[tuple[str, RoutingMethod]]],
        on_tick: Callable[[], None],
        node: str = "",
    ) -> None:
        self.node = node
        self.ports = ports
        self.store = store
        self.bus = bus
        self.spool = spool
        #: what could not be recorded while the store was unreachable (see :meth:`flush_outbox`)
        self.outbox = Outbox(spool.root)
        self._config = config
        self._routing_methods = routing
        self._on_tick = on_tick
        self.hooks = _Hooks(self)
        self.stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastfax-scheduler", daemon=True)
        self._workers: set[threading.Thread] = set()
        self._calls: dict[int, Call] = {}
        self._targets: dict[int, str] = {}  # job id -> the line of ours its call rings
        self._after: dict[int, str] = {}  # job id -> "pause" / "delete" after the call
        self._forgot = 0.0  # when old request ids were last forgotten
        self._cleaned = 0.0  # when finished jobs were last looked at
        self._rounds: dict[int, _Round] = {}  # received faxes being routed
        self._pools: dict[str, ThreadPoolExecutor] = {}  # one per routing method
        self._fences: dict[int, int] = {}  # job id -> fencing token of our claim
        self._first: dict[int, int] = {}  # job id -> pages a resumed call leaves out
        #: send job id -> (receive job row, line) of the fax its call brought to a line
        #: of ours, stored with the call's outcome
        self._arrived: dict[int, tuple[dict[str, Any], str]] = {}
        self._renewed = time.time()  # when the leases of our calls were last renewed
        #: due send jobs read from the store (id, state, number, file), in the order they
        #: go; None: read again. Valid until ``_queue_until`` (time.time()), or until
        #: :meth:`wake` (a change from outside) sets ``_stale``.
        self._queue: list[dict[str, Any]] | None = None
        self._queue_full = False  # whether the store had more due jobs than were read
        self._queue_until = 0.0
        self._queue_cheap = False  # whether the discount window was open when read
        self._queue_read = 0.0  # when it was read
        self._retry_at = float("inf")  # the earliest retry scheduled since (under the lock)
        self._stale = True
        self._routes_read = 0.0  # when every due received fax was last looked for
        self._route_retries: list[float] = []  # heap: when routings retried here are due

    # -- life -----------------------------------------------------------------------
    def recover(self) -> None:
        """Put jobs a stopped or killed run of this node left in progress (on a line, or
        being routed), and calls of other nodes whose lease ran out, back in the queue,
        once what this node kept in its outbox is recorded."""
        self.flush_outbox()
        self._take_over((JobState.INPROGRESS.value, JobState.ROUTING.value), self.node)

    def _take_over(self, states: tuple[str, ...], node: str) -> None:
        """Requeue the stale claims (see :meth:`Store.stale_claims`) in ``states``."""
        for row in self.store.stale_claims(states, node, time.time()):
            with self.ports.lock:  # (a call's worker keeps its outcome, then lets go)
                ours = row["id"] in self._calls or row["id"] in self.outbox.jobs()
            if ours or row["id"] in self._rounds:
                continue
            if row["type"] == JobType.RECEIVE.value and row["node"] not in (None, self.node):
                continue  # being routed by the node that received it (or when it is back)
            when = f"state = '{row['state']}' AND fence = {int(row['fence'])}"
            if row["type"] == JobType.SEND.value and self.store.received_from(row["id"]):
                # its fax reached a line of ours before the stop: it was sent, once
                if self.store.update_job(row["id"], when, state=JobState.COMPLETED.value,
                                         finished=time.time(), cause=""):  # fmt: skip
                    out_log.warning("job %d was delivered when the service stopped", row["id"])
                continue
            state = JobState.PENDING
            values = {"cause": "interrupted: the service stopped during the call",
                      "schedule": time.time()}  # fmt: skip
            done = int(row["info"].get("confirmed", 0) or 0)  # pages the far end confirmed
            # another node's claim ran out mid-call (it died, or lost the database): pages
            # the far end confirmed after its last write to the store are not known here
            lost = row["node"] if row["node"] not in (None, self.node) else None
            if (
                row["type"] == JobType.SEND.value
                and done < row["pages"]
                and (done > 0 or (lost and self._config().interrupted == "hold"))
            ):
                state, values = self._interrupted(row, done, lost)
            elif lost:
                values["cause"] = (f"interrupted: node {lost} lost its claim during the call;"
                                   " pages the far end confirmed that it could not record"
                                   " are sent again")  # fmt: skip
            if not self.store.update_job(row["id"], when, state=state.value, **values):
                continue  # another node took it meanwhile
            self._stale = True  # due again: the next pass reads the queue
            out_log.warning("job %d was in progress when the service stopped: %s", row["id"],
                            values["cause"])  # fmt: skip
            if state is JobState.PAUSED:  # an operator has something to decide
                self.bus.publish(EventKind.JOB_CHANGED, job_id=row["id"], action="hold",
                                 owner=row["owner"], cause=values["cause"])  # fmt: skip

    def _interrupted(
        self, row: dict[str, Any], done: int, lost: str | None = None
    ) -> tuple[JobState, dict[str, Any]]:
        """The new state and values of send job ``row`` whose call was cut after the far
        end confirmed its first ``done`` pages (not all): queued again to send the rest
        as a continuation, or, when the configuration says ``interrupted = "hold"``,
        PAUSED for an operator (resume sends the rest as a continuation, restart all).
        ``lost``: the other node whose claim ran out during the call; it may have had
        more pages confirmed than it could record, so on hold even none recorded holds."""
        total = row["pages"]
        confirmed = f"page 1 of {total}" if done == 1 else f"pages 1-{done} of {total}"
        rest = f"page {total}" if done + 1 == total else f"pages {done + 1}-{total}"
        values: dict[str, Any] = {"info": {"resume_from": done}} if done else {}
        if self._config().interrupted == "hold":
            if lost is None:
                what = f"the call was interrupted after the far end confirmed {confirmed}"
            else:
                what = (f"node {lost} lost its claim during the call (the far end confirmed"
                        f" {confirmed if done else 'no page'} as recorded; pages confirmed"
                        " after its last write to the store are not known)")  # fmt: skip
            again = (
                f"resume sends {rest} marked as a continuation"
                if done
                else ("resume sends every page")
            )
            values["cause"] = (f"held for an operator: {what}; {again}, restart sends every"
                               " page again")  # fmt: skip
            return JobState.PAUSED, values
        values["cause"] = (f"interrupted after page {done} of {total} was confirmed: resumes"
                           f" with page {done + 1}, marked as a continuation")  # fmt: skip
        return JobState.PENDING, {**values, "schedule": time.time()}

    def start(self) -> None:
        self.store.listen(self.wake)  # other nodes' new jobs; the tick polls as well
        self._thread.start()

    def wake(self) -> None:
        """Something changed outside the scheduler (a job became due, a port or the
        configuration changed): the next pass reads the queue and due routing again."""
        self._stale = True
        self._wake.set()

    def _poke(self) -> None:
        """A line was freed or a routing round ended: a pass, on what it knows."""
        self._wake.set()

    def stop(self) -> None:
        """Stop dispatching, abort calls in progress (their jobs go back to the queue),
        wait for every thread."""
        with self.ports.lock:
            self.stopping = True
            for call in self._calls.values():
                call.abort.set()
        self._wake.set()
        self._thread.join()
        for worker in list(self._workers):
            worker.join()
        for pool in self._pools.values():  # a method still running finishes on its own
            pool.shutdown(wait=False, cancel_futures=True)

    def abort(self, job_id: int) -> bool:
        """Abort the call of a job on the line; False if it is not on a line."""
        with self.ports.lock:
            call = self._calls.get(job_id)
            if call is None:
                return False
            call.abort.set()
        return True

    def _run(self) -> None:
        while not self.stopping:
            self._wake.clear()
            try:
                delay = self._tick()
            except StoreUnavailable as exc:  # a partition or the server down: later
                out_log.warning("the store cannot be reached: %s", exc)
                delay = 1.0
            except Exception:  # a bug must not stop the queue: log it and go on
                logging.getLogger(LOG_CATEGORIES["unknown"]).exception("scheduler tick failed")
                delay = 1.0
            self._wake.wait(delay)

    def _tick(self) -> float:
        config = self._config()
        now = time.time()
        self._on_tick()
        if len(self.outbox):
            try:
                self.flush_outbox()
            except StoreUnavailable as exc:  # nothing else can be done without the store
                out_log.warning("the store cannot be reached: %s", exc)
                return 1.0
        if now - self._renewed >= config.lease / 3:
            self._renewed = now
            self._renew(now)
        if now - self._cleaned >= 1.0:  # finished jobs are looked at once a second
            self._cleaned = now
            self._cleanup(now)
        self._overdue()
        stale, self._stale = self._stale, False
        every = stale or now - self._routes_read >= 1.0
        if every or (self._route_retries and self._route_retries[0] <= now):
            self._start_routing(now, every)
        if config.pause_queue:
            return 1.0
        cheap = in_window(config.discount_start, config.discount_end, _dt.datetime.now())
        if (stale or self._queue is None or now >= min(self._queue_until, self._retry_at)
                or cheap != self._queue_cheap):  # fmt: skip
            self._read_queue(now, cheap)
        senders = self.ports.senders()
        with self.ports.lock:
            free = [p for p in self.ports.free_senders(senders) if p not in self._targets.values()]
        if free or not senders:
            reach: dict[tuple[str, str], bool] = {}
            self._pass(free, senders, reach)
            if free and self._queue_full and now > self._queue_read:  # more further down
                self._read_queue(now, cheap)
                self._pass(free, senders, reach)
        routing = self._route_retries[0] if self._route_retries else now + 1.0
        return max(0.0, min(now + 1.0, self._queue_until, self._retry_at, routing) - now)

    def _read_queue(self, now: float, cheap: bool) -> None:
        """Read the first :data:`QUEUE_BATCH` due send jobs (what choosing needs; the
        whole row is read at dispatch) and when the next one not yet due is."""
        with self.ports.lock:  # (a retry scheduled from now on is seen by the next read)
            self._retry_at = float("inf")
        due = f"type = 'send' AND state IN ({','.join('?' * len(_DUE))})"
        self._queue = self.store.due_jobs(now, cheap, QUEUE_BATCH)
        later = self.store.earliest_schedule(f"{due} AND schedule > ?", (*_DUE, now))
        self._queue_full = len(self._queue) == QUEUE_BATCH
        self._queue_until = now + 1.0 if later is None else min(now + 1.0, later)
        self._queue_cheap = cheap
        self._queue_read = now

    def _pass(self, free: list[str], senders: list[str], reach: dict) -> None:
        """Give the queue's jobs, in order, to the ``free`` send ports (taken from it)."""
        queue = self._queue or []
        for row in list(queue):
            if senders and not free:
                break
            number = row["number"]
            able = [p for p in senders if self._reaches(p, number, reach)]
            if not able:
                queue.remove(row)  # NOLINE (due again when a port changes) or FAILED
                self._unreachable(row, reach)
                continue
            target = self.ports.find_number(number)
            if target is not None and (
                self.ports.is_busy(target) or target in self._targets.values()
            ):
                continue  # a line of ours, in a call now: the job waits its turn
            port = next((p for p in free if p in able and p != target), None)
            if port is None:
                continue  # every line that can reach it is busy: it waits its turn
            free.remove(port)
            if target in free:
                free.remove(target)
            if self._dispatch(row, port, target):
                queue.remove(row)

    def _renew(self, now: float) -> None:
        """Extend the leases of our calls; abort a call whose claim was taken over (its
        outcome will not be written), and requeue other nodes' expired calls."""
        with self.ports.lock:
            fences = dict(self._fences)
        lease = self._config().lease
        held = self.store.renew(self.node, fences, now + lease) if fences else set()
        for job_id in set(fences) - held:
            out_log.error("job %d: our claim was taken over (lease expired): abandoning "
                          "the call", job_id)  # fmt: skip
            self.abort(job_id)
        self._take_over((JobState.INPROGRESS.value,), "")

    def _reaches(self, port: str, number: str, seen: dict[tuple[str, str], bool]) -> bool:
        """Whether ``port``'s device may reach ``number`` (None, unknown, counts as yes)."""
        key = (port, number)
        if key not in seen:
            can = getattr(self.ports.device(port), "can_reach", None)
            seen[key] = can is None or can(port, number) is not False
        return seen[key]

    def _unreachable(self, row: dict[str, Any], seen: dict[tuple[str, str], bool]) -> None:
        """No port set to send reaches the job's number: a bad address if no line at all
        ever can, else NOLINE (a port that can is not set to send)."""
        number = row["number"]
        if any(self._reaches(p, number, seen) for p in self.ports):
            if row["state"] != JobState.NOLINE.value:
                self._set(row["id"], row["state"], JobState.NOLINE,
                          cause=f"no port set to send can reach {number!r}")  # fmt: skip
            return
        cause = f"no line can reach the number {number!r}"
        if self._set(row["id"], row["state"], JobState.FAILED, finished=time.time(), cause=cause):
            out_log.warning("job %d: %s", row["id"], cause)
            self.bus.publish(EventKind.BAD_ADDRESS, job_id=row["id"], cause=cause)

    def _set(self, job_id: int, old: str, new: JobState, **values: Any) -> bool:
        """Move a job from state ``old`` to ``new``; a job we claimed only while the
        claim is still ours (its fencing token). The outcome of our call, when the store
        cannot be reached, is kept in the outbox (True: it will be written)."""
        when = f"state = '{old}'"
        with self.ports.lock:
            fence = self._fences.get(job_id) if old == JobState.INPROGRESS.value else None
            if fence is not None:
                when += f" AND fence = {fence}"
            arrived = self._arrived.pop(job_id, None)
            kept = ""
            try:
                if arrived is None:
                    done = self.store.update_job(job_id, when, state=new.value, **values)
                else:  # the fax this call delivered to a line of ours, in the same commit
                    kept = self._settle(arrived[0])
                    done, arrived[0]["id"] = self.store.update_and_add(
                        job_id, when, {"state": new.value, **values}, arrived[0])  # fmt: skip
                    self.outbox.remove_pages(kept)
                if not done and fence is not None and new is JobState.COMPLETED:
                    done = self.store.update_job(job_id, _unclaimed_since(fence),
                                                 state=new.value, **values)  # fmt: skip
            except StoreUnavailable as exc:
                if fence is None:
                    raise
                # a call's outcome: kept (with the fax it delivered) until the store is back
                came = arrived and {"row": arrived[0], "line": arrived[1]}
                outcome = {"state": new.value, **values}
                self.outbox.keep({"kind": "outcome", "job": job_id, "fence": fence,
                                  "values": outcome, "arrived": came})  # fmt: skip
                self.outbox.remove_pages(kept)  # (if moved into the spool before the failure)
                out_log.warning("job %d: the store cannot be reached (%s): its outcome (%s) is"
                                " kept until it can", job_id, exc, new.value)  # fmt: skip
                return True
            self.ports.changed.notify_all()
        if arrived is not None:
            self.hooks.stored(*arrived)
        return done

    # -- what the store could not take -----------------------------------------------
    def _settle(self, row: dict[str, Any]) -> str:
        """Move the pages of received fax ``row`` kept in the outbox into the spool (and
        the shared store), naming them in ``row``; the outbox path, to remove once
        ``row`` is committed ("" if they were in the spool already)."""
        kept = row["file"]
        if not kept.startswith(OUTBOX_FOLDER + os.sep):
            return ""
        row["file"] = self.spool.copy(kept, "in")
        return kept

    def store_received(self, row: dict[str, Any], line_id: str) -> None:
        """Commit received fax ``row`` and route it; kept in the outbox while the
        store cannot be reached."""
        kept = ""
        try:
            kept = self._settle(row)
            row["id"] = self.store.add_job(row)
        except StoreUnavailable as exc:
            self.outbox.keep({"kind": "received", "row": row, "line": line_id})
            self.outbox.remove_pages(kept)  # (if moved into the spool before the failure)
            in_log.warning("a fax received on %s is kept until the store can be reached: %s",
                           line_id, exc)  # fmt: skip
            return
        self.outbox.remove_pages(kept)
        self.hooks.stored(row, line_id)

    def flush_outbox(self) -> None:
        """Record what the outbox kept, oldest first: received faxes (then routed), and
        our calls' outcomes while our claim holds (the same fencing token and still in
        progress). A call that delivered its fax is also recorded if nobody claimed the
        job since (the same token: put back in the queue or held for an operator after
        our lease ran out), so it is not sent again; otherwise another node's claim
        stands. Each step is written back into the entry before the next, so a kill or
        a lost answer never records a fax twice. Raises :class:`StoreUnavailable` (what
        is left stays kept); an entry failing otherwise is set aside, logged."""
        for name, entry in self.outbox.entries():
            try:
                self._flush_entry(name, entry)
            except StoreUnavailable:
                raise
            except Exception:  # not for want of the store: trying again will not help
                out_log.exception("outbox entry %s cannot be recorded: set aside", name)
                self.outbox.set_aside(name)

    def _flush_entry(self, name: str, entry: dict[str, Any]) -> None:
        if entry["kind"] == "received":
            row = self._add_kept_fax(name, entry, entry["row"])
            self.outbox.done(name)
            self.hooks.stored(row, entry["line"])
            return
        job_id, fence, values = entry["job"], entry["fence"], entry["values"]
        came = entry["arrived"]
        if came is not None:  # stored first: then a take-over finds the job delivered
            came["row"] = self._add_kept_fax(name, entry, came["row"])
        done = self.store.update_job(
            job_id, f"state = 'inprogress' AND fence = {fence}", **values)  # fmt: skip
        if not done and values["state"] == JobState.COMPLETED.value:
            done = self.store.update_job(job_id, _unclaimed_since(fence), **values)
        self.outbox.done(name)
        if done:
            out_log.warning("job %d: the outcome of its call (%s), kept while the store"
                            " could not be reached, is recorded", job_id,
                            values["state"])  # fmt: skip
            self.bus.publish(EventKind.JOB_CHANGED, job_id=job_id, action="recorded",
                             state=values["state"])  # fmt: skip
        else:
            out_log.warning("job %d: the outcome of its call (%s), kept while the store"
                            " could not be reached, is not recorded: the job was claimed"
                            " again meanwhile", job_id, values["state"])  # fmt: skip
        if came is not None:
            self.hooks.stored(came["row"], came["line"])
        self._stale = True

    def _add_kept_fax(self, name: str, entry: dict[str, Any], row: dict[str, Any]
                      ) -> dict[str, Any]:  # fmt: skip
        """Commit received fax ``row`` of outbox entry ``name`` once: its pages moved into
        the spool first (the entry rewritten to name them), and not added again if a
        commit whose answer was lost (or a kill) added it already. The row committed."""
        kept = self._settle(row)
        if kept:
            self.outbox.update(name, entry)  # (``row`` is a part of ``entry``)
            self.outbox.remove_pages(kept)
        if row.get("id"):
            return row
        found = self.store.jobs("type = 'receive' AND file = ?", (row["file"],), order="id")
        if found:
            return found[0]
        row["id"] = self.store.add_job(row)
        return row

    # -- sending --------------------------------------------------------------------
    def _dispatch(self, row: dict[str, Any], port: str, target: str | None) -> bool:
        """Claim ``port`` and the job, and start its call on a worker thread. ``target``:
        the line of ours the number rings (kept from other calls meanwhile), if any.
        False if the port was taken meanwhile (the job is still due)."""
        config = self._config()
        with self.ports.lock:
            if self.stopping or not self.ports.claim(port):
                return False
            row = self.store.job(row["id"]) or {"state": None}  # the whole row now
            if row["state"] not in _DUE or row["schedule"] > time.time():
                # paused, cancelled, deleted or put off meanwhile
                self.ports.release(port)
                return True
            now = time.time()
            fence = self.store.claim(  # committed before the call starts
                row["id"],
                row["state"],
                self.node,
                now + self._config().lease,
                state=JobState.INPROGRESS.value,
                port=port,
                started=now,
                attempts=row["attempts"] + 1,
            )
            self.ports.changed.notify_all()
            if fence is None:  # paused, cancelled or taken by another node meanwhile
                self.ports.release(port)
                return True
            self._fences[row["id"]] = fence
            self._first[row["id"]] = int(row["info"].get("resume_from", 0) or 0)
            level = min(row["info"].get("fallback", 0), len(FALLBACK) - 1)
            rate, ecm = FALLBACK[level]
            settings = self.ports.settings(port)
            tsid = row["info"].get("tsid") or (
                settings["tsid"] if config.use_device_tsid else row["info"].get("sender_fax", "")
            )
            call = Call(row["id"], row["number"], [], tsid=tsid, ecm=ecm, max_rate=rate)
            self._calls[row["id"]] = call
            if target is not None:
                self._targets[row["id"]] = target
            self.ports.status(port).job_id = row["id"]
        out_log.info(
            "job %d: calling %s on %s (attempt %d)",
            row["id"],
            row["number"],
            port,
            row["attempts"] + 1,
        )
        worker = threading.Thread(
            target=self._send, args=(row, port, call), name=f"fastfax-send-{row['id']}", daemon=True
        )
        self._workers.add(worker)
        worker.start()
        return True

    def _send(self, row: dict[str, Any], port: str, call: Call) -> None:
        try:
            if call.abort.is_set():  # cancelled between the claim and the call
                outcome = Outcome(DeviceState.ABORTING, "aborted by a user")
            else:
                pages = tiff.read(self.spool.path(row["file"]))
                first = self._first.get(row["id"], 0)
                call.pages = _continuation(row, pages, first) if first else pages
                device = self.ports.device(port)
                outcome = device.send(port, call, self.hooks)
        except Exception as exc:  # a device failing is a failed call, not a dead queue
            out_log.exception("job %d: the device on %s failed", row["id"], port)
            outcome = Outcome(DeviceState.FATAL_ERROR, f"{type(exc).__name__}: {exc}")
        after = None
        try:
            self._finish(row, port, call, outcome)
        finally:
            with self.ports.lock:
                arrived = self._arrived.pop(row["id"], None)
                self._calls.pop(row["id"], None)
                self._fences.pop(row["id"], None)
                self._first.pop(row["id"], None)
                self._targets.pop(row["id"], None)
                after = self._after.pop(row["id"], None)
            if arrived is not None:  # (the outcome was not written: stored on its own)
                self.store_received(*arrived)
            if after == "delete":
                self.delete(row["id"])
            self.hooks.release(port)
            self._workers.discard(threading.current_thread())

    def confirmed(self, job_id: int | None, page: int) -> None:
        """The far end confirmed page ``page`` of the call of ``job_id`` (MCF): record
        it (the job's page number) unless it is the last, whose confirmation the
        outcome commits. Not waiting for the disk: a node that dies keeps the record
        (only a power cut may lose it, and then pages are sent again, none lost)."""
        with self.ports.lock:
            fence, call = self._fences.get(job_id or -1), self._calls.get(job_id or -1)
            first = self._first.get(job_id or -1, 0)
        if fence is None or call is None or page >= len(call.pages):
            return
        try:
            self.store.update_job(job_id, f"state = 'inprogress' AND fence = {fence}",
                                  info={"confirmed": first + page}, durable=False)  # fmt: skip
        except StoreUnavailable as exc:  # the call goes on; its outcome will be kept
            out_log.warning("job %d: page %d confirmed, not recorded: %s", job_id, page, exc)

    def after_call(self, job_id: int, action: str) -> bool:
        """Ask that a job on the line be paused (``"pause"``) or deleted (``"delete"``)
        once its current call ends; False if it is not on a line. Call under the lock."""
        if job_id not in self._calls:
            return False
        self._after[job_id] = action
        return True

    def _finish(self, row: dict[str, Any], port: str, call: Call, outcome: Outcome) -> None:
        config = self._config()
        job_id = row["id"]
        attempts = row["attempts"] + 1
        now = time.time()
        inprogress = JobState.INPROGRESS.value
        result = outcome.result
        state = outcome.state
        with self.ports.lock:
            after = self._after.get(job_id)
        if outcome.ok:
            info = {
                "remote_id": str(getattr(result, "remote_id", "") or ""),
                "rate": int(getattr(result, "rate", 0) or 0),
                "ecm": bool(getattr(result, "ecm", False)),
            }
            if config.archive_outgoing:
                name = f"fax-{job_id:06d}-{row['number']}.tif"
                try:
                    self.spool.archive(row["file"], config.archive_folder, name)
                except OSError as exc:
                    out_log.error("job %d: cannot archive the fax: %s", job_id, exc)
            self._set(job_id, inprogress, JobState.COMPLETED, finished=now, cause="", info=info)
            out_log.info("job %d: sent to %s (%d pages)", job_id, row["number"], row["pages"])
        elif state is DeviceState.ABORTING and self.stopping:  # not counted as an attempt
            new = JobState.PENDING
            values: dict[str, Any] = {
                "schedule": now,
                "cause": "interrupted: the service stopped during the call",
            }
            stored = self.store.job(job_id) or {"info": {}}  # the pages confirmed, as recorded
            done = int(stored["info"].get("confirmed", 0) or 0)
            if 0 < done < row["pages"]:  # as after a node died: the rest, or held
                new, values = self._interrupted(row, done)
            if self._set(job_id, inprogress, new, attempts=attempts - 1, **values) and (
                new is JobState.PAUSED
            ):
                self.bus.publish(EventKind.JOB_CHANGED, job_id=job_id, action="hold",
                                 owner=row["owner"], cause=values["cause"])  # fmt: skip
        elif state is DeviceState.ABORTING:
            self._set(job_id, inprogress, JobState.CANCELED, finished=now, cause="aborted")
        elif state in _REFUSED or outcome.refused:  # the same call would be refused
            self._set(job_id, inprogress, JobState.FAILED, finished=now, cause=outcome.cause)
        elif after == "pause":  # paused on the line: held after this call, as Windows does
            self._set(job_id, inprogress, JobState.PAUSED, cause=outcome.cause)
        else:
            fallback = row["info"].get("fallback", 0)
            if state is DeviceState.FATAL_ERROR and _reached_training(result):
                fallback += 1  # a line or protocol failure: try slower next time
            self._retry_or_give_up(
                job_id,
                attempts,
                outcome.cause,
                outcome.cause,
                backoff=state in _BACKOFF,
                info={"fallback": fallback},
            )
            out_log.warning(
                "job %d: %s (%s), attempt %d", job_id, state.value, outcome.cause, attempts
            )
        self.ports.report(port, state)  # (its event is the outcome's, with the cause)
        data: dict[str, Any] = {"cause": outcome.cause} if outcome.cause else {}
        if outcome.ok:
            data.update(pages=row["pages"], direction="send")
        self.bus.publish(_OUTCOME_EVENTS.get(state, EventKind.FATAL_ERROR), job_id=job_id,
                         port=port, state=state.value, **data)  # fmt: skip

    def delete(self, job_id: int) -> bool:
        """Remove a job and its file; a job whose call has not yet wound up is removed
        when it has. False if it is gone, or on a line or being routed."""
        with self.ports.lock:
            if job_id in self._calls:  # final already, its worker about to let go
                row = self.store.job(job_id)
                final = row is not None and JobState(row["state"]).final
                return final and self.after_call(job_id, "delete")
            row = self.store.job(job_id)
            if row is None or row["state"] in (JobState.INPROGRESS.value, JobState.ROUTING.value):
                return False
            self.store.delete_job(job_id)
            self.ports.changed.notify_all()
        if not self.store.file_used(row["file"]):
            self.spool.remove(row["file"])
        self.bus.publish(EventKind.DELETED, job_id=job_id)
        return True

    def _retry_or_give_up(
        self,
        job_id: int,
        attempts: int,
        cause: str,
        final_cause: str,
        backoff: bool = False,
        old: str = JobState.INPROGRESS.value,
        **values: Any,
    ) -> None:
        """A job on the line (or being routed) failed its ``attempts``-th try: RETRYING
        after the retry delay while retries are left (``cause``), else RETRIES_EXCEEDED
        (``final_cause``); ``old``: the state it is in. ``backoff``: the delay doubles
        with each attempt (at most :data:`MAX_BACKOFF` times the retry delay), for a far
        end that is busy or a routing method that failed."""
        config = self._config()
        now = time.time()
        delay = config.retry_delay
        if backoff:
            delay *= min(2 ** (attempts - 1), MAX_BACKOFF)
        if attempts <= config.retries:
            self._set(job_id, old, JobState.RETRYING, cause=cause, schedule=now + delay,
                      **values)  # fmt: skip
            with self.ports.lock:  # due then: the queue (or routing) is read again
                if old == JobState.ROUTING.value:
                    heapq.heappush(self._route_retries, now + delay)
                else:
                    self._retry_at = min(self._retry_at, now + delay)
        else:
            self._set(job_id, old, JobState.RETRIES_EXCEEDED, finished=now,
                      cause=final_cause, **values)  # fmt: skip

    # -- routing --------------------------------------------------------------------
    def _start_routing(self, now: float, every: bool = True) -> None:
        """Start a routing round for each received fax that is due: every enabled method
        not yet done runs in that method's own pool (:meth:`_pool`), so a slow method
        holds up only itself; a round ends when each method succeeded, failed or ran
        out of its time (:meth:`_overdue`). Without ``every``, only faxes whose routing
        is retried are looked for (a pass does so when a retry noted here is due); a fax
        left PENDING (by a stop or a node that died) is found by a pass with ``every``:
        once a second, or after a wake."""
        if every:
            self._routes_read = now
        with self.ports.lock:  # (committed before they were noted: this read finds them)
            while self._route_retries and self._route_retries[0] <= now:
                heapq.heappop(self._route_retries)
        states = [JobState.RETRYING.value] + ([JobState.PENDING.value] if every else [])
        rows = self.store.jobs(  # ours: received on our lines (another node routes its own)
            f"type = 'receive' AND state IN ({','.join('?' * len(states))}) AND schedule <= ?"
            " AND (node = ? OR node IS NULL)",
            (*states, now, self.node),
        )
        for row in rows:
            if self.stopping or row["id"] in self._rounds:
                continue
            if not self._set(row["id"], row["state"], JobState.ROUTING, started=time.time(),
                             attempts=row["attempts"] + 1):  # fmt: skip
                continue
            self.begin_round(row)

    def begin_round(self, row: dict[str, Any]) -> None:
        """Route the received fax of ``row`` (a job now in ROUTING; ``attempts`` the
        attempts before this one)."""
        info, port = row["info"], row["port"]
        fax = ReceivedFax(row["id"], self.spool.path(row["file"]), row["pages"], port,
                          info.get("remote_id", ""), info.get("caller_id", ""),
                          row["submitted"])  # fmt: skip
        enabled = self.ports.routing(port) if port in self.ports else {}
        routed = dict(info.get("routed", {}))
        todo = [(n, m, enabled[n][1]) for n, m in self._routing_methods()
                if enabled.get(n, (False, {}))[0] and n not in routed]  # fmt: skip
        deadline = time.monotonic()
        job = _Round(row, routed, {n: deadline + _time_limit(m) for n, m, _ in todo})
        with self.ports.lock:
            self._rounds[row["id"]] = job
        if not todo:
            self._end_round(job)
        for name, method, data in todo:
            self._pool(name, method).submit(self._route_one, job, name, method, fax, data)

    def _pool(self, name: str, method: RoutingMethod) -> ThreadPoolExecutor:
        """The bounded pool of routing method ``name`` (``workers`` threads, default 2)."""
        with self.ports.lock:
            pool = self._pools.get(name)
            if pool is None:
                workers = max(1, int(getattr(method, "workers", ROUTE_WORKERS)))
                pool = self._pools[name] = ThreadPoolExecutor(
                    workers, thread_name_prefix=f"fastfax-route-{name}"
                )
            return pool

    def _route_one(
        self, job: _Round, name: str, method: RoutingMethod, fax: ReceivedFax, data: dict
    ) -> None:
        try:
            detail, ok = str(method.route(fax, data)), True
        except Exception as exc:  # the fax stays in the spool; the method runs again later
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self._method_done(job, name, ok, detail)

    def _method_done(self, job: _Round, name: str, ok: bool, detail: str) -> None:
        """Method ``name`` of a round ended (late answers after its time are dropped)."""
        job_id, port = job.row["id"], job.row["port"]
        with self.ports.lock:
            if self.stopping or job.pending.pop(name, None) is None:
                return
            last = not job.pending
            if ok:
                job.routed[name] = detail
                if not last:  # (the last one is committed with the job's new state)
                    self.store.update_job(job_id, info={"routed": job.routed}, durable=False)
            else:
                job.failed[name] = detail
        if ok:
            in_log.info("fax %d: routed by %s: %s", job_id, name, detail)
        else:
            in_log.warning("fax %d: routing method %s failed: %s", job_id, name, detail)
        self.bus.publish(EventKind.ROUTING, job_id=job_id, port=port, method=name, ok=ok,
                         detail=detail)  # fmt: skip
        if last:
            self._end_round(job)

    def _overdue(self) -> None:
        """Fail the methods of routing rounds that ran past their time limit."""
        now = time.monotonic()
        with self.ports.lock:
            late = [(job, name) for job in self._rounds.values()
                    for name, deadline in job.pending.items() if deadline < now]  # fmt: skip
        for job, name in late:
            self._method_done(job, name, False, "timed out (the method did not finish)")

    def _end_round(self, job: _Round) -> None:
        job_id = job.row["id"]
        routing = JobState.ROUTING.value
        with self.ports.lock:
            self._rounds.pop(job_id, None)
        if not job.failed:
            self._set(job_id, routing, JobState.COMPLETED, finished=time.time(),
                      cause=job.row["info"].get("partial", ""),
                      info={"routed": job.routed})  # fmt: skip
        else:
            causes = "; ".join(f"{n}: {c}" for n, c in job.failed.items())
            cause = f"routing failed: {causes}"
            info = {"route_causes": job.failed, "routed": job.routed}
            self._retry_or_give_up(job_id, job.row["attempts"] + 1, cause,
                                   f"{cause} (the fax is kept in the spool)", backoff=True,
                                   old=routing, info=info)  # fmt: skip
        self._poke()

    # -- delivery reports -----------------------------------------------------------
    def _receipts(self, now: float) -> None:
        """Send the delivery report of each finished send job that asked for one (at
        most once): to its e-mail address through the e-mail method's pool, or into
        ``<spool>/receipts/<owner>/`` for "inbox"."""
        rows = self.store.unreported_receipts()
        methods = dict(self._routing_methods())
        for row in rows:
            self.store.update_job(row["id"], info={"reported": 1})
            to, text = row["info"]["receipt"], _report(row)
            subject = f"Fax {row['id']} to {row['number']}: {row['state']}"
            if to == "inbox":
                owner = re.sub(r"[^A-Za-z0-9._-]+", "_", row["owner"]) or "_"
                folder = os.path.join(self.spool.root, "receipts", owner)
                os.makedirs(folder, exist_ok=True)
                write_files([(os.path.join(folder, f"fax-{row['id']:06d}.txt"), [text.encode()])])
            elif "email" in methods and hasattr(methods["email"], "send_report"):
                self._pool("email", methods["email"]).submit(
                    self._mail_report, row["id"], methods["email"], to, subject, text
                )

    def _mail_report(self, job_id: int, method: Any, to: str, subject: str, text: str) -> None:
        try:
            method.send_report(to, subject, text)
        except Exception as exc:  # reported once: a lost report is logged, not retried
            out_log.error("job %d: the delivery report to %s failed: %s", job_id, to, exc)

    # -- dirty days -----------------------------------------------------------------
    def _cleanup(self, now: float) -> None:
        """Delete up to :data:`CLEAN_BATCH` finished jobs older than the dirty days (and
        their files no other job names), oldest first, in one short transaction: a
        large backlog goes a batch a tick, never holding the store for long."""
        limit = now - self._config().dirty_days * 86400
        finals = [s.value for s in JobState if s.final]
        rows = self.store.expired(limit, finals, CLEAN_BATCH)
        if len(rows) == CLEAN_BATCH:
            self._cleaned = 0.0  # more to do: the next tick goes on
        # not waiting for the disk: a deletion lost in a power cut is done again
        self.store.delete_jobs([r["id"] for r in rows], durable=False)
        for row in rows:
            if not self.store.file_used(row["file"]):  # a document jobs still share
                self.spool.remove(row["file"])
            self.bus.publish(EventKind.DELETED, job_id=row["id"])
        self._receipts(now)
        if now - self._forgot > 3600:  # request ids are kept REQUEST_DAYS (at least one)
            self.store.forget_requests(now - REQUEST_DAYS * 86400)
            self.bus.trim()
            self._forgot = now
        if rows:
            with self.ports.lock:
                self.ports.changed.notify_all()
