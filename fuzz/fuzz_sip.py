"""atheris fuzz target for the SIP layer, :mod:`fastfax.sip` (pure Python).

Run with ``python3 fuzz/fuzz_sip.py -max_total_time=600 CORPUS_DIR``. The input is one
datagram; the first byte picks how a TCP :class:`~fastfax.sip.message.Framer` is fed the
same bytes (chunk size) and whether the user agent that receives it is idle or in the
middle of a call. Oracles: only :class:`fastfax.sip.SipError` escapes ``parse``, the
structured header views (Via, From, To, Contact, Route, CSeq), the SDP parser and the
framer; a message that parses is written and parsed again to the same start line,
headers and body; the framer yields the same message as the datagram parser; nothing at
all escapes :meth:`~fastfax.sip.ua.UserAgent.receive`, and whatever it sends parses and
goes to a valid port. An empty corpus directory is seeded with a few valid messages.
"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports(include=["fastfax.sip"]):
    from fastfax.sip import SipError, sdp
    from fastfax.sip import ua as U
    from fastfax.sip.message import Framer, Request, parse, parse_address

PEER = ("192.0.2.9", 5080)


def _agent() -> U.UserAgent:
    return U.UserAgent(U.UaConfig("192.0.2.1", 5060, user="fax", audio_port=4000,
                                  t38_port=4002, t38_mode="on-request"))


def _in_call() -> U.UserAgent:
    """A UA that answered the seed INVITE (so in-dialog requests reach a dialog)."""
    agent = _agent()
    agent.receive(SEEDS_INVITE_AUDIO, PEER, 0.0)
    for call_id in list(agent.calls):
        agent.answer(call_id, 0.1)
    return agent


def _feed_agent(agent: U.UserAgent, data: bytes) -> None:
    for action in agent.receive(data, PEER, 1.0):
        if isinstance(action, U.Transmit):
            parse(action.data)
            assert 1 <= action.destination[1] <= 65535, action.destination

SEEDS = {
    "invite": (
        b"INVITE sip:200@192.0.2.1:5060;transport=udp SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.9:5080;rport;branch=z9hG4bKabc, SIP/2.0/TCP [2001:db8::1]\r\n"
        b"v: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1;received=192.0.2.4\r\n"
        b"Max-Forwards: 70\r\nf: \"Gate Way\" <sip:gw@example.com>;tag=1\r\nt: sip:200@ex.com\r\n"
        b"i: abc@host\r\nCSeq: 1 INVITE\r\nm: <sip:gw@192.0.2.9:5080;ob>;expires=60\r\n"
        b"Record-Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n"
        b"Session-Expires: 1800;refresher=uac\r\nc: application/sdp\r\nl: 132\r\n\r\n"
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
        b"m=image 4000 udptl t38\r\na=T38FaxVersion:0\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n"
    ),
    "response": (
        b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx;rport=5060\r\n"
        b"From: <sip:a@b>;tag=x\r\nTo: <sip:a@b>;tag=y\r\nCall-ID: q\r\nCSeq: 2 REGISTER\r\n"
        b"WWW-Authenticate: Digest realm=\"b\", nonce=\"n\", qop=\"auth\", algorithm=SHA-256\r\n"
        b"Content-Length: 0\r\n\r\n"
    ),
}


SEEDS_INVITE_AUDIO = (
    b"INVITE sip:fax@192.0.2.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.9:5080;rport;branch=z9hG4bKs1\r\n"
    b"From: <sip:caller@example.com>;tag=ft\r\nTo: <sip:fax@192.0.2.1>\r\nCall-ID: seed-1\r\n"
    b"CSeq: 1 INVITE\r\nContact: <sip:caller@192.0.2.9:5080>\r\nMax-Forwards: 70\r\n"
    b"Session-Expires: 1800\r\nContent-Type: application/sdp\r\nContent-Length: 89\r\n\r\n"
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 0 8\r\n"
)
SEEDS["invite-audio"] = SEEDS_INVITE_AUDIO
SEEDS["bye"] = (
    b"BYE sip:fax@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKb1\r\n"
    b"From: <sip:caller@example.com>;tag=ft\r\nTo: <sip:fax@192.0.2.1>;tag=TAG\r\n"
    b"Call-ID: seed-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
)


def _check_views(message) -> None:
    for name in ("vias", "contacts", "cseq", "from_", "to"):
        try:
            getattr(message, name)
        except SipError:
            pass
    try:
        for value in message.get_all("Route") + message.get_all("Record-Route"):
            parse_address(value)
    except SipError:
        pass
    if message.body:
        try:
            sdp.parse(message.body)
        except SipError:
            pass


def _same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, Request):
        assert (a.method, str(a.uri)) == (b.method, str(b.uri)), "start line differs"
    else:
        assert (a.status, a.reason) == (b.status, b.reason), "status line differs"
    strip = [(n, v) for n, v in a.headers if n != "Content-Length"]
    assert strip == [(n, v) for n, v in b.headers if n != "Content-Length"], "headers differ"
    assert a.body == b.body, "body differs"


def test_one_input(data: bytes) -> None:
    if not data:
        return
    chunk = 1 + data[0] % 64
    in_call = data[0] >= 224
    data = data[1:]
    _feed_agent(_in_call() if in_call else _agent(), data)
    try:
        message = parse(data)
    except SipError:
        message = None
    if message is not None:
        _check_views(message)
        again = parse(bytes(message))
        _same(message, again)
    framer = Framer()
    got = []
    try:
        for i in range(0, len(data), chunk):
            framer.feed(data[i:i + chunk])
            while (m := framer.next_message()) is not None:
                got.append(m)
    except SipError:
        return
    if got and message is not None and message.get("Content-Length") is not None:
        _same(got[0], message)


def seed_corpus(directory: str) -> None:
    """Write the seed messages into an empty corpus ``directory``."""
    if os.listdir(directory):
        return
    for name, blob in SEEDS.items():
        with open(os.path.join(directory, name), "wb") as fh:
            fh.write(b"\x07" + blob)


def main() -> None:
    dirs = [arg for arg in sys.argv[1:] if not arg.startswith("-") and os.path.isdir(arg)]
    if dirs:
        seed_corpus(dirs[0])
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
