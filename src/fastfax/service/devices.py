"""Device kinds: what puts the service's faxes on a line (the Windows fax service
providers).

A device kind is a callable ``factory(name, options) -> Device``; built-in kinds are
``"loopback-pair"`` (two virtual lines joined in memory, running the real T.30 engine
through :func:`fastfax.transport.loopback.call`) and ``"class1"`` (a Class 1 fax modem
through :mod:`fastfax.class1`). Others plug in through the ``fastfax.devices`` entry
point group, the name of the entry point being the kind.

A :class:`Device` lists its :class:`Line`\\ s, sends a fax on one of them
(:meth:`Device.send`) and reports what its lines do through the :class:`Hooks` the
service gives it (status changes, faxes received).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol

from ..errors import FaxError
from ..page import Page
from ..t30.events import Negotiated, PageReceived, PageSent
from ..t30.result import Cause
from .config import LOG_CATEGORIES
from .errors import ConfigError
from .model import DeviceState

#: How a modem call that did not reach T.30 shows in the device state (FPS_*).
_CALL_STATES = {Cause.BUSY: DeviceState.BUSY, Cause.NO_ANSWER: DeviceState.NO_ANSWER}

__all__ = [
    "Line",
    "Call",
    "Outcome",
    "Hooks",
    "Device",
    "CallAborted",
    "LoopbackPair",
    "Class1Modem",
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


class _AbortablePort:
    """A pyserial port whose next read or write fails, once, after ``abort`` is set.

    The modem layer polls its port every 50 ms, so a call stops within that time of an
    abort, in whatever it is doing (dialling, sending page data, waiting for a frame):
    it takes the path of a port that failed, which ends the T.30 session and hangs the
    modem up (``ATH``) through the same port, now working again."""

    def __init__(self, port: Any, abort: threading.Event) -> None:
        object.__setattr__(self, "_port", port)
        object.__setattr__(self, "_abort", abort)
        object.__setattr__(self, "_fired", False)

    def _check(self) -> None:
        if self._abort.is_set() and not self._fired:
            object.__setattr__(self, "_fired", True)
            import serial

            raise serial.SerialException("the call was aborted")

    def read(self, size: int = 1) -> bytes:
        self._check()
        return self._port.read(size)

    def write(self, data: bytes) -> int | None:
        self._check()
        return self._port.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._port, name, value)


class Class1Modem:
    """A Class 1 fax modem on a pyserial URL (a device path, ``socket://``, ...), driven
    by the T.30 engine through :mod:`fastfax.transport.class1` (as
    :mod:`fastfax.class1` does).

    Options: ``url`` (required); ``number`` (its own number, informative);
    ``baudrate``, ``rtscts``, ``init`` (the serial line and extra set-up commands);
    ``options`` (for sending: ``dial_timeout`` in seconds, and T.30 options of
    :func:`fastfax.t30.session.create` such as ``max_rate``, ``modems``, ``timers``);
    ``receive_options`` (for answering: ``ecm`` and T.30 options).

    The modem does one call at a time and sends come first. While its port is set to
    receive, an answering thread keeps the modem open and looks for ``RING`` every
    :data:`POLL` seconds; it answers after the port's number of rings. A send waits for
    the modem at most one poll: the answering thread then closes the port and listens
    again once the send is over. A ring count starts again after :data:`RING_GAP`
    seconds without a ring (the caller gave up). An abort, or :meth:`close`, stops a
    call within 50 ms and hangs up (see :class:`_AbortablePort`).
    """

    #: Seconds between looks for RING (and at most what a send waits for the modem).
    POLL = 0.1
    #: Seconds without a RING after which a ring count starts again.
    RING_GAP = 10.0

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        url = options.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"class1 device {name!r} needs url, a pyserial URL or device path")
        known = {"url", "number", "baudrate", "rtscts", "init", "options", "receive_options"}
        if set(options) - known:
            raise ConfigError(
                f"class1 device {name!r}: unknown option(s) {sorted(set(options) - known)}"
            )
        self.url = url
        self.baudrate = options.get("baudrate", 115200)
        self.rtscts = options.get("rtscts", False)
        self.init = options.get("init", [])
        if not isinstance(self.baudrate, int) or not isinstance(self.rtscts, bool):
            raise ConfigError(f"class1 device {name!r}: baudrate is a number, rtscts true/false")
        if not isinstance(self.init, list) or not all(isinstance(c, str) for c in self.init):
            raise ConfigError(f"class1 device {name!r}: init is a list of AT commands")
        self.send_options = dict(options.get("options", {}))
        dial = self.send_options.pop("dial_timeout", 60.0)
        if not isinstance(dial, (int, float)) or isinstance(dial, bool) or not 1 <= dial <= 600:
            raise ConfigError(f"class1 device {name!r}: dial_timeout is 1-600 seconds")
        self.dial_timeout = float(dial)
        self.receive_options = dict(options.get("receive_options", {}))
        self.ecm = self.receive_options.pop("ecm", True)
        _check_options(name, self.send_options, self.receive_options, self.ecm)
        self.lines = [Line(f"{name}/1", name, "class1", str(options.get("number", "")))]
        self._modem = threading.Lock()  # held by whoever uses the modem
        self._senders = 0  # sends waiting for the modem or using it
        self._count = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, hooks: Hooks) -> None:
        self._thread = threading.Thread(
            target=self._answer,
            args=(hooks,),
            name=f"fastfax-answer-{self.lines[0].id}",
            daemon=True,
        )
        self._thread.start()

    def _open(self, abort: threading.Event) -> tuple[Any, dict[str, Any]]:
        """The modem, set up for fax, its port failing once ``abort`` is set; and the
        session options its capabilities allow."""
        import serial

        from ..transport.class1 import modems_of
        from ..transport.modem import Modem, ModemError

        try:
            port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, rtscts=self.rtscts, timeout=0.05,
                write_timeout=30.0,
            )  # fmt: skip
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ModemError(f"cannot open modem port {self.url!r}: {exc}") from exc
        modem = Modem(_AbortablePort(port, abort))
        try:
            modems, max_rate = modems_of(modem.setup(self.init))
            if not modems:
                raise ModemError(f"the modem on {self.url!r} lists no fax modulation it can use")
        except BaseException:
            modem.close()
            raise
        return modem, {"modems": modems, "max_rate": max_rate}

    # -- answering ----------------------------------------------------------------------
    def _give_way(self, hooks: Hooks) -> bool:
        """True when the answering thread must let go of the modem."""
        line = self.lines[0].id
        return self._stop.is_set() or self._senders > 0 or not hooks.settings(line)["receive"]

    def _answer(self, hooks: Hooks) -> None:
        log = logging.getLogger(LOG_CATEGORIES["inbound"])
        while not self._stop.wait(self.POLL):
            if self._give_way(hooks):
                continue
            with self._modem:
                try:
                    self._listen(hooks)
                except Exception as exc:  # a modem that fails is tried again a moment later
                    if self._stop.is_set():
                        return
                    log.error("%s: the modem failed: %s", self.lines[0].id, exc,
                              exc_info=not isinstance(exc, FaxError))  # fmt: skip
                    hooks.status(self.lines[0].id, DeviceState.UNAVAILABLE)
                    self._stop.wait(5.0)
                    hooks.status(self.lines[0].id, DeviceState.AVAILABLE)

    def _listen(self, hooks: Hooks) -> None:
        """Open the modem, wait for the port's rings while nothing else wants it, then
        answer and receive (under the modem lock)."""
        from ..t30.session import create
        from ..transport.class1 import Class1Call, take_call

        line = self.lines[0].id
        modem, caps = self._open(self._stop)
        try:
            last_ring, seen = time.monotonic(), modem.rings
            while True:
                if self._give_way(hooks):
                    return
                if modem.wait_ring(max(1, hooks.settings(line)["rings"]), self.POLL):
                    break
                if modem.rings != seen:
                    last_ring, seen = time.monotonic(), modem.rings
                    hooks.status(line, DeviceState.RINGING)
                elif seen and time.monotonic() - last_ring > self.RING_GAP:
                    modem.rings = seen = 0
                    hooks.status(line, DeviceState.AVAILABLE)
            if not hooks.claim(line):  # a send was given the port meanwhile: let it go
                return
            try:
                settings = hooks.settings(line)
                hooks.status(line, DeviceState.RINGING)
                hooks.status(line, DeviceState.ANSWERED)
                options = _limit(self.receive_options, caps)
                session = create(calling=False, ecm=self.ecm, ident=settings["csid"], **options)
                result = take_call(modem, 1, 0)
                if result is None:
                    hooks.status(line, DeviceState.RECEIVING)
                    result = Class1Call(modem, session, on_event=self._receiving(hooks)).run()
                if self._stop.is_set():  # the session ended on the port failing: hang up
                    _hang_up(modem)
                if result.pages:  # a call that failed after some pages keeps them
                    hooks.received(line, result, "")
            except BaseException:
                _hang_up(modem)
                raise
            finally:
                hooks.release(line)
        finally:
            modem.close()

    def _receiving(self, hooks: Hooks) -> Callable:
        line = self.lines[0].id

        def on_event(event: Any) -> None:
            if isinstance(event, Negotiated):
                hooks.status(line, DeviceState.RECEIVING, remote_id=event.remote_id)
            elif isinstance(event, PageReceived):
                hooks.status(line, DeviceState.RECEIVING, current_page=event.number)

        return on_event

    # -- sending ------------------------------------------------------------------------
    def send(self, line_id: str, call: Call, hooks: Hooks) -> Outcome:
        with self._count:
            self._senders += 1
        try:
            while not self._modem.acquire(timeout=self.POLL):
                if call.abort.is_set():
                    return Outcome(DeviceState.ABORTING, "aborted by a user")
            try:
                result = self._send(line_id, call, hooks)
            except (FaxError, CallAborted) as exc:
                if not call.abort.is_set():
                    return Outcome(DeviceState.FATAL_ERROR, f"{type(exc).__name__}: {exc}")
                result = None
            finally:
                self._modem.release()
        finally:
            with self._count:
                self._senders -= 1
        if call.abort.is_set() and (result is None or not result.ok):
            return Outcome(DeviceState.ABORTING, "aborted by a user", result)
        if result.ok:
            return Outcome(DeviceState.COMPLETED, "", result)
        state = _CALL_STATES.get(result.cause, DeviceState.FATAL_ERROR)
        return Outcome(state, str(result.cause), result)

    def _send(self, line_id: str, call: Call, hooks: Hooks) -> Any:
        """Dial and send (under the modem lock); the T.30 Result."""
        from ..t30.session import create
        from ..transport.class1 import Class1Call, place_call

        hooks.status(line_id, DeviceState.DIALING, job_id=call.job_id, number=call.number)
        modem, caps = self._open(call.abort)
        try:
            options = dict(self.send_options)
            if call.max_rate:
                options["max_rate"] = min(call.max_rate, options.get("max_rate", 14400))
            session = create(
                calling=True,
                pages=call.pages,
                ecm=call.ecm,
                ident=call.tsid,
                **_limit(options, caps),
            )
            result = place_call(modem, call.number, self.dial_timeout)
            if result is not None:
                return result
            progress = _progress(call, hooks, line_id)

            def on_event(event: Any) -> None:
                if isinstance(event, Negotiated):
                    hooks.status(
                        line_id,
                        DeviceState.SENDING,
                        total_pages=len(call.pages),
                        remote_id=event.remote_id,
                    )
                progress(event)

            result = Class1Call(modem, session, on_event=on_event).run()
        except BaseException:
            _hang_up(modem)
            raise
        else:
            if call.abort.is_set():  # the session ended on the port failing: hang up too
                _hang_up(modem)
        finally:
            modem.close()
        return result

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _hang_up(modem: Any) -> None:
    """Hang up a modem left in an unknown state by a failed or aborted call. Twice: when
    the modem was dialling or receiving, the first ``ATH``'s first character only ends
    that (the modem answers OK to the abort) and the rest of it is lost."""
    modem.hangup()
    modem.hangup()


def _limit(options: dict[str, Any], caps: dict[str, Any]) -> dict[str, Any]:
    """T.30 ``options`` narrowed to the modulations and top rate the modem can do."""
    from ..t30.result import SessionError

    options = dict(options)
    wanted = set(options.pop("modems", caps["modems"]))
    modems = [m for m in caps["modems"] if m in wanted]
    if not modems:
        raise SessionError(f"the modem can do {caps['modems']}, none of {sorted(wanted)}")
    rate = min(int(options.pop("max_rate", 14400)), caps["max_rate"])
    return {**options, "modems": modems, "max_rate": rate}


def _check_options(name: str, send: dict[str, Any], receive: dict[str, Any], ecm: Any) -> None:
    """Raise ConfigError unless the T.30 engine takes ``send`` and ``receive``."""
    from ..t30.result import SessionError
    from ..t30.session import create

    if "ecm" in send or "ident" in send or "ident" in receive:
        raise ConfigError(
            f"class1 device {name!r}: ecm (sending) and ident come from the job and the port"
        )
    try:
        create(calling=True, pages=[Page.blank(height=8)], **send)
        create(calling=False, ecm=ecm, **receive)
    except (SessionError, TypeError, ValueError) as exc:
        raise ConfigError(f"class1 device {name!r}: bad T.30 options: {exc}") from None


#: The device kinds that need no installation.
BUILTIN_KINDS: dict[str, Callable[[str, dict[str, Any]], Device]] = {
    "loopback-pair": LoopbackPair,
    "class1": Class1Modem,
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
