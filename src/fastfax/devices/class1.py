"""The ``class1`` device kind: a Class 1 fax modem on a serial port, answering and
sending through the T.30 engine (:mod:`fastfax.transport.class1`).

One modem does one call at a time: a thread answers while the port is set to receive,
and gives the modem to sends as soon as one is queued. Abort and close stop a call in
whatever phase it is, within 50 ms, and hang the modem up.

How a send ends, as the service sees it (state, cause): the modem's word on a failed
dial (``BUSY``, ``NO ANSWER``, ``NO DIALTONE``, ``DELAYED``, ``BLACKLISTED``, ``VOICE``
and ``NO CARRIER`` -- answered without fax tones -- are BUSY, NO_ANSWER, NO_DIAL_TONE,
CALL_DELAYED, CALL_BLACKLISTED and NOT_FAX_CALL); T1 expired with no DIS is NOT_FAX_CALL
too, a dropped line DISCONNECTED, a modem that cannot be opened or set up OFFLINE; only
the rest (a T.30 failure, a modem failing mid-call) is FATAL_ERROR, after which the
service tries the next call slower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, FaxError
from ..page import Page
from ..t30.events import Negotiated, PageReceived
from ..t30.result import Cause, Result, SessionError
from ..t30.station import create
from ..transport.at import Code
from ..transport.class1 import CallResult, answer_call, open_modem, send_call
from .contract import (
    INBOUND_LOGGER,
    Call,
    CallAborted,
    DeviceState,
    Hooks,
    Line,
    Outcome,
    call_progress,
)

__all__ = ["Class1Modem"]

#: How a dial that failed shows (FPS_* state, cause), by the modem's result code. None
#: of these is a protocol failure: the scheduler does not lower the next call's speed.
_DIAL_OUTCOMES = {
    Code.BUSY: (DeviceState.BUSY, "BUSY"),
    Code.NO_ANSWER: (DeviceState.NO_ANSWER, "NO_ANSWER"),
    Code.TIMEOUT: (DeviceState.NO_ANSWER, "NO_ANSWER"),
    Code.NO_DIALTONE: (DeviceState.NO_DIAL_TONE, "NO_DIALTONE"),
    Code.DELAYED: (DeviceState.CALL_DELAYED, "DELAYED"),
    Code.BLACKLISTED: (DeviceState.CALL_BLACKLISTED, "BLACKLISTED"),
    # Answered without fax tones (a person, an answering machine, a data modem).
    Code.VOICE: (DeviceState.NOT_FAX_CALL, "VOICE"),
    Code.NO_CARRIER: (DeviceState.NOT_FAX_CALL, "NO_CARRIER"),
}
#: How a call that reached T.30 and failed shows, by cause (else FATAL_ERROR). T1 ran out
#: on a call the modem took for a fax (CONNECT) with no DIS from the far end: no fax
#: terminal answered.
_CALL_STATES = {
    Cause.T1_EXPIRED: DeviceState.NOT_FAX_CALL,
    Cause.CALLDROPPED: DeviceState.DISCONNECTED,
}


class _ModemOffline(Exception):
    """The modem could not be opened or set up for fax."""


class Class1Modem:
    """A Class 1 fax modem on a pyserial URL (a device path, ``socket://``, ...), driven
    by the T.30 engine through :mod:`fastfax.transport.class1` (as
    :mod:`fastfax.class1` does).

    Options: ``url`` (required); ``number`` (its own number, informative);
    ``baudrate``, ``rtscts``, ``init`` (the serial line and extra set-up commands);
    ``options`` (for sending: ``dial_timeout`` in seconds, and T.30 options of
    :func:`fastfax.t30.station.create` such as ``max_rate``, ``modems``, ``timers``);
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
        self._receive: threading.Event | None = None  # stops the receive under way

    def start(self, hooks: Hooks) -> None:
        self._thread = threading.Thread(
            target=self._answer,
            args=(hooks,),
            name=f"fastfax-answer-{self.lines[0].id}",
            daemon=True,
        )
        self._thread.start()

    def can_reach(self, line_id: str, number: str) -> bool:
        """A modem dials any number (the service checked it is a dial string)."""
        return True

    def _open(self, abort: threading.Event) -> tuple[Any, dict[str, Any]]:
        """The modem, set up for fax, its port failing once ``abort`` is set; and the
        T.30 options its capabilities allow."""
        return open_modem(
            self.url, baudrate=self.baudrate, rtscts=self.rtscts, init=self.init, abort=abort
        )

    # -- answering ----------------------------------------------------------------------
    def _give_way(self, hooks: Hooks) -> bool:
        """True when the answering thread must let go of the modem."""
        line = self.lines[0].id
        return self._stop.is_set() or self._senders > 0 or not hooks.settings(line)["receive"]

    def _answer(self, hooks: Hooks) -> None:
        log = logging.getLogger(INBOUND_LOGGER)
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
                    hooks.status(self.lines[0].id, DeviceState.OFFLINE)
                    self._stop.wait(5.0)
                    hooks.status(self.lines[0].id, DeviceState.AVAILABLE)

    def _listen(self, hooks: Hooks) -> None:
        """Open the modem, wait for the port's rings while nothing else wants it, then
        answer and receive (under the modem lock). A caller that sends no T.30 command
        within T1 (a person, a data modem) shows as NOT_FAX_CALL before the line is
        released."""
        log = logging.getLogger(INBOUND_LOGGER)
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
                self._receive = abort = threading.Event()  # a user's abort, or close()
                hooks.receiving(line, abort)
                if self._stop.is_set():
                    abort.set()
                settings = hooks.settings(line)
                hooks.status(line, DeviceState.RINGING)
                hooks.status(line, DeviceState.ANSWERED)
                result = answer_call(
                    modem, caps, rings=1, ring_timeout=0, ecm=self.ecm, ident=settings["csid"],
                    on_event=self._receiving(hooks), abort=abort, **self.receive_options,
                )  # fmt: skip
                if result.pages:  # a call that failed after some pages keeps them
                    hooks.received(line, result, "")
                elif result.cause is Cause.T1_EXPIRED:  # no DCS in T1: no fax terminal
                    log.warning("%s: a call that was not a fax call (no T.30 command from "
                                "the caller in T1): hung up", line)  # fmt: skip
                    hooks.status(line, DeviceState.NOT_FAX_CALL)
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
            except _ModemOffline as exc:
                if call.abort.is_set():
                    return Outcome(DeviceState.ABORTING, "aborted by a user")
                return Outcome(DeviceState.OFFLINE, f"the modem does not answer: {exc}")
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
        if isinstance(result, CallResult) and result.dial in _DIAL_OUTCOMES:
            state, cause = _DIAL_OUTCOMES[result.dial]
            return Outcome(state, cause, result)
        state = _CALL_STATES.get(result.cause, DeviceState.FATAL_ERROR)
        return Outcome(state, str(result.cause), result)

    def _send(self, line_id: str, call: Call, hooks: Hooks) -> Result:
        """Open the modem, dial and send (under the modem lock); the T.30 Result."""
        progress = call_progress(call, hooks, line_id)

        def on_event(event: Any) -> None:
            if isinstance(event, Negotiated):
                hooks.status(
                    line_id,
                    DeviceState.SENDING,
                    total_pages=len(call.pages),
                    remote_id=event.remote_id,
                )
            progress(event)

        options = dict(self.send_options)
        if call.max_rate:
            options["max_rate"] = min(call.max_rate, options.get("max_rate", 14400))
        hooks.status(line_id, DeviceState.INITIALIZING, job_id=call.job_id)
        try:
            modem, caps = self._open(call.abort)
        except (FaxError, OSError) as exc:
            raise _ModemOffline(f"{type(exc).__name__}: {exc}") from None
        hooks.status(line_id, DeviceState.DIALING, job_id=call.job_id, number=call.number)
        try:
            return send_call(
                modem, caps, call.number, call.pages, ecm=call.ecm, ident=call.tsid,
                dial_timeout=self.dial_timeout, on_event=on_event, abort=call.abort, **options,
            )  # fmt: skip
        finally:
            modem.close()

    def close(self) -> None:
        self._stop.set()
        if self._receive is not None:
            self._receive.set()
        if self._thread is not None:
            self._thread.join()


def _check_options(name: str, send: dict[str, Any], receive: dict[str, Any], ecm: Any) -> None:
    """Raise ConfigError unless the T.30 engine takes ``send`` and ``receive``."""
    if "ecm" in send or "ident" in send or "ident" in receive:
        raise ConfigError(
            f"class1 device {name!r}: ecm (sending) and ident come from the job and the port"
        )
    try:
        create(calling=True, pages=[Page.blank(height=8)], **send)
        create(calling=False, ecm=ecm, **receive)
    except (SessionError, TypeError, ValueError) as exc:
        raise ConfigError(f"class1 device {name!r}: bad T.30 options: {exc}") from None
