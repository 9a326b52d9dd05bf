"""fastfax.sip.sdp (offer/answer, RFC 3264) and fastfax.sip.dialog (RFC 3261 12, RFC 4028)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfax.sip import SipError, sdp
from fastfax.sip.dialog import Dialog, SessionTimer, parse_session_expires
from fastfax.sip.message import Request, Response, parse, parse_uri
from fastfax.t38.sdp import T38Params

LOCAL = T38Params(version=0, max_bit_rate=14400, max_buffer=2000, max_datagram=400,
                  error_correction="redundancy")

# A T.38 re-INVITE offer as Asterisk writes it (res_pjsip_t38), with audio kept at port 0.
ASTERISK_T38 = (b"v=0\r\no=- 1234 1236 IN IP4 192.0.2.50\r\ns=Asterisk\r\nc=IN IP4 192.0.2.50\r\n"
                b"t=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=image 4000 udptl t38\r\n"
                b"c=IN IP4 192.0.2.51\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n"
                b"a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxDatagram:400\r\n"
                b"a=T38FaxUdpEC:t38UDPRedundancy\r\n")
AUDIO_OFFER = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\ns=-\r\n"
               b"c=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 9 8 0 101\r\n"
               b"a=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
               b"a=fmtp:101 0-16\r\nm=video 51372 RTP/AVP 31\r\n")


def test_answer_t38_offer() -> None:
    offer = sdp.parse(ASTERISK_T38)
    got = sdp.answer(offer, "192.0.2.9", audio_port=None, t38_port=6000, t38_local=LOCAL)
    assert got.peer_address == "192.0.2.51" and got.t38.port == 4000
    assert got.t38_params.max_datagram == 400 and got.t38_params.error_correction == "redundancy"
    again = sdp.parse(bytes(got.description))
    assert [(m.kind, m.port) for m in again.media] == [("audio", 0), ("image", 6000)]
    assert again.media[1].t38.params == got.t38_params
    refused = sdp.answer(offer, "192.0.2.9", audio_port=5000, t38_port=None, t38_local=None)
    assert refused.t38 is None and [m.port for m in refused.description.media] == [0, 0]


def test_answer_audio_offer() -> None:
    got = sdp.answer(sdp.parse(AUDIO_OFFER), "192.0.2.9", audio_port=5000, t38_port=6000,
                     t38_local=LOCAL)
    assert got.codec == "PCMA" and got.peer_address == "198.51.100.1"  # first G.711 offered
    media = sdp.parse(bytes(got.description)).media
    assert [(m.kind, m.port) for m in media] == [("audio", 5000), ("video", 0)]
    assert media[0].codecs == ["PCMA", "telephone-event"]


def test_offers_round_trip() -> None:
    desc = sdp.offer("192.0.2.9", [sdp.audio_media(4000, telephone_event=True),
                                   sdp.t38_media(4002, LOCAL)], session_id=7, version=3)
    again = sdp.parse(bytes(desc))
    assert (again.session_id, again.version, again.address) == (7, 3, "192.0.2.9")
    assert again.media[0].codecs == ["PCMU", "PCMA", "telephone-event"]
    assert again.media[1].is_t38 and again.media[1].t38.params == LOCAL
    assert bytes(sdp.parse(bytes(desc))) == bytes(desc)


@pytest.mark.parametrize("bad", [
    b"", b"v=1\r\n", b"v=0\r\no=- x 1 IN IP4 a\r\n", b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 99999 RTP/AVP 0\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\nm=image 4000 udptl t38\r\na=T38FaxVersion:banana\r\n",
    b"v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4\r\n", b"\xff\xfe",
    b"v=0\r\no=- 1 1 IN IP4 a\r\n" + b"a=x\r\n" * 600,
])
def test_bad_sdp(bad: bytes) -> None:
    with pytest.raises(SipError):
        sdp.parse(bad)


INVITE = (b"INVITE sip:b@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
          b"From: <sip:a@x>;tag=ta\r\nTo: <sip:b@y>\r\nCall-ID: d1\r\nCSeq: 5 INVITE\r\n"
          b"Contact: <sip:a@192.0.2.1>\r\nRecord-Route: <sip:p1.example.com;lr>\r\n"
          b"Record-Route: <sip:p2.example.com;lr>\r\nContent-Length: 0\r\n\r\n")


def _ok(request: Request, *, record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"),
        contact="<sip:b@192.0.2.2:5070>") -> Response:
    return Response(200, headers=[("Via", request.get("Via")), ("From", request.get("From")),
                                  ("To", request.get("To") + ";tag=tb"), ("Call-ID", "d1"),
                                  ("CSeq", request.get("CSeq")), ("Contact", contact),
                                  *(("Record-Route", r) for r in record_route)])


def test_dialog_route_sets() -> None:
    request = parse(INVITE)
    caller = Dialog.as_caller(request, _ok(request))
    assert [r.uri.host for r in caller.route_set] == ["p2.example.com", "p1.example.com"]
    bye = caller.request("BYE")
    assert str(bye.uri) == "sip:b@192.0.2.2:5070"  # loose routing: remote target as R-URI
    assert bye.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert bye.cseq == (6, "BYE") and bye.to.tag == "tb" and bye.from_.tag == "ta"
    assert caller.request("ACK", cseq=5).cseq == (5, "ACK")
    callee = Dialog.as_callee(request, "tb")
    assert [r.uri.host for r in callee.route_set] == ["p1.example.com", "p2.example.com"]
    assert callee.request("BYE").to.tag == "ta" and callee.remote_cseq == 5
    # strict routing: the first route without lr becomes the Request-URI (RFC 3261 12.2.1.1)
    strict = Dialog.as_caller(request, _ok(request, record_route=("<sip:strict.example.com>",)))
    req = strict.request("BYE")
    assert str(req.uri) == "sip:strict.example.com"
    assert req.get_all("Route") == ["<sip:b@192.0.2.2:5070>"]


def test_dialog_cseq_and_target_refresh() -> None:
    request = parse(INVITE)
    callee = Dialog.as_callee(request, "tb")
    assert callee.request("INVITE").cseq == (1, "INVITE")  # the callee's own CSeq space
    peer = Request("INVITE", parse_uri("sip:b@192.0.2.2"), [
        ("From", "<sip:a@x>;tag=ta"), ("To", "<sip:b@y>;tag=tb"), ("Call-ID", "d1"),
        ("CSeq", "6 INVITE"), ("Contact", "<sip:a@198.51.100.9:5080>")])
    assert callee.accept_request(peer)
    assert str(callee.remote_target) == "sip:a@198.51.100.9:5080"
    old = peer.copy()
    old.set("CSeq", "6 INVITE")
    assert not callee.accept_request(old)  # not above the last: 500


def test_session_timer() -> None:
    assert parse_session_expires("1800;refresher=uac") == (1800, "uac")
    assert parse_session_expires("90") == (90, None)
    for bad in ("0", "-5", "abc", "90;refresher=me"):
        with pytest.raises(SipError):
            parse_session_expires(bad)
    uas = SessionTimer(1800, 300, we_are_uac=False)
    small = Request("INVITE", parse_uri("sip:x@y"), [("Session-Expires", "120")])
    too_small = uas.on_request(small)
    assert too_small.status == 422 and too_small.get("Min-SE") == "300"
    uac = SessionTimer(120, 90, we_are_uac=True)
    assert uac.on_422(too_small) and uac.interval == 300
    assert not uac.on_422(too_small)  # already there: no loop
    ok = Response(200, headers=[("Session-Expires", "300;refresher=uac")])
    uac.on_response(ok, 1000.0)
    assert uac.we_refresh and uac.refresh_at == 1150.0  # half the interval
    assert uac.expires_at == 1000.0 + 300 - 32  # RFC 4028 10: interval - min(32, interval/3)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([ASTERISK_T38, AUDIO_OFFER]), st.data())
def test_fuzz_sdp(seed: bytes, data: st.DataObject) -> None:
    """Mutated offers: only SipError escapes parse() and answer(); answers re-parse."""
    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(blob)))
        if data.draw(st.booleans()):
            del blob[at:at + data.draw(st.integers(1, 20))]
        else:
            blob[at:at] = data.draw(st.sampled_from(
                [b"\r\n", b" ", b"0", b"99999", b"m=image 1 udptl t38\r\n", b"a=T38FaxUdpEC:x",
                 b"c=IN IP6 ::1\r\n", b"\xff", b"/2", b"a=T38FaxVersion:3\r\n"]))
    try:
        offer = sdp.parse(bytes(blob))
        got = sdp.answer(offer, "192.0.2.9", audio_port=5000, t38_port=6000, t38_local=LOCAL)
    except SipError:
        return
    again = sdp.parse(bytes(got.description))
    assert len(again.media) == len(offer.media)
