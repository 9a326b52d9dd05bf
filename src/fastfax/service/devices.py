"""Device kinds: what puts the service's faxes on a line (the Windows fax service
providers).

A device kind is a callable ``factory(name, options) -> Device``; built-in kinds are
``"loopback-pair"`` (two virtual lines joined in memory, running the real T.30 engine
through :func:`fastfax.transport.loopback.call`) and ``"class1"`` (a Class 1 fax modem,
:class:`fastfax.service.modem.Class1Modem`, loaded when first used). Others plug in
through the ``fastfax.devices`` entry point group, the name of the entry point being
the kind.

A :class:`Device` lists its :class:`Line`\\ s, sends a fax on one of them
(:meth:`Device.send`) and reports what its lines do through the :class:`Hooks` the
service gives it (status changes, faxes received).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from ..page import Page
from ..t30.events import PageReceived, PageSent
from .errors import ConfigError
from .model import DeviceState

__all__ = [
    "Line",
    "Call",
    "Outcome",
    "Hooks",
    "Device",
    "CallAborted",
    "LoopbackPair",
    "device_factory",
    "BUILTIN_KINDS",
]


@dataclass(frozen=True)
class Line:
    """One line of a device: the service makes a port of it. ``number``: its own number."""

    id: str
    name: str
    kind: str
    number: str = ""
    can_send: bool = True
    can_receive: bool = True


@dataclass
class Call:
    """An outgoing call: dial ``number``, send ``pages`` with identity ``tsid``.
    ``ecm`` and ``max_rate`` (bit/s, None: the best) are lowered on retries.
    ``abort`` is set to stop the call. ``job_id`` is carried into status reports."""

    job_id: int
    number: str
    pages: list[Page]
    tsid: str = ""
    ecm: bool = True
    max_rate: int | None = None
    abort: threading.Event = field(default_factory=threading.Event)


@dataclass
class Outcome:
    """How a call ended: ``state`` is COMPLETED, BUSY, NO_ANSWER, BAD_ADDRESS,
    FATAL_ERROR or ABORTING; ``result`` the T.30 result when a session ran."""

    state: DeviceState
    cause: str = ""
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.state is DeviceState.COMPLETED


class CallAborted(Exception):
    """Raised inside a transport's event callback to stop a call a user aborted."""


class Hooks(Protocol):
    """What the service offers a device."""

    def settings(self, line_id: str) -> dict[str, Any]:
        """The port's settings: receive (bool), rings, tsid, csid."""

    def claim(self, line_id: str) -> bool:
        """Take an idle line for an incoming call; False if it is busy."""

    def release(self, line_id: str) -> None:
        """Give back a line taken with :meth:`claim`."""

    def status(self, line_id: str, state: DeviceState, **fields: Any) -> None:
        """The line's state changed; ``fields``: job_id, current_page, total_pages,
        remote_id, caller_id, number."""

    def find_line(self, number: str, kind: str) -> str | None:
        """The id of the service's line of device kind ``kind`` whose number is ``number``."""

    def received(self, line_id: str, result: Any, caller_id: str) -> None:
        """A fax arrived on the line (``result.pages`` are its pages): spool and route it.
        ``result.ok`` False: the call failed after those pages (a partial fax)."""


class Device(Protocol):
    lines: list[Line]

    def start(self, hooks: Hooks) -> None:
        """Begin answering calls on the lines that receive."""

    def send(self, line_id: str, call: Call, hooks: Hooks) -> Outcome:
        """Place ``call`` on ``line_id`` and return how it ended (blocking)."""

    def close(self) -> None:
        """Stop every thread and release the hardware."""


def _progress(
    call: Call, hooks: Hooks, here: str, there: str | None = None, page_delay: float = 0.0
) -> Callable:
    """An ``on_event`` callback for a T.30 transport: each page confirmed (``PageSent``)
    or received (``PageReceived``, on line ``there``) becomes a status report, and the
    call stops with :class:`CallAborted` once its abort flag is set. ``page_delay``:
    wall-clock seconds to hold each confirmed page (a slowed-down line)."""

    def on_event(event: Any) -> None:
        if call.abort.is_set():
            raise CallAborted("aborted by a user")
        if isinstance(event, PageSent):
            hooks.status(here, DeviceState.SENDING, job_id=call.job_id, current_page=event.number)
            if page_delay and call.abort.wait(page_delay):
                raise CallAborted("aborted by a user")
        elif isinstance(event, PageReceived) and there is not None:
            hooks.status(there, DeviceState.RECEIVING, current_page=event.number)

    return on_event


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

    def start(self, hooks: Hooks) -> None:
        pass  # nothing rings until the other line dials

    def send(self, line_id: str, call: Call, hooks: Hooks) -> Outcome:
        from ..transport import loopback  # the fax layer, loaded when first used

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
                    on_event=_progress(call, hooks, here.id, there.id, self.page_delay),
                )
            except CallAborted:
                return Outcome(DeviceState.ABORTING, "aborted by a user")
            if got.ok and got.pages:
                hooks.received(there.id, got, here.number)
        finally:
            hooks.release(there.id)
        if sent.ok:
            return Outcome(DeviceState.COMPLETED, "", sent)
        return Outcome(DeviceState.FATAL_ERROR, str(sent.cause), sent)

    def close(self) -> None:
        pass


def __getattr__(name: str) -> Any:
    """``Class1Modem`` (the ``class1`` entry point names it here) from :mod:`.modem`."""
    if name == "Class1Modem":
        from .modem import Class1Modem

        return Class1Modem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _class1(name: str, options: dict[str, Any]) -> Device:
    from .modem import Class1Modem

    return Class1Modem(name, options)


#: The device kinds that need no installation.
BUILTIN_KINDS: dict[str, Callable[[str, dict[str, Any]], Device]] = {
    "loopback-pair": LoopbackPair,
    "class1": _class1,
}


def device_factory(kind: str) -> Callable[[str, dict[str, Any]], Device]:
    """The factory of device kind ``kind``: built in, or a ``fastfax.devices`` entry point."""
    if kind in BUILTIN_KINDS:
        return BUILTIN_KINDS[kind]
    for ep in entry_points(group="fastfax.devices"):
        if ep.name == kind:
            return ep.load()
    known = sorted({*BUILTIN_KINDS, *(ep.name for ep in entry_points(group="fastfax.devices"))})
    raise ConfigError(f"unknown device kind {kind!r}; known: {known}")
