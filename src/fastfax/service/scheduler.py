"""The queue's engine: which job goes on which port, when, and what happens after.

One scheduler thread wakes on every change (and at least once a second) and:
deletes finished jobs older than the dirty days; starts routing received faxes; and,
unless the queue is paused, gives each due send job (highest priority first, then
oldest) to the free send port with the lowest priority number, on a worker thread.
Discount-period jobs wait for the discount window. A failed call is retried after the
retry delay, up to the configured retries; after a line or protocol failure the retry
falls back (9600 bit/s, then ECM off, then 4800 bit/s); a bad address is never retried.

Crash safety: a job is marked in progress (attempt counted) in the database before its
call starts and marked completed as soon as the far end has confirmed the last page;
at start, :meth:`Scheduler.recover` puts every job left in progress back in the queue.
So a job is never lost, never reported done when it was not, and not sent again once
its completion was committed.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import tiff
from .config import LOG_CATEGORIES, in_window
from .devices import Call, Outcome
from .documents import write_pages
from .model import DeviceState, EventKind, JobState, JobType, PortStatus
from .routing import ReceivedFax

if TYPE_CHECKING:
    from .server import Service

__all__ = ["Scheduler", "FALLBACK"]

out_log = logging.getLogger(LOG_CATEGORIES["outbound"])
in_log = logging.getLogger(LOG_CATEGORIES["inbound"])

#: Per fallback level (one more after each line or protocol failure): (max bit/s, ECM).
FALLBACK = [(None, True), (9600, True), (9600, False), (4800, False)]
_DUE = (JobState.PENDING.value, JobState.RETRYING.value, JobState.NOLINE.value)
_STATE_EVENTS = {
    DeviceState.DIALING: EventKind.DIALING,
    DeviceState.SENDING: EventKind.SENDING,
    DeviceState.RECEIVING: EventKind.RECEIVING,
    DeviceState.RINGING: EventKind.RINGING,
}
_OUTCOME_EVENTS = {
    DeviceState.COMPLETED: EventKind.COMPLETED,
    DeviceState.BUSY: EventKind.BUSY,
    DeviceState.NO_ANSWER: EventKind.NO_ANSWER,
    DeviceState.BAD_ADDRESS: EventKind.BAD_ADDRESS,
    DeviceState.FATAL_ERROR: EventKind.FATAL_ERROR,
    DeviceState.ABORTING: EventKind.ABORTING,
}


class _Hooks:
    """What devices see of the service (see :class:`fastfax.service.devices.Hooks`)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.sched = scheduler
        self.svc = scheduler.svc

    def settings(self, line_id: str) -> dict[str, Any]:
        return self.svc.port_settings(line_id)

    def claim(self, line_id: str) -> bool:
        with self.svc._lock:
            if line_id in self.svc.busy or self.sched.stopping:
                return False
            self.svc.busy.add(line_id)
            return True

    def release(self, line_id: str) -> None:
        with self.svc._lock:
            self.svc.busy.discard(line_id)
            self.svc.status[line_id] = PortStatus(line_id)  # available, counters cleared
        self.svc.bus.publish(EventKind.LINE_RELEASED, port=line_id)
        self.sched.wake()

    def status(self, line_id: str, state: DeviceState, **fields: Any) -> None:
        with self.svc._lock:
            status = self.svc.status[line_id]
            before = (status.state, status.current_page)
            status.state = state
            for key, value in fields.items():
                setattr(status, key, value)
            if status.started is None:
                status.started = time.time()
            changed = before != (status.state, status.current_page)
        kind = _STATE_EVENTS.get(state)
        if kind is not None and changed:
            data = {"page": status.current_page} if state is DeviceState.SENDING else {}
            self.svc.bus.publish(kind, job_id=status.job_id, port=line_id, **data)

    def find_line(self, number: str, kind: str) -> str | None:
        for line, _ in self.svc.lines.values():
            if line.kind == kind and line.number == number:
                return line.id
        return None

    def received(self, line_id: str, result: Any, caller_id: str) -> None:
        pages = list(result.pages)
        path = write_pages(os.path.join(self.svc.spool, "in"), pages)
        now = time.time()
        info = {
            "remote_id": str(getattr(result, "remote_id", "") or ""),
            "rate": int(getattr(result, "rate", 0) or 0),
            "ecm": bool(getattr(result, "ecm", False)),
            "caller_id": caller_id,
            "routed": {},
        }
        if not result.ok:  # the call failed after these pages: keep them, say so
            info["partial"] = f"partial: the call ended early ({result.cause})"
        job_id = self.svc.store.add_job(
            {
                "type": JobType.RECEIVE.value,
                "state": JobState.PENDING.value,
                "number": caller_id,
                "submitted": now,
                "schedule": now,
                "pages": len(pages),
                "port": line_id,
                "file": os.path.relpath(path, self.svc.spool),
                "info": info,
                "cause": info.get("partial", ""),
            }
        )
        in_log.info(
            "fax %d received on %s: %d page(s) from %r",
            job_id,
            line_id,
            len(pages),
            info["remote_id"],
        )
        self.svc.bus.publish(
            EventKind.COMPLETED,
            job_id=job_id,
            port=line_id,
            direction="receive",
            pages=len(pages),
            remote_id=info["remote_id"],
            **({"partial": True} if "partial" in info else {}),
        )
        self.sched.wake()


