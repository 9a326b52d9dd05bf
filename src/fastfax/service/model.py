"""The plain objects the fax service hands out: job and port states, job, port and
event records. Times are POSIX timestamps in seconds (float); every record turns into a
JSON-ready dict (:func:`to_wire`) and back (:func:`from_wire`) for remote clients.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..devices.contract import DeviceState

__all__ = [
    "JobState",
    "JobType",
    "DeviceState",
    "EventKind",
    "Priority",
    "JobInfo",
    "PortInfo",
    "PortStatus",
    "Event",
    "RoutingMethodInfo",
    "to_wire",
    "from_wire",
]


class JobState(enum.StrEnum):
    """Queue states of a job (the Windows JS_* values, plus the final ones)."""

    PREPARING = "preparing"  #: accepted; its document is being converted to fax pages
    PENDING = "pending"  #: JS_PENDING: waiting for its time, a free port or the discount period
    INPROGRESS = "inprogress"  #: JS_INPROGRESS: on a line now (sending)
    ROUTING = "routing"  #: JS_ROUTING: a received fax being routed
    PAUSED = "paused"  #: JS_PAUSED: held by a user until resumed
    RETRYING = "retrying"  #: JS_RETRYING: the last attempt failed; the next is scheduled
    RETRIES_EXCEEDED = "retries_exceeded"  #: JS_RETRIES_EXCEEDED: every attempt failed
    NOLINE = "noline"  #: JS_NOLINE: no port can send it (none enabled for sending)
    FAILED = "failed"  #: JS_FAILED: failed for a cause that is never retried (bad number)
    COMPLETED = "completed"  #: sent and confirmed by the far end, or received and routed
    CANCELED = "canceled"  #: cancelled (or aborted) by a user

    @property
    def final(self) -> bool:
        """True when the job will not change again unless restarted."""
        return self in _FINAL


_FINAL = {JobState.RETRIES_EXCEEDED, JobState.FAILED, JobState.COMPLETED, JobState.CANCELED}


class JobType(enum.StrEnum):
    """JT_SEND (an outgoing fax) or JT_ROUTING (a received fax being routed)."""

    SEND = "send"
    RECEIVE = "receive"


class EventKind(enum.StrEnum):
    """Kinds of service events (the Windows FEI_* events)."""

    SERVICE_STARTED = "service_started"
    SERVICE_ENDED = "service_ended"
    JOB_QUEUED = "job_queued"
    JOB_CHANGED = "job_changed"  #: paused, resumed, restarted, retry scheduled
    DIALING = "dialing"
    SENDING = "sending"  #: data: page (1-based), pages
    RECEIVING = "receiving"  #: data: page (1-based)
    RINGING = "ringing"
    COMPLETED = "completed"  #: data: pages, rate, ecm, remote_id
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    BAD_ADDRESS = "bad_address"
    FATAL_ERROR = "fatal_error"  #: data: cause
    NO_DIAL_TONE = "no_dial_tone"  #: data: cause
    DISCONNECTED = "disconnected"  #: the line dropped during the call; data: cause
    NOT_FAX_CALL = "not_fax_call"  #: a voice call answered; data: cause
    CALL_DELAYED = "call_delayed"  #: the modem delays redials; data: cause
    CALL_BLACKLISTED = "call_blacklisted"  #: the modem refuses the number; data: cause
    OFFLINE = "offline"  #: the modem does not answer; data: cause
    INITIALIZING = "initializing"  #: the modem is being set up for a call
    PREPARED = "prepared"  #: a job's pages are ready (it is pending); data: pages
    ABORTING = "aborting"
    LINE_RELEASED = "line_released"
    ROUTING = "routing"  #: data: method, ok, detail
    DELETED = "deleted"
    CONFIG_CHANGED = "config_changed"
    PORT_CHANGED = "port_changed"


class Priority(enum.IntEnum):
    """Send priority: higher values go first."""

    LOW = 0
    NORMAL = 1
    HIGH = 2


@dataclass
class JobInfo:
    """One job as the queue sees it (FAX_JOB_ENTRY).

    ``schedule``: the earliest time it may start; ``discount``: it waits for the discount
    period; ``attempts``: calls made so far; ``fallback``: how far the next attempt
    falls back (see :data:`fastfax.service.scheduler.FALLBACK`); ``pages``: pages in
    the fax (the cover included; 0 while PREPARING); ``size``: bytes of its TIFF-F file;
    ``current_page``: the page on the line now (0 when not sending); ``tsid``: the
    identity sent for this job (empty: the port's or the sender's fax number);
    ``billing_code``, ``sender_department``: kept for the gateway's accounts;
    ``receipt``: where the delivery report goes (an e-mail address, "inbox" or empty).
    """

    id: int
    type: JobType
    state: JobState
    number: str = ""
    group: int | None = None
    priority: int = Priority.NORMAL
    owner: str = ""
    recipient_name: str = ""
    sender_name: str = ""
    sender_company: str = ""
    sender_department: str = ""
    billing_code: str = ""
    tsid: str = ""
    receipt: str = ""
    document_name: str = ""
    size: int = 0
    submitted: float = 0.0
    schedule: float = 0.0
    discount: bool = False
    started: float | None = None
    finished: float | None = None
    attempts: int = 0
    pages: int = 0
    current_page: int = 0
    port: str | None = None
    device_state: DeviceState | None = None
    cause: str = ""
    remote_id: str = ""
    rate: int = 0
    ecm: bool | None = None
    fallback: int = 0
    routing: dict[str, str] = field(default_factory=dict)


@dataclass
class PortInfo:
    """One port (a device line; FAX_PORT_INFO). ``priority``: lower values are tried
    first for sending; ``rings``: rings before answering (0-99); ``node``: the service
    node whose line it is (several nodes share a PostgreSQL store; one node: its name)."""

    id: str
    name: str
    kind: str
    number: str = ""
    send: bool = True
    receive: bool = True
    rings: int = 1
    priority: int = 1
    tsid: str = ""
    csid: str = ""
    state: DeviceState = DeviceState.AVAILABLE
    node: str = ""


@dataclass
class PortStatus:
    """What a port is doing now (FAX_DEVICE_STATUS). ``elapsed`` in seconds since the
    current call started (0 when idle)."""

    id: str
    state: DeviceState = DeviceState.AVAILABLE
    job_id: int | None = None
    current_page: int = 0
    total_pages: int = 0
    remote_id: str = ""
    caller_id: str = ""
    number: str = ""
    started: float | None = None
    elapsed: float = 0.0


@dataclass
class Event:
    """One service event. ``seq`` numbers the events of the whole store, kept across
    restarts and shared by every node on a PostgreSQL store, so events of one job arrive
    in the order they happened and a client reconnecting to any node misses none."""

    seq: int
    kind: EventKind
    time: float
    job_id: int | None = None
    port: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class RoutingMethodInfo:
    """An inbound routing method (FAX_GLOBAL_ROUTING_INFO); ``priority`` 1 runs first."""

    name: str
    description: str
    priority: int
    extension: str = "fastfax"


def to_wire(obj: Any) -> Any:
    """``obj`` (a record, an enum, or lists/dicts of them) as JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    return obj


T = TypeVar("T")


def from_wire(cls: type[T], data: dict[str, Any]) -> T:
    """The record of class ``cls`` that :func:`to_wire` turned into ``data``."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        kind = _enum_of(hints[f.name])
        values[f.name] = kind(value) if kind is not None and value is not None else value
    return cls(**values)


def _enum_of(hint: Any) -> type[enum.Enum] | None:
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return candidate
    return None
