"""The ``class1`` device kind: a Class 1 fax modem on a serial port, answering and
sending through the T.30 engine (:mod:`fastfax.transport.class1`).

One modem does one call at a time: a thread answers while the port is set to receive,
and gives the modem to sends as soon as one is queued. Abort and close stop a call in
whatever phase it is, within 50 ms, and hang the modem up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import FaxError
from ..page import Page
from ..t30.events import Negotiated, PageReceived
from ..t30.result import Cause
from .config import LOG_CATEGORIES
from .devices import Call, CallAborted, Hooks, Line, Outcome, _progress
from .errors import ConfigError
from .model import DeviceState

__all__ = ["Class1Modem"]

#: How a modem call that did not reach T.30 shows in the device state (FPS_*).
_CALL_STATES = {Cause.BUSY: DeviceState.BUSY, Cause.NO_ANSWER: DeviceState.NO_ANSWER}


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
        for table in ("options", "receive_options"):
            if not isinstance(options.get(table, {}), dict):
                raise ConfigError(f"class1 device {name!r}: {table} is a table")
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
