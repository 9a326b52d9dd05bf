"""The ``loopback-pair`` device kind: two virtual lines joined in memory, running the
real T.30 engine on both ends through :func:`fastfax.transport.loopback.call`."""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ConfigError
from ..transport import loopback
from .contract import Call, CallAborted, DeviceState, Hooks, Line, Outcome, call_progress

__all__ = ["LoopbackPair"]


class _ReceiveAborted(CallAborted):
    """The far line's receive was aborted by a user: the call drops."""


class LoopbackPair:
    """Two virtual lines joined in memory: a fax sent on either is received on the other.
    Every loopback line of a service hangs on one virtual exchange, so a line may also
    dial the number of a line of another pair.

    Options: ``numbers`` (the two lines' numbers, default ``["1", "2"]``); ``errors``
    (bit error rate on the simulated line, 0.0-0.5); ``seed``; ``ecm`` / ``max_rate``
    (what the receiving end offers); ``page_delay`` (wall-clock seconds each confirmed
    page is held: the in-memory line otherwise runs far faster than real time).
    Dialling a number no loopback line has is a bad address; a far line not set to
    receive does not answer; a far line already in a call is busy.
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        numbers = options.get("numbers", ["1", "2"])
        if (
            not isinstance(numbers, list)
            or len(numbers) != 2
            or not all(isinstance(n, str) and n for n in numbers)
        ):
            raise ConfigError(f"loopback pair {name!r}: numbers must be two non-empty strings")
        errors = options.get("errors", 0.0)
        if not isinstance(errors, (int, float)) or not 0 <= errors <= 0.5:
            raise ConfigError(f"loopback pair {name!r}: errors must be 0.0-0.5, got {errors!r}")
        self.errors = float(errors)
        self.seed = int(options.get("seed", 0))
        self.page_delay = float(options.get("page_delay", 0.0))
        if not 0 <= self.page_delay <= 60:
            raise ConfigError(f"loopback pair {name!r}: page_delay must be 0-60 seconds")
        self.receiver_options = {k: options[k] for k in ("ecm", "max_rate") if k in options}
        self.lines = [
            Line(f"{name}/{n + 1}", f"{name} line {n + 1}", "loopback-pair", numbers[n])
            for n in range(2)
        ]
        self._calls = 0
        self._lock = threading.Lock()
        self._hooks: Hooks | None = None

    def start(self, hooks: Hooks) -> None:
        self._hooks = hooks  # nothing rings until the other line dials

    def can_reach(self, line_id: str, number: str) -> bool | None:
        """A loopback line reaches the number of any loopback line of the service but
        its own; None before :meth:`start` (the exchange is not known yet)."""
        if self._hooks is None:
            return None
        far = self._hooks.find_line(number, "loopback-pair")
        return far is not None and far != line_id

    def send(self, line_id: str, call: Call, hooks: Hooks) -> Outcome:

        here = self.lines[0] if line_id == self.lines[0].id else self.lines[1]
        hooks.status(here.id, DeviceState.DIALING, job_id=call.job_id, number=call.number)
        far_id = hooks.find_line(call.number, "loopback-pair")
        if far_id is None or far_id == here.id:
            return Outcome(DeviceState.BAD_ADDRESS, f"no line has the number {call.number!r}")
        there = Line(far_id, far_id, "loopback-pair", call.number)
        far = hooks.settings(there.id)
        if not far["receive"]:
            return Outcome(DeviceState.NO_ANSWER, "the far line does not answer")
        if not hooks.claim(there.id):
            return Outcome(DeviceState.BUSY, "the far line is busy")
        stop_receive = threading.Event()  # set when a user aborts the far line's receive
        hooks.receiving(there.id, stop_receive)
        progress = call_progress(call, hooks, here.id, there.id, self.page_delay)

        def on_event(event: Any) -> None:
            if stop_receive.is_set():
                raise _ReceiveAborted("the far end hung up (its receive was aborted)")
            progress(event)

        try:
            hooks.status(there.id, DeviceState.RINGING, caller_id=here.number)
            hooks.status(there.id, DeviceState.RECEIVING, caller_id=here.number)
            hooks.status(
                here.id, DeviceState.SENDING, job_id=call.job_id, total_pages=len(call.pages)
            )
            sender: dict[str, Any] = {"ident": call.tsid, "ecm": call.ecm}
            if call.max_rate:
                sender["max_rate"] = call.max_rate
            receiver = {"ident": far["csid"], **self.receiver_options}
            with self._lock:
                self._calls += 1
                seed = self.seed + self._calls
            try:
                sent, got = loopback.call(
                    call.pages,
                    sender=sender,
                    receiver=receiver,
                    errors=self.errors,
                    seed=seed,
                    on_event=on_event,
                )
            except _ReceiveAborted as exc:
                return Outcome(DeviceState.DISCONNECTED, str(exc))
            except CallAborted:
                return Outcome(DeviceState.ABORTING, "aborted by a user")
            if got.ok and got.pages:
                hooks.received(there.id, got, here.number, from_job=call.job_id)
        finally:
            hooks.release(there.id)
        if sent.ok:
            return Outcome(DeviceState.COMPLETED, "", sent)
        return Outcome(DeviceState.FATAL_ERROR, str(sent.cause), sent)

    def close(self) -> None:
        pass
