"""SIP transactions (RFC 3261 section 17, with RFC 6026's Accepted state), sans-I/O.

Four state machines, each driven by ``handle(event, now)`` returning a list of actions,
as h11 does for HTTP: explicit states (:class:`State`), no sockets, no clock. ``now`` is
the caller's clock in seconds (any monotonic origin); timer deadlines come back in the
same clock.

- :class:`ClientInvite` (section 17.1.1): timers A (retransmit, T1 doubling, unreliable
  transports only), B (64*T1 timeout -> 408), D (wait for response retransmissions, 32 s
  unreliable, 0 reliable), M (RFC 6026: absorb 2xx retransmissions for 64*T1). It builds
  the ACK for a non-2xx final response itself.
- :class:`ClientNonInvite` (17.1.2): timers E (T1 doubling, capped at T2; T2 once a
  provisional came), F (64*T1 timeout -> 408), K (T4 unreliable, 0 reliable).
- :class:`ServerInvite` (17.2.1): sends 100 Trying at once; timers G (retransmit a
  3xx-6xx, T1 doubling to T2), H (64*T1 waiting for the ACK), I (T4 / 0), L (RFC 6026),
  and, as the UAS core's duty of section 13.3.1.4 carried out here, the retransmission
  of a 2xx (timer ``G2xx``, T1 doubling to T2) until :class:`AckReceived`.
- :class:`ServerNonInvite` (17.2.2): timer J (64*T1 unreliable, 0 reliable).

Events: :class:`Received` (a message for this transaction), :class:`TimerFired`,
:class:`Respond` (the transaction user's response, server side), :class:`AckReceived`
(the UA matched an ACK for a 2xx), :class:`TransportError`. Actions: :class:`Send`,
:class:`StartTimer` (absolute ``deadline``), :class:`StopTimer`, :class:`Deliver` (a
response for the transaction user), :class:`TimedOut` (the TU should act as on a 408),
:class:`Terminated`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .message import Request, Response, SipError

__all__ = [
    "State", "Timers", "Received", "TimerFired", "Respond", "AckReceived", "TransportError",
    "Send", "StartTimer", "StopTimer", "Deliver", "TimedOut", "Terminated",
    "ClientInvite", "ClientNonInvite", "ServerInvite", "ServerNonInvite", "Transaction",
    "make_ack",
]


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class Timers:
    """RFC 3261 timer values in seconds: T1 (RTT estimate), T2 (cap), T4 (network lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


# Events
@dataclass(frozen=True)
class Received:
    message: Request | Response


@dataclass(frozen=True)
class TimerFired:
    name: str


@dataclass(frozen=True)
class Respond:
    response: Response


@dataclass(frozen=True)
class AckReceived:
    pass


@dataclass(frozen=True)
class TransportError:
    pass


# Actions
@dataclass(frozen=True)
class Send:
    message: Request | Response

    @property
    def data(self) -> bytes:
        return bytes(self.message)


@dataclass(frozen=True)
class StartTimer:
    name: str
    deadline: float


@dataclass(frozen=True)
class StopTimer:
    name: str


@dataclass(frozen=True)
class Deliver:
    response: Response


@dataclass(frozen=True)
class TimedOut:
    pass


@dataclass(frozen=True)
class Terminated:
    pass


Event = Received | TimerFired | Respond | AckReceived | TransportError
Action = Send | StartTimer | StopTimer | Deliver | TimedOut | Terminated


def make_ack(request: Request, response: Response) -> Request:
    """The ACK for a 3xx-6xx answer to INVITE ``request`` (RFC 3261 section 17.1.1.3)."""
    headers = [("Via", request.get_all("Via")[0]), ("Max-Forwards", "70"),
               ("From", request.get("From") or ""), ("To", response.get("To") or ""),
               ("Call-ID", request.call_id), ("CSeq", f"{request.cseq[0]} ACK")]
    headers += [("Route", r) for r in request.get_all("Route")]
    return Request("ACK", request.uri, headers)


class Transaction:
    """Common state: the request, the transport's reliability, timers and the state."""

    invite = False

    def __init__(self, request: Request, *, reliable: bool, timers: Timers = Timers()):
        vias = request.get_all("Via")
        if not vias:
            raise SipError("a request without Via")
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = State.TERMINATED
        self.branch = request.vias[0].branch or ""
        self._active: dict[str, float] = {}
        self._interval: dict[str, float] = {}

    @property
    def key(self) -> tuple[str, str]:
        """(branch, method) identifying this transaction (CANCEL and ACK are apart)."""
        method = self.request.method
        return self.branch, "INVITE" if method == "ACK" else method

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _start(self, out: list[Action], name: str, delay: float, now: float) -> None:
        self._active[name] = now + delay
        self._interval[name] = delay
        out.append(StartTimer(name, now + delay))

    def _arm(self, out: list[Action], retransmit: str, timeout: str, now: float) -> None:
        """Start timer ``retransmit`` at T1 (unreliable transports only) and the timeout
        timer ``timeout`` at 64*T1: the pair every transaction starts with its first send
        (A/B, E/F) or final response (G/H, G2xx/L)."""
        if not self.reliable:
            self._start(out, retransmit, self.timers.t1, now)
        self._start(out, timeout, 64 * self.timers.t1, now)

    def _resend(self, out: list[Action], name: str, message: Request | Response, now: float,
                cap: float, *, double: bool = True) -> None:
        """Timer ``name`` fired: send ``message`` again and restart ``name`` at twice its
        last interval, at most ``cap`` seconds (without ``double``: at ``cap``)."""
        out.append(Send(message))
        self._start(out, name, min(2 * self._interval[name], cap) if double else cap, now)

    def _stop(self, out: list[Action], *names: str) -> None:
        """Stop the running timers among ``names``."""
        for name in names:
            if self._active.pop(name, None) is not None:
                out.append(StopTimer(name))

    def _stop_all(self, out: list[Action]) -> None:
        for name in list(self._active):
            out.append(StopTimer(name))
        self._active.clear()

    def _terminate(self, out: list[Action]) -> list[Action]:
        self._stop_all(out)
        self.state = State.TERMINATED
        out.append(Terminated())
        return out

    def handle(self, event: Event, now: float) -> list[Action]:
        """Feed one event at time ``now`` (seconds); the actions to carry out, in order."""
        out: list[Action] = []
        if self.state is State.TERMINATED:
            return out
        if isinstance(event, TimerFired):
            if event.name not in self._active:
                return out  # stale or stopped timer
            del self._active[event.name]
        if isinstance(event, TransportError):
            out.append(TimedOut())
            return self._terminate(out)
        self._handle(event, now, out)
        return out

    def _handle(self, event: Event, now: float, out: list[Action]) -> None:
        raise NotImplementedError


class ClientInvite(Transaction):
    """Client INVITE transaction: create, then :meth:`start` to send the INVITE."""

    invite = True

    def start(self, now: float) -> list[Action]:
        """Send the INVITE and start timers A (unreliable only) and B."""
        out: list[Action] = [Send(self.request)]
        self.state = State.CALLING
        self._arm(out, "A", "B", now)
        return out

    def _handle(self, event: Event, now: float, out: list[Action]) -> None:
        st = self.state
        if isinstance(event, TimerFired):
            if event.name == "A" and st is State.CALLING:
                self._resend(out, "A", self.request, now, float("inf"))
            elif event.name == "B" and st is State.CALLING:
                out.append(TimedOut())
                self._terminate(out)
            elif event.name in ("D", "M"):
                self._terminate(out)
            return
        if not isinstance(event, Received) or not isinstance(event.message, Response):
            return
        response = event.message
        code = response.status
        if st in (State.CALLING, State.PROCEEDING):
            if code < 200:
                if st is State.CALLING:
                    self.state = State.PROCEEDING
                    self._stop(out, "A")
                out.append(Deliver(response))
            elif code < 300:
                self._stop_all(out)
                self.state = State.ACCEPTED
                out.append(Deliver(response))
                self._start(out, "M", 64 * self.timers.t1, now)
            else:
                self._stop_all(out)
                self.state = State.COMPLETED
                out.append(Send(make_ack(self.request, response)))
                out.append(Deliver(response))
                self._start(out, "D", 0.0 if self.reliable else 32.0, now)
        elif st is State.COMPLETED and code >= 300:
            out.append(Send(make_ack(self.request, response)))
        elif st is State.ACCEPTED and 200 <= code < 300:
            out.append(Deliver(response))


class ClientNonInvite(Transaction):
    """Client non-INVITE transaction (REGISTER, BYE, OPTIONS, CANCEL...)."""

    def start(self, now: float) -> list[Action]:
        """Send the request and start timers E (unreliable only) and F."""
        out: list[Action] = [Send(self.request)]
        self.state = State.TRYING
        self._arm(out, "E", "F", now)
        return out

    def _handle(self, event: Event, now: float, out: list[Action]) -> None:
        st = self.state
        if isinstance(event, TimerFired):
            if event.name == "E" and st in (State.TRYING, State.PROCEEDING):
                # doubling up to T2 while Trying; every T2 once Proceeding
                self._resend(out, "E", self.request, now, self.timers.t2,
                             double=st is State.TRYING)
            elif event.name == "F" and st in (State.TRYING, State.PROCEEDING):
                out.append(TimedOut())
                self._terminate(out)
            elif event.name == "K":
                self._terminate(out)
            return
        if not isinstance(event, Received) or not isinstance(event.message, Response):
            return
        response = event.message
        if st not in (State.TRYING, State.PROCEEDING):
            return
        if response.status < 200:
            self.state = State.PROCEEDING
            out.append(Deliver(response))
            return
        self._stop_all(out)
        self.state = State.COMPLETED
        out.append(Deliver(response))
        self._start(out, "K", 0.0 if self.reliable else self.timers.t4, now)


class ServerInvite(Transaction):
    """Server INVITE transaction; created on receiving the INVITE, then :meth:`start`."""

    invite = True

    def __init__(self, request: Request, *, reliable: bool, timers: Timers = Timers()):
        super().__init__(request, reliable=reliable, timers=timers)
        self.last_response: Response | None = None

    def start(self, now: float, trying: Response | None) -> list[Action]:
        """Enter Proceeding, sending ``trying`` (a 100 made by the UA) if given."""
        self.state = State.PROCEEDING
        if trying is None:
            return []
        self.last_response = trying
        return [Send(trying)]

    def _handle(self, event: Event, now: float, out: list[Action]) -> None:
        st = self.state
        t = self.timers
        if isinstance(event, TimerFired):
            # G resends a 3xx-6xx, G2xx (RFC 3261 13.3.1.4) a 2xx, until ACKed
            if (event.name, st) in (("G", State.COMPLETED), ("G2xx", State.ACCEPTED)):
                assert self.last_response is not None
                self._resend(out, event.name, self.last_response, now, t.t2)
            elif event.name == "H" and st is State.COMPLETED:
                out.append(TimedOut())
                self._terminate(out)
            elif event.name == "L" and st is State.ACCEPTED:
                if "G2xx" in self._active:  # the ACK never came (RFC 3261 13.3.1.4)
                    out.append(TimedOut())
                self._terminate(out)
            elif event.name == "I":
                self._terminate(out)
            return
        if isinstance(event, Respond):
            if st is not State.PROCEEDING:
                raise SipError(f"a response to send in state {st.value}", None)
            response = event.response
            self.last_response = response
            out.append(Send(response))
            if response.status < 200:
                return
            if response.status < 300:
                self.state = State.ACCEPTED
                self._arm(out, "G2xx", "L", now)
            else:
                self.state = State.COMPLETED
                self._arm(out, "G", "H", now)
            return
        if isinstance(event, AckReceived):
            if st is State.ACCEPTED:
                self._stop(out, "G2xx")
            return
        if not isinstance(event, Received) or not isinstance(event.message, Request):
            return
        method = event.message.method
        if method == "INVITE" and st in (State.PROCEEDING, State.COMPLETED):
            if self.last_response is not None:
                out.append(Send(self.last_response))
        elif method == "ACK" and st is State.COMPLETED:
            self._stop(out, "G", "H")
            self.state = State.CONFIRMED
            self._start(out, "I", 0.0 if self.reliable else t.t4, now)


class ServerNonInvite(Transaction):
    """Server non-INVITE transaction."""

    def __init__(self, request: Request, *, reliable: bool, timers: Timers = Timers()):
        super().__init__(request, reliable=reliable, timers=timers)
        self.last_response: Response | None = None

    def start(self, now: float) -> list[Action]:
        """Enter Trying."""
        self.state = State.TRYING
        return []

    def _handle(self, event: Event, now: float, out: list[Action]) -> None:
        st = self.state
        if isinstance(event, TimerFired):
            if event.name == "J":
                self._terminate(out)
            return
        if isinstance(event, Respond):
            if st not in (State.TRYING, State.PROCEEDING):
                raise SipError(f"a response to send in state {st.value}", None)
            self.last_response = event.response
            out.append(Send(event.response))
            if event.response.status < 200:
                self.state = State.PROCEEDING
            else:
                self.state = State.COMPLETED
                self._start(out, "J", 0.0 if self.reliable else 64 * self.timers.t1, now)
            return
        if isinstance(event, Received) and isinstance(event.message, Request):
            if st in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
                out.append(Send(self.last_response))