class Scheduler:
    """The scheduler thread and its workers for one :class:`Service`."""

    def __init__(self, service: Service) -> None:
        self.svc = service
        self.hooks = _Hooks(self)
        self.stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fastfax-scheduler", daemon=True)
        self._workers: set[threading.Thread] = set()
        self._calls: dict[int, Call] = {}
        self._routing: threading.Thread | None = None

    # -- life -----------------------------------------------------------------------
    def recover(self) -> None:
        """Put jobs a stopped or killed process left in progress back in the queue."""
        for row in self.svc.store.jobs("state = ?", (JobState.INPROGRESS.value,)):
            self.svc.store.update_job(
                row["id"],
                state=JobState.PENDING.value,
                schedule=time.time(),
                cause="interrupted: the service stopped during the call",
            )
            out_log.warning(
                "job %d was in progress when the service stopped: queued again", row["id"]
            )

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop dispatching, abort calls in progress (their jobs go back to the queue),
        wait for every thread."""
        with self.svc._lock:
            self.stopping = True
            for call in self._calls.values():
                call.abort.set()
        self._wake.set()
        self._thread.join()
        for worker in list(self._workers):
            worker.join()
        if self._routing is not None:
            self._routing.join()

    def abort(self, job_id: int) -> bool:
        """Abort the call of a job on the line; False if it is not on a line."""
        with self.svc._lock:
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
            except Exception:  # a bug must not stop the queue: log it and go on
                logging.getLogger(LOG_CATEGORIES["unknown"]).exception("scheduler tick failed")
                delay = 1.0
            self._wake.wait(delay)

    def _tick(self) -> float:
        svc = self.svc
        now = time.time()
        svc.expire_sessions()
        self._cleanup(now)
        self._start_routing(now)
        if svc.config.pause_queue:
            return 1.0
        due = svc.store.jobs(
            f"type = 'send' AND state IN ({','.join('?' * len(_DUE))})",
            _DUE,
            order="priority DESC, id",
        )
        cheap = in_window(svc.config.discount_start, svc.config.discount_end, _dt.datetime.now())
        next_at = now + 1.0
        ready = []
        for row in due:
            if row["schedule"] > now:
                next_at = min(next_at, row["schedule"])
            elif not row["discount"] or cheap:
                ready.append(row)
        with svc._lock:
            senders = [p for p in svc.lines if svc.port_settings(p)["send"]]
            free = sorted(
                (p for p in senders if p not in svc.busy),
                key=lambda p: (svc.port_settings(p)["priority"], p),
            )
        if not senders:
            for row in ready:
                if row["state"] != JobState.NOLINE.value:
                    self._set(row["id"], row["state"], JobState.NOLINE, cause="no port can send")
            return max(0.0, next_at - now)
        for row, port in zip(ready, free, strict=False):
            self._dispatch(row, port)
        return max(0.0, next_at - now)

    def _set(self, job_id: int, old: str, new: JobState, **values: Any) -> bool:
        with self.svc._lock:
            done = self.svc.store.update_job(job_id, f"state = '{old}'", state=new.value, **values)
            self.svc.changed.notify_all()
        return done

    # -- sending --------------------------------------------------------------------
    def _dispatch(self, row: dict[str, Any], port: str) -> None:
        svc = self.svc
        with svc._lock:
            if port in svc.busy or self.stopping:
                return
            svc.busy.add(port)
            claimed = self._set(
                row["id"],
                row["state"],
                JobState.INPROGRESS,
                port=port,
                started=time.time(),
                attempts=row["attempts"] + 1,
            )
            if not claimed:  # paused or cancelled meanwhile
                svc.busy.discard(port)
                return
            level = min(row["info"].get("fallback", 0), len(FALLBACK) - 1)
            rate, ecm = FALLBACK[level]
            settings = svc.port_settings(port)
            tsid = (
                settings["tsid"]
                if svc.config.use_device_tsid
                else row["info"].get("sender_fax", "")
            )
            call = Call(row["id"], row["number"], [], tsid=tsid, ecm=ecm, max_rate=rate)
            self._calls[row["id"]] = call
            svc.status[port].job_id = row["id"]
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

    def _send(self, row: dict[str, Any], port: str, call: Call) -> None:
        svc = self.svc
        try:
            call.pages = tiff.read(svc.spool_path(row["file"]))
            _, device = svc.lines[port]
            outcome = device.send(port, call, self.hooks)
        except Exception as exc:  # a device failing is a failed call, not a dead queue
            out_log.exception("job %d: the device on %s failed", row["id"], port)
            outcome = Outcome(DeviceState.FATAL_ERROR, f"{type(exc).__name__}: {exc}")
        try:
            self._finish(row, port, call, outcome)
        finally:
            with svc._lock:
                self._calls.pop(row["id"], None)
            self.hooks.release(port)
            self._workers.discard(threading.current_thread())

    def _finish(self, row: dict[str, Any], port: str, call: Call, outcome: Outcome) -> None:
        svc = self.svc
        job_id = row["id"]
        attempts = row["attempts"] + 1
        now = time.time()
        inprogress = JobState.INPROGRESS.value
        result = outcome.result
        if outcome.ok:
            info = {
                "remote_id": str(getattr(result, "remote_id", "") or ""),
                "rate": int(getattr(result, "rate", 0) or 0),
                "ecm": bool(getattr(result, "ecm", False)),
            }
            if svc.config.archive_outgoing:
                try:
                    svc.archive(row["file"], f"fax-{job_id:06d}-{row['number']}.tif")
                except OSError as exc:
                    out_log.error("job %d: cannot archive the fax: %s", job_id, exc)
            self._set(job_id, inprogress, JobState.COMPLETED, finished=now, cause="", info=info)
            out_log.info("job %d: sent to %s (%d pages)", job_id, row["number"], row["pages"])
        elif outcome.state is DeviceState.ABORTING and self.stopping:
            self._set(
                job_id,
                inprogress,
                JobState.PENDING,
                schedule=now,
                attempts=attempts - 1,
                cause="interrupted: the service stopped during the call",
            )
        elif outcome.state is DeviceState.ABORTING:
            self._set(job_id, inprogress, JobState.CANCELED, finished=now, cause="aborted")
        elif outcome.state is DeviceState.BAD_ADDRESS:
            self._set(job_id, inprogress, JobState.FAILED, finished=now, cause=outcome.cause)
        else:
            fallback = row["info"].get("fallback", 0)
            if outcome.state is DeviceState.FATAL_ERROR:
                fallback += 1
            if attempts <= svc.config.retries:
                self._set(
                    job_id,
                    inprogress,
                    JobState.RETRYING,
                    cause=outcome.cause,
                    schedule=now + svc.config.retry_delay,
                    info={"fallback": fallback},
                )
            else:
                self._set(
                    job_id,
                    inprogress,
                    JobState.RETRIES_EXCEEDED,
                    finished=now,
                    cause=outcome.cause,
                    info={"fallback": fallback},
                )
            out_log.warning(
                "job %d: %s (%s), attempt %d", job_id, outcome.state.value, outcome.cause, attempts
            )
        self.hooks.status(port, outcome.state)
        data: dict[str, Any] = {"cause": outcome.cause} if outcome.cause else {}
        if outcome.ok:
            data.update(pages=row["pages"], direction="send")
        svc.bus.publish(_OUTCOME_EVENTS[outcome.state], job_id=job_id, port=port, **data)

    # -- routing --------------------------------------------------------------------
    def _start_routing(self, now: float) -> None:
        if self._routing is not None and self._routing.is_alive():
            return
        rows = self.svc.store.jobs(
            "type = 'receive' AND state IN (?, ?) AND schedule <= ?",
            (JobState.PENDING.value, JobState.RETRYING.value, now),
        )
        if rows:
            self._routing = threading.Thread(
                target=self._route_all, args=(rows,), name="fastfax-routing", daemon=True
            )
            self._routing.start()

    def _route_all(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if self.stopping:
                return
            if self._set(
                row["id"],
                row["state"],
                JobState.INPROGRESS,
                started=time.time(),
                attempts=row["attempts"] + 1,
            ):
                self._route(row)

    def _route(self, row: dict[str, Any]) -> None:
        svc = self.svc
        job_id, port = row["id"], row["port"]
        info = row["info"]
        fax = ReceivedFax(
            job_id,
            svc.spool_path(row["file"]),
            row["pages"],
            port,
            info.get("remote_id", ""),
            info.get("caller_id", ""),
            row["submitted"],
        )
        routed = dict(info.get("routed", {}))
        enabled = svc.store.routing(port) if port in svc.lines else {}
        failed = []
        for name in svc.routing_order:
            on, data = enabled.get(name, (False, {}))
            if not on or name in routed:
                continue
            try:
                detail = svc.methods[name].route(fax, data)
            except Exception as exc:  # the fax stays in the spool; the method runs again later
                failed.append(name)
                in_log.warning("fax %d: routing method %s failed: %s", job_id, name, exc)
                svc.bus.publish(
                    EventKind.ROUTING,
                    job_id=job_id,
                    port=port,
                    method=name,
                    ok=False,
                    detail=f"{type(exc).__name__}: {exc}",
                )
                continue
            routed[name] = str(detail)
            svc.store.update_job(job_id, info={"routed": routed})
            svc.bus.publish(
                EventKind.ROUTING,
                job_id=job_id,
                port=port,
                method=name,
                ok=True,
                detail=str(detail),
            )
        now = time.time()
        inprogress = JobState.INPROGRESS.value
        if not failed:
            cause = info.get("partial", "")
            self._set(job_id, inprogress, JobState.COMPLETED, finished=now, cause=cause)
        elif row["attempts"] + 1 <= svc.config.retries:
            self._set(
                job_id,
                inprogress,
                JobState.RETRYING,
                schedule=now + svc.config.retry_delay,
                cause=f"routing failed: {', '.join(failed)}",
            )
        else:
            self._set(
                job_id,
                inprogress,
                JobState.RETRIES_EXCEEDED,
                finished=now,
                cause=f"routing failed: {', '.join(failed)} (the fax is kept in the spool)",
            )
        self.wake()

    # -- dirty days -----------------------------------------------------------------
    def _cleanup(self, now: float) -> None:
        svc = self.svc
        limit = now - svc.config.dirty_days * 86400
        finals = [s.value for s in JobState if s.final]
        rows = svc.store.jobs(  # a received fax whose routing failed stays until restarted
            f"state IN ({','.join('?' * len(finals))}) AND finished IS NOT NULL AND finished <= ?"
            " AND NOT (type = 'receive' AND state = 'retries_exceeded')",
            (*finals, limit),
        )
        for row in rows:
            svc.store.delete_job(row["id"])
            svc.remove_file(row["file"])
            svc.bus.publish(EventKind.DELETED, job_id=row["id"])
        if rows:
            with svc._lock:
                svc.changed.notify_all()
