"""fastfax.sip.transaction: RFC 3261 section 17 timers on a virtual clock.

The expected schedules are RFC 3261's own figures: Timer A/E start at T1 and double
(E capped at T2), B/F = 64*T1, D >= 32 s, G doubles to T2, H = 64*T1, I = T4, J = 64*T1,
K = T4; reliable transports have no retransmission timers and zero D/I/J/K.
"""

from __future__ import annotations

import pytest

from fastfax.sip import SipError
from fastfax.sip.message import Request, Response, parse_uri
from fastfax.sip.transaction import (
    AckReceived,
    ClientInvite,
    ClientNonInvite,
    Deliver,
    Received,
    Respond,
    Send,
    ServerInvite,
    ServerNonInvite,
    StartTimer,
    State,
    StopTimer,
    TimedOut,
    TimerFired,
    Timers,
)

T = Timers(t1=0.5, t2=4.0, t4=5.0)


def request(method: str = "OPTIONS", branch: str = "z9hG4bKabc") -> Request:
    return Request(method, parse_uri("sip:b@192.0.2.2"), [
        ("Via", f"SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"), ("From", "<sip:a@x>;tag=1"),
        ("To", "<sip:b@y>"), ("Call-ID", "c1"), ("CSeq", f"1 {method}"),
        ("Route", "<sip:proxy.example.com;lr>")])


def response(req: Request, status: int) -> Response:
    to = req.get("To") or ""
    if status > 100:
        to += ";tag=srv"
    return Response(status, headers=[
        ("Via", req.get("Via") or ""), ("From", req.get("From") or ""), ("To", to),
        ("Call-ID", "c1"), ("CSeq", req.get("CSeq") or "")])


class Clock:
    """Runs a transaction's timers in deadline order; records when things were sent."""

    def __init__(self, tx, start_actions):
        self.tx = tx
        self.now = 0.0
        self.timers: dict[str, float] = {}
        self.sent: list[tuple[float, object]] = []
        self.delivered: list[Response] = []
        self.timed_out = False
        self.take(start_actions)

    def take(self, actions) -> None:
        for action in actions:
            if isinstance(action, StartTimer):
                self.timers[action.name] = action.deadline
            elif isinstance(action, StopTimer):
                self.timers.pop(action.name, None)
            elif isinstance(action, Send):
                self.sent.append((self.now, action.message))
            elif isinstance(action, Deliver):
                self.delivered.append(action.response)
            elif isinstance(action, TimedOut):
                self.timed_out = True

    def feed(self, event) -> None:
        self.take(self.tx.handle(event, self.now))

    def run(self, until: float = 1e9) -> None:
        while self.timers and not self.tx.terminated:
            name, deadline = min(self.timers.items(), key=lambda kv: kv[1])
            if deadline > until:
                break
            del self.timers[name]
            self.now = deadline
            self.feed(TimerFired(name))
        self.now = max(self.now, min(until, self.now if not self.timers else until))


def test_non_invite_retransmits_capped_at_t2_then_408() -> None:
    tx = ClientNonInvite(request(), reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0))
    clock.run()
    times = [t for t, _ in clock.sent]
    assert times[:6] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]  # T1, 2T1, 4T1, then every T2
    assert all(b - a == pytest.approx(4.0) for a, b in zip(times[4:], times[5:], strict=False))
    assert clock.timed_out and tx.terminated and clock.now == pytest.approx(32.0)  # F = 64*T1


def test_non_invite_provisional_then_final() -> None:
    req = request()
    tx = ClientNonInvite(req, reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0))
    clock.run(until=0.6)
    clock.feed(Received(response(req, 100)))
    assert tx.state is State.PROCEEDING
    clock.run(until=10.0)
    times = [t for t, _ in clock.sent]
    # the E armed in Trying still fires at 1.5; from then on, in Proceeding, every T2
    assert times == [0.0, 0.5, 1.5, 5.5, 9.5]
    clock.feed(Received(response(req, 200)))
    assert tx.state is State.COMPLETED and [r.status for r in clock.delivered] == [100, 200]
    clock.feed(Received(response(req, 200)))  # retransmission absorbed
    assert len(clock.delivered) == 2
    clock.run()
    assert tx.terminated and clock.now == pytest.approx(10.0 + 5.0)  # K = T4


