"""fastfax.sip.ua: two user agents back to back in memory, on a virtual clock.

Each test checks what goes over the wire (methods and statuses in order, parsed by our
own parser and by the peer UA) and the events each side reports. A small registrar and
an authenticating proxy in the tests answer with fastfax.sip.auth's server side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastfax.sip import auth
from fastfax.sip import ua as U
from fastfax.sip.message import Request, Response, parse

sys.path.insert(0, str(Path(__file__).parent))
from sip_net import Net  # noqa: E402

A_ADDR = ("10.0.0.1", 5060)
B_ADDR = ("10.0.0.2", 5060)


def agents(a_mode: str = "reinvite", b_mode: str = "on-request", *, b_t38: int = 5002,
           a_session: int | None = 1800, b_session: int | None = 1800, b_min_se: int = 90,
           **a_extra) -> tuple[U.UserAgent, U.UserAgent, Net]:
    a = U.UserAgent(U.UaConfig("10.0.0.1", 5060, user="a", audio_port=4000, t38_port=4002,
                               t38_mode=a_mode, session_expires=a_session, **a_extra))
    b = U.UserAgent(U.UaConfig("10.0.0.2", 5060, user="b", audio_port=5000, t38_port=b_t38,
                               t38_mode=b_mode, session_expires=b_session, min_se=b_min_se))
    return a, b, Net(a, b)


def place_call(a: U.UserAgent, b: U.UserAgent, net: Net, *, ring: int | None = 180,
               answer: bool = True) -> str:
    call_id, actions = a.invite("sip:b@10.0.0.2", net.now)
    net.run(a, actions)
    net.pump()
    (incoming,) = net.of(b, U.IncomingCall)
    assert incoming.call_id == call_id and incoming.source == A_ADDR
    if ring:
        net.run(b, b.ring(call_id, net.now, status=ring))
        net.pump()
    if answer:
        net.run(b, b.answer(call_id, net.now))
        net.pump()
    return call_id


def ended(agent: U.UserAgent, net: Net) -> list[str]:
    return [e.cause.name for e in net.of(agent, U.CallEnded)]


def test_invite_t38_reinvite_bye() -> None:
    a, b, net = agents()
    call_id = place_call(a, b, net)
    assert net.methods() == ["INVITE", "100 INVITE", "180 INVITE", "200 INVITE", "ACK",
                             "INVITE", "100 INVITE", "200 INVITE", "ACK"]
    assert [e.status for e in net.of(a, U.CallProgress)] == [180]
    media_a = net.of(a, U.MediaReady)
    media_b = net.of(b, U.MediaReady)
    assert [m.kind for m in media_a] == ["audio", "t38"] == [m.kind for m in media_b]
    assert (media_a[1].address, media_a[1].port, media_a[1].local_port) == ("10.0.0.2", 5002, 4002)
    assert (media_b[1].address, media_b[1].port, media_b[1].local_port) == ("10.0.0.1", 4002, 5002)
    assert media_a[1].params == media_b[1].params and media_a[1].params.max_datagram == 400
    assert media_a[0].codec == "PCMU"
    reinvite = [m for _, _, m in net.wire if isinstance(m, Request) and m.method == "INVITE"][1]
    assert reinvite.to.tag and reinvite.cseq == (2, "INVITE")
    assert b"m=image 4002 udptl t38" in reinvite.body
    net.run(a, a.hangup(call_id, net.now))
    net.pump(until=net.now + 100)
    assert net.methods()[-2:] == ["BYE", "200 BYE"]
    assert ended(a, net) == ["normal"] == ended(b, net)
    assert net.timers == {}  # every transaction and session timer is gone


def test_direct_t38_offer() -> None:
    a, b, net = agents(a_mode="direct")
    place_call(a, b, net, ring=183)
    assert [m.kind for m in net.of(a, U.MediaReady)] == ["t38"]
    assert net.of(b, U.IncomingCall)[0].offers_t38
    assert net.methods().count("INVITE") == 1


def test_488_to_t38_reinvite_ends_call_with_named_cause() -> None:
    a, b, net = agents(b_t38=0)  # b has no T.38 port: it refuses the T.38 offer
    place_call(a, b, net)
    net.pump(until=net.now + 100)
    assert net.methods()[5:] == ["INVITE", "100 INVITE", "488 INVITE", "ACK", "BYE", "200 BYE"]
    (cause,) = [e.cause for e in net.of(a, U.CallEnded)]
    assert (cause.name, cause.text, cause.status, cause.retry) == (
        "no_t38", "far end refused T.38", 488, False)
    assert ended(b, net) == ["normal"]
    assert net.timers == {}


def test_cancel_before_answer() -> None:
    a, b, net = agents()
    call_id = place_call(a, b, net, answer=False)
    net.run(a, a.hangup(call_id, net.now))
    net.pump(until=net.now + 100)
    assert net.methods()[3:] == ["CANCEL", "200 CANCEL", "487 INVITE", "ACK"]
    assert ended(a, net) == ["canceled"] and ended(b, net) == ["caller_canceled"]
    assert net.timers == {}


def test_cancel_crossing_the_200() -> None:
    a, b, net = agents(a_mode="on-request")
    call_id = place_call(a, b, net, answer=False)
    net.run(b, b.answer(call_id, net.now))  # b's 200 is in flight ...
    net.run(a, a.hangup(call_id, net.now))  # ... when a sends CANCEL
    net.pump(until=net.now + 100)
    # the 200 wins: b answers the CANCEL 200 without 487; a ACKs the 200, then sends BYE
    assert net.methods()[3:] == ["200 INVITE", "CANCEL", "ACK", "BYE", "200 CANCEL", "200 BYE"]
    assert ended(a, net) == ["canceled"] and ended(b, net) == ["normal"]
    assert net.timers == {}


def test_busy_and_unknown_number_causes() -> None:
    for status, name, retry in ((486, "busy", True), (404, "bad_address", False),
                                (480, "no_answer", True), (603, "failed", True)):
        a, b, net = agents()
        call_id = place_call(a, b, net, answer=False)
        net.run(b, b.reject(call_id, net.now, status=status))
        net.pump(until=net.now + 100)
        (cause,) = [e.cause for e in net.of(a, U.CallEnded)]
        assert (cause.name, cause.retry, cause.status) == (name, retry, status)
        assert net.methods()[-2:] == [f"{status} INVITE", "ACK"]


def test_cause_table() -> None:
    table = {code: U.cause_for_status(code).name for code in
             (486, 600, 404, 484, 604, 408, 480, 488, 606, 401, 403, 407, 500)}
    assert table == {486: "busy", 600: "busy", 404: "bad_address", 484: "bad_address",
                     604: "bad_address", 408: "no_answer", 480: "no_answer", 488: "no_t38",
                     606: "no_t38", 401: "refused_by_trunk", 403: "refused_by_trunk",
                     407: "refused_by_trunk", 500: "failed"}
    assert [U.cause_for_status(c).retry for c in (486, 404, 408, 488, 403)] == [
        True, False, True, False, False]


def test_no_answer_retransmits_then_408() -> None:
    a, _b, net = agents()
    net.drop = lambda src, dst, message: dst == B_ADDR  # b is unreachable
    call_id, actions = a.invite("sip:b@10.0.0.2", 0.0)
    net.run(a, actions)
    net.pump(until=100.0)
    sent = [m for _, dst, m in net.wire if dst == B_ADDR]
    assert len(sent) == 7  # INVITE at 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5 (timer A)
    (cause,) = [e.cause for e in net.of(a, U.CallEnded)]
    assert (cause.name, cause.status) == ("no_answer", 408)
    assert call_id not in a.calls  # an ended call is forgotten 64*T1 later


def test_lost_200_is_retransmitted() -> None:
    a, b, net = agents(a_mode="on-request")
    lost = []

    def drop(src, dst, message):
        if isinstance(message, Response) and message.status == 200 and not lost:
            lost.append(message)
            return True
        return False

    net.drop = drop
    call_id = place_call(a, b, net)
    net.pump(until=net.now + 2)
    assert lost and net.of(a, U.CallAnswered)
    assert net.methods().count("ACK") == 1
    net.pump(until=net.now + 60)
    assert not net.of(b, U.CallEnded)  # the ACK stopped b's 2xx retransmission
    net.run(a, a.hangup(call_id, net.now))
    net.pump(until=net.now + 40)
    assert ended(a, net) == ["normal"] == ended(b, net)


def test_session_refresh_keeps_t38_media() -> None:
    a, b, net = agents(a_session=90, b_session=90)
    call_id = place_call(a, b, net)
    t38_before = net.of(a, U.MediaReady)[-1]
    # the bodies each side sent in the T.38 switch (re-INVITE and its 200)
    switch = [(src, m.body) for src, _, m in net.wire
              if m.cseq == (2, "INVITE") and (isinstance(m, Request) or m.status == 200)]
    body_of = dict(switch)
    assert b"m=image" in body_of[A_ADDR] and b"m=image" in body_of[B_ADDR]
    count = len(net.wire)
    net.pump(until=net.now + 600)  # ten minutes of fax: a refresh every 45 s
    refresh = [(src, m) for src, _, m in net.wire[count:] if m.cseq[1] == "INVITE"
               and (isinstance(m, Request) or m.status == 200)]
    assert len(refresh) >= 2 * 12
    for src, message in refresh:  # same description (o= version, port, T.38 attributes)
        assert message.body == body_of[src]
    assert net.of(a, U.MediaReady)[-1] == t38_before  # no new media event: nothing changed
    assert len(net.of(b, U.MediaReady)) == 2
    assert not net.of(a, U.CallEnded) and not net.of(b, U.CallEnded)
    net.run(a, a.hangup(call_id, net.now))
    net.pump(until=net.now + 40)
    assert ended(b, net) == ["normal"]


def test_session_expires_without_refresh() -> None:
    a, b, net = agents(a_session=90, b_session=90)
    call_id = place_call(a, b, net)
    refresher = a if a.calls[call_id].timer.we_refresh else b
    other = b if refresher is a else a
    start = len(net.wire)
    peer = B_ADDR if refresher is a else A_ADDR
    net.drop = lambda src, dst, m: dst == peer and isinstance(m, Request) \
        and m.method == "INVITE"
    net.pump(until=net.now + 200)
    assert [e.cause.name for e in net.of(other, U.CallEnded)] == ["session_expired"]
    assert "BYE" in [m.method for _, _, m in net.wire[start:] if isinstance(m, Request)]


def test_422_raises_the_interval() -> None:
    a, b, net = agents(a_session=90, b_session=1800, b_min_se=300)
    place_call(a, b, net, ring=None)
    wire = net.methods()
    assert wire[:5] == ["INVITE", "100 INVITE", "422 INVITE", "ACK", "INVITE"]
    invites = [m for _, _, m in net.wire if isinstance(m, Request) and m.method == "INVITE"]
    assert invites[1].get("Session-Expires").startswith("300")
    assert invites[1].cseq[0] == invites[0].cseq[0] + 1
    assert net.of(a, U.CallAnswered)


def test_options_unknown_methods_and_garbage() -> None:
    a, b, net = agents()
    sent = []

    def probe(data: bytes) -> Response | None:
        sent.clear()
        for action in b.receive(data, A_ADDR, 0.0):
            if isinstance(action, U.Transmit):
                sent.append(parse(action.data))
        return sent[0] if sent else None

    def request(method: str, extra: str = "") -> bytes:
        return (f"{method} sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;"
                f"branch=z9hG4bK{method}1;rport\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\n"
                f"Call-ID: c-{method}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}"
                f"Content-Length: 0\r\n\r\n").encode()

    ok = probe(request("OPTIONS"))
    assert ok.status == 200 and "INVITE" in ok.get("Allow") and ok.get("Accept")
    assert ok.vias[0].params["rport"] == "5060" and ok.vias[0].params["received"] == "10.0.0.1"
    assert probe(request("SUBSCRIBE")).status == 405
    assert probe(request("FROBNICATE")).status == 501
    assert probe(request("BYE")).status == 481
    assert probe(request("OPTIONS").replace(b"<sip:a@x>", b"<sip:a@x")).status == 400
    assert probe(request("OPTIONS").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)).status == 505
    for junk in (b"", b"\x00\xff" * 50, b"hello\r\n\r\n", request("OPTIONS")[:40],
                 b"SIP/2.0 200 OK\r\n\r\n", request("ACK")):
        assert probe(junk) is None


def test_rport_routes_responses_to_the_source() -> None:
    _a, b, _net = agents()
    data = (b"OPTIONS sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKn"
            b";rport\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: nat\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    (out,) = [x for x in b.receive(data, ("203.0.113.7", 40123), 0.0)
              if isinstance(x, U.Transmit)]
    assert out.destination == ("203.0.113.7", 40123)


class Registrar:
    """A registrar (and authenticating proxy) answering with digest challenges."""

    def __init__(self, addr, algorithm="SHA-256", password="pw", challenge_invites=False):
        self.addr = addr
        self.algorithm = algorithm
        self.password = password
        self.challenge_invites = challenge_invites
        self.seen: list[Request] = []
        self.forward_to: tuple[str, int] | None = None

    def __call__(self, net: Net, src, data: bytes) -> None:
        message = parse(data)
        if isinstance(message, Response):
            return
        self.seen.append(message)
        if message.method == "ACK":
            return
        header = "Authorization" if message.method == "REGISTER" else "Proxy-Authorization"
        needs = message.method == "REGISTER" or (self.challenge_invites
                                                and message.method == "INVITE"
                                                and not message.to.tag)
        user = None
        if message.get(header):
            user = auth.verify(message.get(header), message.method,
                               {"a": self.password}.get, realm="trunk", nonce="n0nce")
        if needs and user is None:
            status = 401 if message.method == "REGISTER" else 407
            response = self._reply(message, status)
            response.set("WWW-Authenticate" if status == 401 else "Proxy-Authenticate",
                         auth.challenge("trunk", "n0nce", algorithm=self.algorithm))
        elif message.method == "REGISTER":
            response = self._reply(message, 200)
            response.set("Contact", message.get("Contact") + ";expires=600")
        else:
            response = self._reply(message, 486)
        net.queue.append((self.addr, src, bytes(response)))

    @staticmethod
    def _reply(message: Request, status: int) -> Response:
        return Response(status, headers=[("Via", v) for v in message.get_all("Via")] + [
            ("From", message.get("From")), ("To", message.get("To") + ";tag=reg"),
            ("Call-ID", message.call_id), ("CSeq", message.get("CSeq"))])


def test_register_with_digest_and_refresh() -> None:
    reg_addr = ("10.0.0.9", 5060)
    creds = auth.Credentials("a", "pw")
    a = U.UserAgent(U.UaConfig("10.0.0.1", 5060, user="a", registrar=reg_addr,
                               credentials=creds, register_expires=600))
    net = Net(a)
    registrar = Registrar(reg_addr)
    net.intercept[reg_addr] = registrar
    net.run(a, a.register(0.0))
    net.pump()
    assert [r.method for r in registrar.seen] == ["REGISTER", "REGISTER"]
    first, second = registrar.seen
    assert first.get("Authorization") is None and "SHA-256" in second.get("Authorization")
    assert second.cseq[0] == first.cseq[0] + 1 and second.call_id == first.call_id
    assert [e.expires for e in net.of(a, U.Registered)] == [600] and a.registered
    assert "pw" not in repr(a.config) and "pw" not in repr(a)
    net.pump(until=600.0)  # refreshed before it expires, at 600 - 60 s
    assert len(net.of(a, U.Registered)) == 2 and registrar.seen[-1].cseq[0] > second.cseq[0]
    # a wrong password: one retry, then "refused by trunk"
    bad = U.UserAgent(U.UaConfig("10.0.0.3", 5060, user="a", registrar=reg_addr,
                                 credentials=auth.Credentials("a", "nope")))
    net2 = Net(bad)
    net2.intercept[reg_addr] = Registrar(reg_addr, algorithm="MD5")
    net2.run(bad, bad.register(0.0))
    net2.pump()
    (failed,) = net2.of(bad, U.RegistrationFailed)
    assert (failed.cause.name, failed.cause.status, failed.cause.retry) == (
        "refused_by_trunk", 401, False)


def test_untrusted_source_refused_once_registered() -> None:
    reg_addr = ("10.0.0.9", 5060)
    a = U.UserAgent(U.UaConfig("10.0.0.1", 5060, user="a", registrar=reg_addr,
                               credentials=auth.Credentials("a", "pw")))
    net = Net(a)
    net.intercept[reg_addr] = Registrar(reg_addr)
    net.run(a, a.register(0.0))
    net.pump()
    invite = (b"INVITE sip:a@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx\r\n"
              b"From: <sip:evil@x>;tag=1\r\nTo: <sip:a@y>\r\nCall-ID: scan\r\nCSeq: 1 INVITE\r\n"
              b"Contact: <sip:evil@198.51.100.1>\r\nContent-Length: 0\r\n\r\n")
    (reply,) = [parse(x.data) for x in a.receive(invite, ("198.51.100.1", 5060), 1.0)
                if isinstance(x, U.Transmit)]
    assert reply.status == 403 and not a.calls
    accepted = [parse(x.data).status for x in a.receive(invite, reg_addr, 1.0)
                if isinstance(x, U.Transmit)]
    assert accepted[0] == 100


def test_invite_through_authenticating_proxy() -> None:
    proxy = ("10.0.0.9", 5060)
    a = U.UserAgent(U.UaConfig("10.0.0.1", 5060, user="a", proxy=proxy,
                               credentials=auth.Credentials("a", "pw")))
    net = Net(a)
    registrar = Registrar(proxy, algorithm="MD5", challenge_invites=True)
    net.intercept[proxy] = registrar
    net.run(a, a.invite("sip:200@example.com", 0.0)[1])
    net.pump(until=50.0)
    invites = [r for r in registrar.seen if r.method == "INVITE"]
    assert len(invites) == 2 and invites[1].get("Proxy-Authorization")
    assert invites[1].cseq[0] == 2 and invites[1].from_.tag == invites[0].from_.tag
    (cause,) = [e.cause for e in net.of(a, U.CallEnded)]
    assert cause.name == "busy"  # the authenticated INVITE got the proxy's 486
    assert [r.method for r in registrar.seen].count("ACK") == 2  # for the 407 and the 486


def test_oversized_and_absurd_content_length() -> None:
    _a, b, _net = agents()
    data = (b"INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKq\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: big\r\nCSeq: 1 INVITE\r\n"
            b"Content-Length: 99999999999\r\n\r\n")
    for extra, status in ((b"x", 400), (b"x" * 70000, 413)):
        replies = [parse(x.data).status for x in b.receive(data + extra, A_ADDR, 0.0)
                   if isinstance(x, U.Transmit)]
        assert replies == [status] and not b.calls


def _established() -> tuple[U.UserAgent, U.UserAgent, Net, str]:
    a, b, net = agents()
    call_id = place_call(a, b, net)
    return a, b, net, call_id


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_ua_receive(data: st.DataObject) -> None:
    """Mutations of every message of a real call, fed to a UA in the middle of a call:
    nothing escapes receive() (not even SipError), and every reply it sends parses."""
    a, b, net, _call_id = _established()
    wire = [(src, bytes(m)) for src, _, m in net.wire]
    src, blob = data.draw(st.sampled_from(wire))
    blob = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(blob)))
        op = data.draw(st.integers(0, 2))
        if op == 0:
            del blob[at:at + data.draw(st.integers(1, 30))]
        elif op == 1:
            blob[at:at] = data.draw(st.sampled_from(
                [b",", b";", b"\r\n", b" ", b"<", b"\"", b"0", b"99999999999", b"SIP/2.0",
                 b"tag=", b"\x00", b"\xff", b"INVITE", b"Via: SIP/2.0/UDP x;branch=z9hG4bKq\r\n"]))
        elif at < len(blob):
            blob[at] = data.draw(st.integers(0, 255))
    for agent in (a, b):
        for action in agent.receive(bytes(blob), src, net.now + 1):
            if isinstance(action, U.Transmit):
                parse(action.data)
                assert 1 <= action.destination[1] <= 65535


def test_tcp_call_has_no_retransmissions() -> None:
    a = U.UserAgent(U.UaConfig("10.0.0.1", 5060, transport="TCP", user="a", audio_port=4000,
                               t38_port=4002))
    b = U.UserAgent(U.UaConfig("10.0.0.2", 5060, transport="TCP", user="b", audio_port=5000,
                               t38_port=5002, t38_mode="on-request"))
    net = Net(a, b)
    call_id = place_call(a, b, net)
    net.pump(until=net.now + 60)
    assert net.methods() == ["INVITE", "100 INVITE", "180 INVITE", "200 INVITE", "ACK",
                             "INVITE", "100 INVITE", "200 INVITE", "ACK"]
    first = net.wire[0][2]
    assert first.vias[0].transport == "TCP" and "transport=tcp" in first.get("Contact")
    net.run(a, a.hangup(call_id, net.now))
    net.pump(until=net.now + 60)
    assert ended(a, net) == ["normal"] == ended(b, net) and net.timers == {}


def test_received_and_rport_learned_from_registrar() -> None:
    reg_addr = ("10.0.0.9", 5060)
    a = U.UserAgent(U.UaConfig("10.0.0.1", 5060, user="a", registrar=reg_addr,
                               credentials=auth.Credentials("a", "pw")))
    net = Net(a)
    registrar = Registrar(reg_addr)

    def natted(net: Net, src, data: bytes) -> None:  # as seen behind a NAT
        message = parse(data)
        top = message.get_all("Via")[0] + ";received=203.0.113.5"
        message.set("Via", top.replace(";rport", ";rport=40000"))
        registrar(net, src, bytes(message))

    net.intercept[reg_addr] = natted
    net.run(a, a.register(0.0))
    net.pump()
    assert a.public == ("203.0.113.5", 40000)
    net.pump(until=4000.0)  # the refresh registers the public address
    assert "203.0.113.5:40000" in registrar.seen[-1].get("Contact")


def test_cancel_before_any_provisional_waits_for_one() -> None:
    a, b, net = agents()
    call_id, actions = a.invite("sip:b@10.0.0.2", 0.0)
    net.run(a, actions)
    net.run(a, a.hangup(call_id, 0.0))  # before b has even seen the INVITE
    assert ended(a, net) == ["canceled"]
    net.pump(until=100.0)  # b's 100 Trying arrives: now the CANCEL goes out
    assert net.methods()[:6] == ["INVITE", "100 INVITE", "CANCEL", "200 CANCEL", "487 INVITE",
                                 "ACK"]
    assert ended(b, net) == ["caller_canceled"] and net.timers == {}


def test_callee_sends_the_t38_reinvite_and_glare_resolves() -> None:
    a, b, net = agents(a_mode="on-request", b_mode="reinvite")
    place_call(a, b, net)
    assert net.methods()[5:] == ["INVITE", "100 INVITE", "200 INVITE", "ACK"]
    assert net.wire[5][0] == B_ADDR  # b, the callee, switched to T.38
    assert [m.kind for m in net.of(a, U.MediaReady)] == ["audio", "t38"]
    # both in "reinvite" mode: the re-INVITEs cross, both get 491 and retry apart
    a, b, net = agents(a_mode="reinvite", b_mode="reinvite")
    place_call(a, b, net)
    net.pump(until=net.now + 10)
    wire = net.methods()
    assert wire.count("491 INVITE") == 2
    assert [m.kind for m in net.of(a, U.MediaReady)][-1] == "t38"
    assert [m.kind for m in net.of(b, U.MediaReady)][-1] == "t38"
    t38_offers = [m for _, _, m in net.wire if isinstance(m, Request) and m.method == "INVITE"
                  and b"m=image" in m.body]
    assert len(t38_offers) == 3  # the two that crossed and the one retry that won


@pytest.mark.parametrize("run", range(8))
def test_glare_retry_delays_follow_rfc3261_14_1(run: int) -> None:
    # the caller (a) owns the Call-ID: it retries 2.1-4 s after the 491, the callee 0-2 s
    a, b, net = agents(a_mode="reinvite", b_mode="reinvite")
    call_id = place_call(a, b, net, answer=False)
    net.run(b, b.answer(call_id, net.now))  # both re-INVITE to T.38 at once
    delays: dict[str, float] = {}
    while len(delays) < 2 and net.step(net.now + 10):
        for (ident, key), deadline in net.timers.items():
            name = "a" if ident == id(a) else "b"
            if key[0] == "reinvite" and name not in delays:
                delays[name] = deadline - net.now
    assert 2.1 <= delays["a"] <= 4.0 and 0.0 <= delays["b"] <= 2.0


def test_delayed_offer_answer_in_ack() -> None:
    a, b, net = agents(a_mode="on-request", b_mode="on-request")
    invite = (b"INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKdo"
              b"\r\nFrom: <sip:a@10.0.0.1>;tag=fa\r\nTo: <sip:b@10.0.0.2>\r\nCall-ID: late\r\n"
              b"CSeq: 1 INVITE\r\nContact: <sip:a@10.0.0.1>\r\nContent-Length: 0\r\n\r\n")
    net.run(b, b.receive(invite, A_ADDR, 0.0))
    (incoming,) = net.of(b, U.IncomingCall)
    assert not incoming.offers_t38
    net.run(b, b.answer("late", 0.0))
    ok = parse(net.queue[-1][2])
    assert ok.status == 200 and b"m=audio 5000" in ok.body and not net.of(b, U.MediaReady)
    net.queue.clear()
    answer = b"v=0\r\no=- 9 9 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" \
             b"m=audio 4000 RTP/AVP 8\r\n"
    ack = (b"ACK sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKack"
           b"\r\nFrom: <sip:a@10.0.0.1>;tag=fa\r\nTo: <sip:b@10.0.0.2>;tag=" + ok.to.tag.encode()
           + b"\r\nCall-ID: late\r\nCSeq: 1 ACK\r\nContent-Type: application/sdp\r\n"
           b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer)
    net.run(b, b.receive(ack, A_ADDR, 0.1))
    (media,) = net.of(b, U.MediaReady)
    assert (media.kind, media.address, media.port, media.codec) == ("audio", "10.0.0.1", 4000,
                                                                     "PCMA")


def test_require_unknown_extension_is_420() -> None:
    _a, b, _net = agents()
    invite = (b"INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKr\r\n"
              b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: req\r\nCSeq: 1 INVITE\r\n"
              b"Require: 100rel, timer\r\nContact: <sip:a@10.0.0.1>\r\nContent-Length: 0\r\n\r\n")
    replies = [parse(x.data) for x in b.receive(invite, A_ADDR, 0.0) if isinstance(x, U.Transmit)]
    assert [r.status for r in replies] == [100, 420] and replies[1].get("Unsupported") == "100rel"


def test_2xx_never_acked_ends_with_bye() -> None:
    a, b, net = agents(a_mode="on-request")
    net.drop = lambda src, dst, m: isinstance(m, Request) and m.method == "ACK"
    place_call(a, b, net)
    net.pump(until=net.now + 40)
    assert ended(b, net) == ["failed"]
    assert "BYE" in [m.method for src, _, m in net.wire if src == B_ADDR
                     and isinstance(m, Request)]


def test_second_fork_2xx_is_acked_and_hung_up_once() -> None:
    a, b, net = agents(a_mode="on-request")
    call_id = place_call(a, b, net)
    ok = next(m for _, _, m in net.wire if isinstance(m, Response) and m.status == 200)
    fork = ok.copy()
    fork.set("To", ok.get("To").replace(f"tag={ok.to.tag}", "tag=fork2"))
    fork.set("Contact", "<sip:b2@10.0.0.7:5062>")
    sent = []
    for _ in range(2):  # the fork's 2xx and its retransmission
        sent.append([(parse(x.data), x.destination) for x in a.receive(bytes(fork), B_ADDR, 1.0)
                     if isinstance(x, U.Transmit)])
    assert [(m.method, d) for m, d in sent[0]] == [("ACK", ("10.0.0.7", 5062)),
                                                  ("BYE", ("10.0.0.7", 5062))]
    assert sent[0][1][0].to.tag == "fork2"
    assert [m.method for m, _ in sent[1]] == ["ACK"]  # no second BYE
    assert a.state_of(call_id) is U.CallState.UP and not net.of(a, U.CallEnded)


def test_calls_beyond_max_calls_get_486() -> None:
    b = U.UserAgent(U.UaConfig("10.0.0.2", 5060, user="b", audio_port=5000, max_calls=2))
    statuses = []
    for n in range(3):
        invite = (f"INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{n}"
                  f"\r\nFrom: <sip:a@x>;tag={n}\r\nTo: <sip:b@y>\r\nCall-ID: flood-{n}\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:a@10.0.0.1>\r\nContent-Length: 0\r\n\r\n")
        statuses.append([parse(x.data).status for x in b.receive(invite.encode(), A_ADDR, 0.0)
                         if isinstance(x, U.Transmit)])
    assert statuses == [[100], [100], [100, 486]] and len(b.calls) == 2
