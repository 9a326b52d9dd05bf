"""fastfax.sip.message: RFC 4475 torture messages, round trips, limits, the TCP framer, fuzz.

The torture messages are transcribed from RFC 4475 ("Session Initiation Protocol (SIP)
Torture Test Messages", section 3.1.1 valid and 3.1.2 invalid); the section and the
message's name in the RFC are given with each. Where a transcribed message has a body,
its Content-Length is recomputed from the body as transcribed.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastfax.errors import FaxError
from fastfax.sip import SipError
from fastfax.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE,
    Framer,
    Request,
    Response,
    SipUri,
    parse,
    parse_address,
    parse_uri,
    parse_via,
    split_list,
)

SDP_150 = (b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\n"
           b"t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\n"
           b"a=rtpmap:31 LPC\r\n")


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


# RFC 4475 3.1.1.1 "wsinv": A Short Tortuous INVITE.
WSINV = crlf(
    "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\n"
    "TO :\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\n"
    'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\n  ;\n  tag = 98asjd8\n'
    "MaX-fOrWaRdS: 0068\nCall-ID: wsinv.ndaksdj@192.0.2.1\n"
    f"Content-Length   : {len(SDP_150)}\ncseq: 0009\n  INVITE\n"
    "Via  : SIP  /   2.0\n /UDP\n    192.0.2.2;branch=390skdjuw\ns :\n"
    "NewFangledHeader:   newfangled value\n continued newfangled value\n"
    "UnknownHeaderWithUnusualValue: ;;,,;;,;\nContent-Type: application/sdp\n"
    "Route:\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\n"
    "v:  SIP  / 2.0  / TCP     spindle.example.com   ;\n  branch  =   z9hG4bK9ikj8  ,\n"
    " SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n z9hG4bK30239\n"
    'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\n      newvalue ;\n'
    "  secondparam ; q = 0.33\n\n") + SDP_150

# RFC 4475 3.1.1.2 "intmeth": Wide Range of Valid Characters.
INTMETH = (
    b"!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/"
    b"crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\r\n"
    b'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn\'t+it$/crazy?,/;;*'
    b"@example.com>\r\n"
    b"From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="
    b'"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9"'
    b";tag=_token~1'+`*%!-.\r\n"
    b"Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n"
    b"CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n"
    b"Max-Forwards: 255\r\n"
    b"extensionHeader-!.%*+_`'~:\xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb\r\n"
    b"Content-Length: 0\r\n\r\n")

# RFC 4475 3.1.1.3 "esc01": Valid Use of the % Escaping Mechanism.
ESC01_BODY = (b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
              b"t=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\n"
              b"a=rtpmap:31 LPC\r\n")
ESC01 = crlf(
    "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\n"
    "To: sip:%75se%72@example.com\nFrom: <sip:I%20have%20spaces@example.net>;tag=938\n"
    "Max-Forwards: 87\ni: esc01.239409asdfakjkn23onasd0-3234\nCSeq: 234234 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\nC: application/sdp\n"
    "Contact:\n  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>\n"
    f"Content-Length: {len(ESC01_BODY)}\n\n") + ESC01_BODY

# RFC 4475 3.1.1.6 "lwsdisp": No LWS between Display Name and <.
LWSDISP = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\n"
    "From: caller<sip:caller@example.com>;tag=323\nMax-Forwards: 70\n"
    "Call-ID: lwsdisp.1234abcd@funky.example.com\nCSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n")

# RFC 4475 3.1.1.10 "semiuri": Semicolon-Separated Parameters in URI User Part.
SEMIURI = crlf(
    "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\nTo: sip:j_user@example.com\n"
    "From: sip:caller@example.org;tag=33242\nMax-Forwards: 3\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\nAccept: application/sdp\n"
    "Call-ID: semiuri.0ha0isndaksdj\nCSeq: 8 OPTIONS\nl: 0\n\n")

# RFC 4475 3.1.1.11 "transports": Varied and Unknown Transport Types.
TRANSPORTS = crlf(
    "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\n"
    "From: <sip:caller@example.com>;tag=323\nMax-Forwards: 70\n"
    "Call-ID: transports.kijh4akdnaqjkwendsasfdj\nAccept: application/sdp\nCSeq: 60 OPTIONS\n"
    "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\n"
    "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\n"
    "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\n"
    "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\n"
    "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\nl: 0\n\n")

# RFC 4475 3.1.1.13 "unreason": Unusual Reason Phrase.
UNREASON = crlf(
    "SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f"
    "\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e"
    "\u0441\u0442\u043e\u0435\n"
    "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n"
    "Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n"
    "CSeq: 35 INVITE\nFrom: sip:user@example.com;tag=11141343\nTo: sip:user@example.edu;tag=2229\n"
    "Content-Length: 0\nContact: <sip:user@host198.example.com>\n\n")

# RFC 4475 3.1.1.14 "noreason": Empty Reason Phrase.
NOREASON = crlf(
    "SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n"
    "Call-ID: noreason.asndj203insdf99223ndf\nCSeq: 35 INVITE\n"
    "From: <sip:user@example.com>;tag=39ansfi3\nTo: <sip:user@example.edu>;tag=902jndnke3\n"
    "Content-Length: 0\nContact: <sip:user@host105.example.com>\n\n")


def _options(start: str, *, extra: str = "", cseq: str = "1 OPTIONS", cl: str = "0") -> bytes:
    return crlf(f"{start}\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=1\n"
                f"Max-Forwards: 70\nCall-ID: x@y\nCSeq: {cseq}\n"
                f"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\n{extra}Content-Length: {cl}\n\n")


# RFC 4475 section 3.1.2: messages an element must refuse (parse() raises).
INVALID = {
    # 3.1.2.2 "clerr": Content-Length larger than the message.
    "clerr": _options("INVITE sip:user@example.com SIP/2.0", cseq="1 INVITE", cl="9999"),
    # 3.1.2.3 "ncl": negative Content-Length.
    "ncl": _options("INVITE sip:user@example.com SIP/2.0", cseq="1 INVITE", cl="-999"),
    # 3.1.2.4 "scalar02": CSeq beyond 2**31 (request).
    "scalar02": _options("REGISTER sip:example.com SIP/2.0",
                         cseq="36893488147419103232 REGISTER"),
    # 3.1.2.5 "scalarlg": the same in a response.
    "scalarlg": crlf("SIP/2.0 503 Service Unavailable\nVia: SIP/2.0/TCP host129.example.com;"
                     "branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\nTo: <sip:user@example.com>\n"
                     "From: <sip:other@example.net>;tag=2easdjfejw\n"
                     "CSeq: 36893488147419103232 OPTIONS\nCall-ID: scalarlg.noase0of0234hn2\n"
                     "Content-Length: 0\n\n"),
    # 3.1.2.7 "ltgtruri": <> around the Request-URI.
    "ltgtruri": _options("INVITE <sip:user@example.com> SIP/2.0", cseq="1 INVITE"),
    # 3.1.2.8 "lwsruri": LWS inside the Request-URI.
    "lwsruri": _options("INVITE sip:user@example.com; lr SIP/2.0", cseq="1 INVITE"),
    # 3.1.2.9 "lwsstart": several SP separating the Request-Line's elements.
    "lwsstart": _options("INVITE  sip:user@example.com  SIP/2.0", cseq="1 INVITE"),
    # 3.1.2.10 "trws": SP after the SIP-Version.
    "trws": _options("OPTIONS sip:remote-target@example.com SIP/2.0  "),
    # 3.1.2.11 "escruri": escaped headers in the Request-URI.
    "escruri": _options("INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0",
                        cseq="1 INVITE"),
    # 3.1.2.19 "mismatch01": CSeq method differs from the request method.
    "mismatch01": _options("OPTIONS sip:user@example.com SIP/2.0", cseq="8 INVITE"),
    # 3.1.2.21 "bigcode": an absurd status code.
    "bigcode": crlf("SIP/2.0 4294967301 better not break the receiver\n"
                    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\nCall-ID: bigcode.a\n"
                    "CSeq: 353494 INVITE\nFrom: <sip:user@example.com>;tag=39ansfi3\n"
                    "To: <sip:user@example.edu>;tag=902jndnke3\nContent-Length: 0\n\n"),
}


def _no_length(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [h for h in headers if h[0] != "Content-Length"]


def test_wsinv() -> None:
    msg = parse(WSINV)
    assert isinstance(msg, Request) and msg.method == "INVITE"
    assert msg.uri.user == "vivekg" and msg.uri.params == {"unknownparam": None}
    assert msg.to.tag == "1918181833n" and msg.to.display is None
    assert msg.from_.display == 'J Rosenberg \\"' and msg.from_.tag == "98asjd8"
    assert msg.get("Max-Forwards") == "0068" and msg.cseq == (9, "INVITE")
    vias = msg.vias
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"), ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239")]
    assert msg.get("Subject") == ""
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = msg.contacts
    assert contact.display == 'Quoted string ""' and contact.params == {
        "newparam": "newvalue", "secondparam": None, "q": "0.33"}
    route = parse_address(msg.get_all("Route")[0])
    assert isinstance(route.uri, SipUri) and "lr" in route.uri.params
    assert msg.body == SDP_150


def test_intmeth() -> None:
    msg = parse(INTMETH)
    assert isinstance(msg, Request) and msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert "pas$wo" not in repr(msg.uri)  # the password is hidden in reprs


def test_esc01_and_small_valid_ones() -> None:
    msg = parse(ESC01)
    assert msg.uri.user == "sips%3Auser%40example.com" and msg.uri.host == "example.net"
    assert msg.to.uri.user == "%75se%72"
    (contact,) = msg.contacts
    assert contact.uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    assert msg.get("Content-Type") == "application/sdp" and msg.body == ESC01_BODY
    assert parse(LWSDISP).from_.display == "caller"
    assert parse(SEMIURI).uri.user == "user;par=u%40example.net"
    transports = [v.transport for v in parse(TRANSPORTS).vias]
    assert transports == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    unreason = parse(UNREASON)
    assert isinstance(unreason, Response) and unreason.status == 200
    assert unreason.reason.startswith("= 2**3 * 5**2 \u043d\u043e")
    noreason = parse(NOREASON)
    assert noreason.status == 100 and noreason.reason == "Trying"  # empty: default phrase


@pytest.mark.parametrize("name", sorted(INVALID))
def test_rfc4475_invalid(name: str) -> None:
    with pytest.raises(SipError):
        parse(INVALID[name])


def test_invalid_header_values() -> None:
    # RFC 4475 3.1.2.6 "quotbal": unterminated quoted display name in To.
    with pytest.raises(SipError):
        parse_address('"Mr. J. User <sip:j.user@example.com>')
    # 3.1.2.15 "regbadct": an addr-spec with ? must be in <>.
    with pytest.raises(SipError):
        parse_address("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    # 3.1.2.16 "badaspec": whitespace inside <>.
    with pytest.raises(SipError):
        parse_address('"Watson, Thomas" < sip:t.watson@example.org >')
    # 3.1.2.17 "baddn": an unquoted display name with a comma.
    with pytest.raises(SipError):
        parse_address("Bell, Alexander <sip:a.g.bell@example.com>;tag=43")
    # 3.1.2.1 "badinv01": extraneous separators in Via.
    msg = parse(_options("OPTIONS sip:u@example.com SIP/2.0").replace(
        b"branch=z9hG4bK1", b";;,;,,"))
    with pytest.raises(SipError):
        msg.vias  # noqa: B018


def test_badvers_is_505() -> None:
    # RFC 4475 3.1.2.18 "badvers": SIP/7.0 -> 505 Version Not Supported.
    with pytest.raises(SipError) as info:
        parse(_options("OPTIONS sip:t.watson@example.org SIP/7.0"))
    assert info.value.status == 505
    assert isinstance(info.value, FaxError) and isinstance(info.value, ValueError)


def test_round_trip_and_build() -> None:
    for blob in (WSINV, INTMETH, ESC01, TRANSPORTS, UNREASON):
        msg = parse(blob)
        again = parse(bytes(msg))
        assert _no_length(again.headers) == _no_length(msg.headers) and again.body == msg.body
    req = Request("INVITE", parse_uri("sip:200@192.0.2.1:5060;transport=udp"), [
        ("Via", "SIP/2.0/UDP 192.0.2.9:5080;branch=z9hG4bKa;rport"), ("From", "<sip:a@b>;tag=1"),
        ("To", "<sip:200@192.0.2.1>"), ("Call-ID", "c"), ("CSeq", "1 INVITE")], b"body")
    text = bytes(req)
    assert text.startswith(b"INVITE sip:200@192.0.2.1:5060;transport=udp SIP/2.0\r\n")
    assert b"Content-Length: 4\r\n\r\nbody" in text
    assert parse(text).vias[0].params == {"branch": "z9hG4bKa", "rport": None}


def test_compact_forms_and_lists() -> None:
    msg = parse(crlf("BYE sip:a@b SIP/2.0\nv: SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/UDP h2\n"
                     "v: SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bK3;received=192.0.2.1\n"
                     "f: <sip:x@y>;tag=1\nt: <sip:a@b>;tag=2\ni: c\nCSeq: 2 BYE\n"
                     'Record-Route: <sip:p1;lr>, "A, B" <sip:p2;lr>\nRecord-Route: <sip:p3;lr>\n'
                     "k: timer, 100rel\nl: 0\n\n"))
    assert [v.host for v in msg.vias] == ["h1", "h2", "[2001:db8::9]"]
    assert msg.vias[2].port == 5070 and msg.vias[2].params["received"] == "192.0.2.1"
    routes = [parse_address(r) for r in msg.get_all("Record-Route")]
    assert [r.uri.host for r in routes] == ["p1", "p2", "p3"] and routes[1].display == "A, B"
    assert msg.get_all("Supported") == ["timer", "100rel"]
    assert split_list('a, "b,c" <sip:x,y>, d') == ['a', '"b,c" <sip:x,y>', "d"]
    assert parse_via("SIP/2.0/UDP 10.0.0.1:5060;rport=5062;branch=z9hG4bKx").params[
        "rport"] == "5062"
    uri = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=hi")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "secret", "[2001:db8::1]", 5061)
    assert uri.params == {"transport": "tcp", "lr": None} and uri.headers == "subject=hi"
    assert str(uri) == "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=hi"
    assert "secret" not in repr(uri)


def test_limits() -> None:
    with pytest.raises(SipError) as info:
        parse(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: " + b"a" * MAX_MESSAGE + b"\r\n\r\n")
    assert info.value.status == 413
    many = "".join(f"X-{i}: v\n" for i in range(MAX_HEADERS + 1))
    with pytest.raises(SipError):
        parse(_options("OPTIONS sip:a@b SIP/2.0", extra=many))
    with pytest.raises(SipError):  # header injection: a bare CR or NUL inside a value
        parse(_options("OPTIONS sip:a@b SIP/2.0", extra="X-Evil: a\rInjected: b\n"))
    with pytest.raises(SipError):  # a missing mandatory header
        parse(crlf("OPTIONS sip:a@b SIP/2.0\nCall-ID: x\nCSeq: 1 OPTIONS\n\n"))


def test_framer() -> None:
    stream = b"\r\n\r\n" + WSINV + NOREASON + b"\r\n" + ESC01
    for size in (1, 7, 64, len(stream)):
        framer = Framer()
        got = []
        for i in range(0, len(stream), size):
            framer.feed(stream[i:i + size])
            while (msg := framer.next_message()) is not None:
                got.append(msg)
        assert [m.call_id for m in got] == ["wsinv.ndaksdj@192.0.2.1",
                                            "noreason.asndj203insdf99223ndf",
                                            "esc01.239409asdfakjkn23onasd0-3234"]
        assert got[0].body == SDP_150 and got[2].body == ESC01_BODY
    framer = Framer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")
    with pytest.raises(SipError):
        framer.next_message()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([WSINV, INTMETH, ESC01, TRANSPORTS, NOREASON]), st.data())
def test_fuzz_mutations(seed: bytes, data: st.DataObject) -> None:
    """Mutated real messages: only SipError escapes, and what parses round trips."""
    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.integers(0, 2))
        at = data.draw(st.integers(0, len(blob)))
        if op == 0 and blob:
            del blob[at:at + data.draw(st.integers(1, 40))]
        elif op == 1:
            blob[at:at] = data.draw(st.binary(max_size=20))
        elif blob and at < len(blob):
            blob[at] = data.draw(st.integers(0, 255))
    try:
        msg = parse(bytes(blob))
    except SipError:
        return
    for view in ("vias", "contacts", "from_", "to", "cseq"):
        try:
            getattr(msg, view)
        except SipError:
            pass
    again = parse(bytes(msg))
    assert _no_length(again.headers) == _no_length(msg.headers) and again.body == msg.body


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_garbage(blob: bytes) -> None:
    try:
        parse(b"INVITE sip:a@b SIP/2.0\r\n" + blob)
    except SipError:
        pass
    framer = Framer()
    try:
        framer.feed(blob)
        framer.next_message()
    except SipError:
        pass