def test_reliable_has_no_retransmissions() -> None:
    req = request()
    tx = ClientNonInvite(req, reliable=True, timers=T)
    clock = Clock(tx, tx.start(0.0))
    assert set(clock.timers) == {"F"}
    clock.feed(Received(response(req, 200)))
    assert clock.timers == {"K": 0.0}  # K = 0 on a reliable transport
    clock.run()
    assert tx.terminated and len(clock.sent) == 1
    tx = ClientInvite(request("INVITE"), reliable=True, timers=T)
    clock = Clock(tx, tx.start(0.0))
    assert set(clock.timers) == {"B"}


def test_invite_timer_a_doubles_until_b() -> None:
    tx = ClientInvite(request("INVITE"), reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0))
    clock.run()
    times = [t for t, _ in clock.sent]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A: T1, 2T1, 4T1... (no cap)
    assert clock.timed_out and clock.now == pytest.approx(32.0)  # B = 64*T1


def test_invite_error_response_is_acked_and_absorbed() -> None:
    req = request("INVITE")
    tx = ClientInvite(req, reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0))
    clock.feed(Received(response(req, 180)))
    assert tx.state is State.PROCEEDING and "A" not in clock.timers
    clock.feed(Received(response(req, 486)))
    ack = clock.sent[-1][1]
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.cseq == (1, "ACK") and ack.get("Via") == req.get("Via")  # same branch (17.1.1.3)
    assert ack.to.tag == "srv" and ack.get_all("Route") == req.get_all("Route")
    clock.feed(Received(response(req, 486)))  # retransmitted final: ACK again, not delivered
    assert [r.status for r in clock.delivered] == [180, 486]
    assert sum(isinstance(m, Request) and m.method == "ACK" for _, m in clock.sent) == 2
    clock.run()
    assert tx.terminated and clock.now == pytest.approx(32.0)  # D = 32 s


def test_invite_2xx_accepted_state_passes_retransmissions_up() -> None:
    req = request("INVITE")
    tx = ClientInvite(req, reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0))
    clock.feed(Received(response(req, 200)))
    clock.feed(Received(response(req, 200)))
    assert tx.state is State.ACCEPTED and [r.status for r in clock.delivered] == [200, 200]
    clock.run()
    assert tx.terminated and clock.now == pytest.approx(32.0)  # M = 64*T1


def test_server_invite_error_retransmits_until_ack() -> None:
    req = request("INVITE")
    tx = ServerInvite(req, reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0, response(req, 100)))
    clock.feed(Received(req))  # INVITE retransmission: the 100 again
    assert [m.status for _, m in clock.sent] == [100, 100]
    clock.feed(Respond(response(req, 486)))
    clock.run(until=10.0)
    times = [t for t, m in clock.sent if m.status == 486]
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5]  # G: T1 doubling, capped at T2
    ack = Request("ACK", req.uri, [("Via", req.get("Via") or ""), ("CSeq", "1 ACK")])
    clock.feed(Received(ack))
    assert tx.state is State.CONFIRMED and "G" not in clock.timers
    clock.run()
    assert tx.terminated and clock.now == pytest.approx(15.0)  # I = T4


def test_server_invite_without_ack_times_out() -> None:
    req = request("INVITE")
    tx = ServerInvite(req, reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0, None))
    clock.feed(Respond(response(req, 603)))
    clock.run()
    assert clock.timed_out and clock.now == pytest.approx(32.0)  # H = 64*T1


def test_server_invite_2xx_retransmitted_until_ack() -> None:
    req = request("INVITE")
    tx = ServerInvite(req, reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0, None))
    clock.feed(Respond(response(req, 200)))
    clock.run(until=8.0)
    assert [t for t, _ in clock.sent] == [0.0, 0.5, 1.5, 3.5, 7.5]
    clock.feed(AckReceived())
    clock.run()
    assert len(clock.sent) == 5 and tx.terminated and not clock.timed_out


def test_second_final_response_is_refused() -> None:
    req = request("INVITE")
    tx = ServerInvite(req, reliable=False, timers=T)
    tx.start(0.0, None)
    tx.handle(Respond(response(req, 486)), 0.0)
    with pytest.raises(SipError):
        tx.handle(Respond(response(req, 200)), 0.1)


def test_server_non_invite() -> None:
    req = request("BYE")
    tx = ServerNonInvite(req, reliable=False, timers=T)
    clock = Clock(tx, tx.start(0.0))
    clock.feed(Received(req))  # nothing to resend yet
    assert clock.sent == []
    clock.feed(Respond(response(req, 200)))
    clock.feed(Received(req))
    assert [m.status for _, m in clock.sent] == [200, 200]
    clock.run()
    assert tx.terminated and clock.now == pytest.approx(32.0)  # J = 64*T1
