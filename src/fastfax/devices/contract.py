"""The contract between the fax service and its device kinds (the Windows fax service
provider interface): what a device is (:class:`Device`), its lines (:class:`Line`), a
call it is given (:class:`Call`) and how it ended (:class:`Outcome`), what the service
offers it (:class:`Hooks`), and the states a line reports (:class:`DeviceState`).

Device kinds are plug-ins: a callable ``factory(name, options) -> Device`` registered
under the ``fastfax.devices`` entry point group, the entry point's name being the kind
(see :mod:`fastfax.devices.loopback` and :mod:`fastfax.devices.class1`). The service
finds them only there (:func:`fastfax.service.devices.device_factory`).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..page import Page
from ..t30.events import PageReceived, PageSent

__all__ = [
    "DeviceState",
    "Line",
    "Call",
    "Outcome",
    "Hooks",
    "Device",
    "CallAborted",
    "call_progress",
    "INBOUND_LOGGER",
]

#: The logger a device reports trouble on its answering lines to: the service's
#: "inbound" logging category (FAXLOG_CATEGORY_INBOUND).
INBOUND_LOGGER = "fastfax.service.inbound"


class DeviceState(enum.StrEnum):
    """What a port is doing (the Windows FPS_* values)."""

    AVAILABLE = "available"  #: FPS_AVAILABLE: idle, ready to send or answer
    DIALING = "dialing"  #: FPS_DIALING: dialling a number
    SENDING = "sending"  #: FPS_SENDING: sending pages
    RECEIVING = "receiving"  #: FPS_RECEIVING: receiving pages
    RINGING = "ringing"  #: FPS_RINGING: an incoming call is ringing
    ANSWERED = "answered"  #: FPS_ANSWERED: the call was answered
    COMPLETED = "completed"  #: FPS_COMPLETED: the last call completed
    BUSY = "busy"  #: FPS_BUSY: the dialled number was busy
    NO_ANSWER = "no_answer"  #: FPS_NO_ANSWER: nobody answered
    BAD_ADDRESS = "bad_address"  #: FPS_BAD_ADDRESS: the number does not exist
    FATAL_ERROR = "fatal_error"  #: FPS_FATAL_ERROR: the call failed (protocol or line)
    ABORTING = "aborting"  #: FPS_ABORTING: a user aborted the call
    UNAVAILABLE = "unavailable"  #: FPS_UNAVAILABLE: the device cannot be used
    ROUTING = "routing"  #: FPS_ROUTING: a received fax is being routed
    NO_DIAL_TONE = "no_dial_tone"  #: FPS_NO_DIAL_TONE: no dial tone (line unplugged?)
    DISCONNECTED = "disconnected"  #: FPS_DISCONNECTED: the line dropped during the call
    NOT_FAX_CALL = "not_fax_call"  #: FPS_NOT_FAX_CALL: a voice (or data) call answered
    CALL_DELAYED = "call_delayed"  #: FPS_CALL_DELAYED: the modem delays redials of it
    CALL_BLACKLISTED = "call_blacklisted"  #: FPS_CALL_BLACKLISTED: the modem refuses it
    INITIALIZING = "initializing"  #: FPS_INITIALIZING: the modem is being set up
    OFFLINE = "offline"  #: FPS_OFFLINE: the modem does not answer (unplugged, off)


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
    NO_DIAL_TONE, DISCONNECTED, NOT_FAX_CALL, CALL_DELAYED, CALL_BLACKLISTED, OFFLINE,
    FATAL_ERROR (a protocol failure: the next attempt falls back to a lower speed) or
    ABORTING; ``result`` the T.30 result when a session ran. ``refused``: the far end
    refused this kind of call and would refuse another the same way (e.g. SIP 488/606 to
    a T.38 offer), so it is not tried again whatever ``state`` says."""

    state: DeviceState
    cause: str = ""
    result: Any = None
    refused: bool = False

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

    def receiving(self, line_id: str, abort: threading.Event) -> None:
        """The line (claimed) is receiving a call; the service sets ``abort`` when a user
        aborts that receive (the device then hangs up). Forgotten at :meth:`release`."""

    def status(self, line_id: str, state: DeviceState, **fields: Any) -> None:
        """The line's state changed; ``fields``: job_id, current_page, total_pages,
        remote_id, caller_id, number."""

    def find_line(self, number: str, kind: str) -> str | None:
        """The id of the service's line of device kind ``kind`` whose number is ``number``."""

    def received(
        self, line_id: str, result: Any, caller_id: str, from_job: int | None = None
    ) -> None:
        """A fax arrived on the line (``result.pages`` are its pages): spool and route it.
        ``result.ok`` False: the call failed after those pages (a partial fax).
        ``from_job``: the service's send job whose call brought it, when a device joins
        two of the service's own lines (so a service killed before that job was marked
        completed does not send it twice)."""


class Device(Protocol):
    lines: list[Line]

    def start(self, hooks: Hooks) -> None:
        """Begin answering calls on the lines that receive."""

    def can_reach(self, line_id: str, number: str) -> bool | None:
        """Whether a call from ``line_id`` to ``number`` can ever get through (True), can
        never (False: dialling it would be a bad address, such as the line's own
        number), or cannot be told (None). The service puts a job only on a line that
        can reach its number, and fails it as a bad address only when no line can.
        A device without this method is taken to reach every number."""

    def send(self, line_id: str, call: Call, hooks: Hooks) -> Outcome:
        """Place ``call`` on ``line_id`` and return how it ended (blocking)."""

    def close(self) -> None:
        """Stop every thread and release the hardware."""


def call_progress(
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
