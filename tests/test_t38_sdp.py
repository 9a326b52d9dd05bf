"""fastfax.t38.sdp: T.38 media descriptions (m=image udptl t38) read, written and negotiated.

The SDP snippets are media descriptions copied from the public record (where each came
from is noted above it); the expected values were read off the snippet text by hand.
Two snippets are marked "shape": they are what the named product writes according to its
source code, not a captured trace.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastfax.errors import FaxError, T38Error
from fastfax.t38.sdp import (
    ImageMedia,
    T38Params,
    format_media,
    negotiate,
    parse_media,
    rejected_media,
)

# --- real-world media descriptions -------------------------------------------------

# Cisco IOS gateway (User-Agent Cisco-SIPGateway/IOS-12.x), T.38 switchover re-INVITE in
# Cisco's tech note "Configure CUBE for T.38 fax relay" (troubleshooting section).
CISCO_IOS = """\
m=image 17682 udptl t38
c=IN IP4 10.0.0.2
a=T38FaxVersion:0
a=T38MaxBitRate:7200
a=T38FaxFillBitRemoval:0
a=T38FaxTranscodingMMR:0
a=T38FaxTranscodingJBIG:0
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:200
a=T38FaxMaxDatagram:180
a=T38FaxUdpEC:t38UDPRedundancy
"""

# DIDWW SBC initial INVITE, github.com/signalwire/freeswitch issue 1297 (attributes in
# an unusual order, direction attributes around them).
DIDWW_SBC = """\
m=image 13962 udptl t38
c=IN IP4 46.19.209.78
a=sendrecv
a=T38FaxMaxDatagram:612
a=T38FaxRateManagement:transferredTCF
a=T38FaxUdpEC:t38UDPRedundancy
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=direction:both
"""

# Sonus SBC (o=Sonus_UAC) offer, github.com/sipwise/rtpengine issue 869.
SONUS = """\
m=image 9612 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:262
a=T38FaxMaxDatagram:176
a=T38FaxUdpEC:t38UDPRedundancy
a=sendrecv
"""

# Carrier offer with two T38FaxUdpEC lines and bare transcoding flags,
# github.com/sipwise/rtpengine issue 1100.
TWO_EC = """\
m=image 18288 udptl t38
a=T38FaxVersion:1
a=T38MaxBitRate:14400
a=T38FaxTranscodingMMR
a=T38FaxTranscodingJBIG
a=T38FaxRateManagement:transferredTCF
a=T38FaxUdpEC:t38UDPRedundancy
a=T38FaxUdpEC:t38UDPFEC
a=T38FaxMaxDatagram:512
a=sendrecv
a=ptime:20
"""

# T.38 re-INVITE with a bare T38FaxFillBitRemoval, github.com/sipwise/rtpengine issue 1201.
BARE_FILL_BIT = """\
m=image 20334 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxFillBitRemoval
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:2000
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
"""

# Dialogic Brooktrout SR 6.2 manual (November 2009), page 223, sample SIP INVITE.
BROOKTROUT = """\
m=image 56004 udptl t38
c=IN IP4 208.129.52.105
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:transferredTCF
a=T38FaxUdpEC:t38UDPRedundancy
"""

# 3GPP TS 26.114 Annex L.7, Table L.2: SDP offer for a facsimile-only session.
THREEGPP = """\
m=image 49150 udptl t38
b=AS:46
a=T38FaxVersion:2
a=T38FaxRateManagement:transferredTCF
a=T38MaxBitRate:14400
a=T38FaxUdpEC:t38UDPRedundancy
a=T38FaxMaxBuffer:1800
a=T38FaxMaxDatagram:150
"""

# SpanDSP-based T.38 gateway: sipwise/rtpengine's, as its test suite expects it to answer
# (t/auto-daemon-tests-t38.pl, "FEC" case).
SPANDSP_GATEWAY = """\
m=image 30000 udptl t38
c=IN IP4 203.0.113.1
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:1800
a=T38FaxMaxDatagram:512
a=T38FaxUdpEC:t38UDPFEC
a=sendrecv
"""

# The example of vocal.com's "What T.38 parameters can be in SDP": note the spellings
# T38MaxBitrate and T38FaxUdpEc, and T38FaxMaxIFP.
VOCAL = """\
m=image 1234 udptl t38
a=T38FaxVersion:0
a=T38MaxBitrate:9600
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:512
a=T38FaxMaxDatagram:158
a=T38FaxMaxIFP:72
a=T38FaxUdpEc:t38UDPRedundancy
"""

# The smallest real one: a T.38 re-INVITE in github.com/sipwise/rtpengine issue 686.
MINIMAL = """\
m=image 49158 udptl t38
c=IN IP4 192.168.2.2
a=T38FaxVersion:0
a=T38FaxRateManagement:transferredTCF
"""

# Shape: Asterisk's res_pjsip_t38 create_outgoing_sdp_stream() with fill bit removal on
# (bare booleans, T38FaxMaxDatagram, no T38FaxMaxBuffer).
ASTERISK_SHAPE = """\
m=image 4000 udptl t38
c=IN IP4 192.0.2.10
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxFillBitRemoval
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
"""

# Shape: FreeSWITCH mod_sofia's image SDP with t38_broken_boolean set (booleans as :1/:0).
FREESWITCH_BROKEN_BOOLEAN = """\
m=image 16384 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
a=T38FaxFillBitRemoval:1
a=T38FaxTranscodingMMR:0
a=T38FaxTranscodingJBIG:0
a=T38FaxRateManagement:transferredTCF
a=T38FaxMaxBuffer:2000
a=T38FaxMaxDatagram:400
a=T38FaxUdpEC:t38UDPRedundancy
"""

REAL_WORLD = [
    (CISCO_IOS, ImageMedia(
        17682, T38Params(max_bit_rate=7200, max_buffer=200, max_datagram=180),
        "10.0.0.2", (), ("redundancy",), explicit_booleans=True)),
    (DIDWW_SBC, ImageMedia(
        13962, T38Params(max_datagram=612), "46.19.209.78",
        ("a=sendrecv", "a=direction:both"), ("redundancy",))),
    (SONUS, ImageMedia(
        9612, T38Params(max_buffer=262, max_datagram=176), None, ("a=sendrecv",),
        ("redundancy",))),
    (TWO_EC, ImageMedia(
        18288, T38Params(version=1, transcoding_mmr=True, transcoding_jbig=True,
                         max_datagram=512),
        None, ("a=sendrecv", "a=ptime:20"), ("redundancy", "fec"))),
    (BARE_FILL_BIT, ImageMedia(
        20334, T38Params(fill_bit_removal=True, max_buffer=2000, max_datagram=400),
        None, (), ("redundancy",))),
    (BROOKTROUT, ImageMedia(56004, T38Params(), "208.129.52.105", (), ("redundancy",))),
    (THREEGPP, ImageMedia(
        49150, T38Params(version=2, max_buffer=1800, max_datagram=150), None, ("b=AS:46",),
        ("redundancy",))),
    (SPANDSP_GATEWAY, ImageMedia(
        30000, T38Params(max_buffer=1800, max_datagram=512, error_correction="fec"),
        "203.0.113.1", ("a=sendrecv",), ("fec",))),
    (VOCAL, ImageMedia(
        1234, T38Params(max_bit_rate=9600, max_buffer=512, max_datagram=158, max_ifp=72),
        None, (), ("redundancy",))),
    (MINIMAL, ImageMedia(
        49158, T38Params(error_correction="none"), "192.168.2.2", (), ())),
    (ASTERISK_SHAPE, ImageMedia(
        4000, T38Params(fill_bit_removal=True, max_datagram=400), "192.0.2.10", (),
        ("redundancy",))),
    (FREESWITCH_BROKEN_BOOLEAN, ImageMedia(
        16384, T38Params(fill_bit_removal=True, max_buffer=2000, max_datagram=400), None, (),
        ("redundancy",), explicit_booleans=True)),
]


@pytest.mark.parametrize("text, expected", REAL_WORLD, ids=lambda v: "" if isinstance(
    v, ImageMedia) else v.split("\n", 1)[0])
def test_real_world_media(text: str, expected: ImageMedia) -> None:
    assert parse_media(text.splitlines()) == expected


@pytest.mark.parametrize("text, expected", REAL_WORLD[:4])
def test_crlf_lines_and_trailing_blank(text: str, expected: ImageMedia) -> None:
    """Lines split off a CRLF body keep their CR; the body's final CRLF leaves a blank."""
    crlf = text.replace("\n", "\r\n")
    assert parse_media(crlf.split("\n")) == expected
    assert parse_media(crlf.splitlines(keepends=True)) == expected


def _mangle_case(line: str, rng: random.Random) -> str:
    """Random letter case for an a= line's name and value (not for the a= itself)."""
    if not line.startswith("a=T38"):
        return line
    return "a=" + "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in line[2:])


@pytest.mark.parametrize("seed", range(20))
def test_names_and_values_in_any_case(seed: int) -> None:
    rng = random.Random(seed)
    for text, expected in REAL_WORLD:
        lines = [_mangle_case(line, rng) for line in text.splitlines()]
        assert parse_media(lines) == expected, lines


def test_old_attribute_names_are_aliases() -> None:
    """Asterisk also reads T38FaxMaxRate and T38MaxDatagram."""
    media = parse_media(["m=image 5000 udptl t38", "a=T38FaxMaxRate:9600",
                         "a=T38MaxDatagram:300", "a=T38FaxRateManagement:localTCF"])
    assert media.params == T38Params(max_bit_rate=9600, max_datagram=300,
                                     rate_management="localTCF", error_correction="none")


@pytest.mark.parametrize("line, value, explicit", [
    ("a=T38FaxFillBitRemoval", True, False),
    ("a=T38FaxFillBitRemoval:1", True, True),
    ("a=T38FaxFillBitRemoval:0", False, True),
    ("a=T38FaxFillBitRemoval: 1 ", True, True),
    ("a=t38faxfillbitremoval", True, False),
])
def test_boolean_forms(line: str, value: bool, explicit: bool) -> None:
    media = parse_media(["m=image 5000 udptl t38", line])
    assert media.params.fill_bit_removal is value
    assert media.explicit_booleans is explicit


def test_error_correction_forms() -> None:
    def ec_of(*lines: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        media = parse_media(["m=image 5000 udptl t38", *lines])
        return media.params.error_correction, media.error_corrections, media.extra

    assert ec_of() == ("none", (), ())
    assert ec_of("a=T38FaxUdpEC:t38UDPNoEC") == ("none", ("none",), ())
    assert ec_of("a=T38FaxUdpEC:T38UDPFEC") == ("fec", ("fec",), ())
    # A scheme we do not know is kept, not offered.
    assert ec_of("a=T38FaxUdpEC:t38UDPMagic") == ("none", (), ("a=T38FaxUdpEC:t38UDPMagic",))
    assert ec_of("a=T38FaxUdpEC:t38UDPFEC", "a=T38FaxUdpEC:t38UDPFEC") == ("fec", ("fec",), ())


@pytest.mark.parametrize("value, depth", [("1 3", (1, 3)), ("2", (2, None)), ("0  5", (0, 5)),
                                          ("4 4", (4, 4))])
def test_ec_depth(value: str, depth: tuple[int, int | None]) -> None:
    media = parse_media(["m=image 5000 udptl t38", "a=T38FaxUdpEC:t38UDPFEC",
                         f"a=T38FaxUdpECDepth:{value}", "a=T38FaxUdpFECMaxSpan:5"])
    assert media.params.ec_depth == depth
    assert media.params.fec_max_span == 5


def test_port_zero_is_a_rejection() -> None:
    refused = parse_media(rejected_media())
    assert refused.rejected and refused.port == 0
    assert refused.params.error_correction == "none"
    assert not parse_media(BROOKTROUT.splitlines()).rejected


def test_vendor_info_and_unknown_attributes_kept() -> None:
    media = parse_media(["m=image 5000 udptl t38", "a=T38VendorInfo:0 0 0",
                         "a=T38ModemType:t38G3FaxOnly", "i=fax", "k=prompt"])
    assert media.params.vendor_info == "0 0 0"
    assert media.extra == ("a=T38ModemType:t38G3FaxOnly", "i=fax", "k=prompt")


# --- writing -------------------------------------------------------------------------

def test_format_writes_what_asterisk_writes() -> None:
    lines = format_media(4000, T38Params(fill_bit_removal=True, max_datagram=400),
                         connection="192.0.2.10")
    assert lines == ASTERISK_SHAPE.splitlines()


def test_format_explicit_booleans_as_freeswitch() -> None:
    params = T38Params(fill_bit_removal=True, max_buffer=2000, max_datagram=400)
    lines = format_media(16384, params, explicit_booleans=True)
    assert lines == FREESWITCH_BROKEN_BOOLEAN.splitlines()


def test_format_all_fields_and_extra() -> None:
    params = T38Params(version=3, max_bit_rate=33600, transcoding_jbig=True,
                       rate_management="localTCF", max_buffer=1800, max_datagram=512,
                       max_ifp=300, error_correction="fec", ec_depth=(1, 3), fec_max_span=3,
                       vendor_info="181 0 37")
    assert format_media(6000, params, connection="2001:db8::5", extra=["a=sendrecv"]) == [
        "m=image 6000 udptl t38",
        "c=IN IP6 2001:db8::5",
        "a=T38FaxVersion:3",
        "a=T38MaxBitRate:33600",
        "a=T38FaxTranscodingJBIG",
        "a=T38FaxRateManagement:localTCF",
        "a=T38FaxMaxBuffer:1800",
        "a=T38FaxMaxDatagram:512",
        "a=T38FaxMaxIFP:300",
        "a=T38FaxUdpEC:t38UDPFEC",
        "a=T38FaxUdpECDepth:1 3",
        "a=T38FaxUdpFECMaxSpan:3",
        "a=T38VendorInfo:181 0 37",
        "a=sendrecv",
    ]
    assert format_media(6000, T38Params(error_correction="none"))[-1] == (
        "a=T38FaxUdpEC:t38UDPNoEC")


_small = st.integers(0, 255)
_opt = st.none() | st.integers(1, 65535)
_vendor = st.none() | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                              min_size=1, max_size=40).map(str.strip).filter(bool)

params_strategy = st.builds(
    T38Params,
    version=_small,
    max_bit_rate=st.integers(1, 999_999_999),
    fill_bit_removal=st.booleans(),
    transcoding_mmr=st.booleans(),
    transcoding_jbig=st.booleans(),
    rate_management=st.sampled_from(["transferredTCF", "localTCF"]),
    max_buffer=st.none() | st.integers(1, 999_999_999),
    max_datagram=_opt,
    error_correction=st.sampled_from(["none", "redundancy", "fec"]),
    ec_depth=st.none() | st.tuples(_small, st.none() | _small).map(
        lambda d: d if d[1] is None else (min(d), max(d))),
    fec_max_span=st.none() | st.integers(1, 255),
    vendor_info=_vendor,
    max_ifp=_opt,
)


@settings(max_examples=300, deadline=None)
@given(params_strategy, st.integers(0, 65535),
       st.none() | st.ip_addresses().map(str), st.booleans())
def test_round_trip(params: T38Params, port: int, connection: str | None,
                    explicit: bool) -> None:
    lines = format_media(port, params, connection=connection, explicit_booleans=explicit)
    for line in lines:
        assert "\r" not in line and "\n" not in line
    media = parse_media(lines)
    assert media == ImageMedia(port, params, connection, (), (params.error_correction,),
                               explicit)


# --- negotiation ---------------------------------------------------------------------

OURS = T38Params(version=3, max_bit_rate=14400, fill_bit_removal=True,
                 transcoding_mmr=False, max_buffer=2000, max_datagram=400,
                 error_correction="fec", ec_depth=(1, 3), fec_max_span=3,
                 vendor_info="0 0 0")


def test_answer_to_cisco() -> None:
    offer = parse_media(CISCO_IOS.splitlines())
    answer = negotiate(offer.params, OURS, error_corrections=offer.error_corrections)
    assert answer == T38Params(version=0, max_bit_rate=7200, max_buffer=2000,
                               max_datagram=400, error_correction="redundancy",
                               ec_depth=(1, 3), vendor_info="0 0 0")
    # Answer in the peer's boolean style: Cisco wrote :0, so do we.
    lines = format_media(5000, answer, explicit_booleans=offer.explicit_booleans)
    assert "a=T38FaxFillBitRemoval:0" in lines


def test_answer_takes_first_listed_scheme_we_have() -> None:
    offer = parse_media(TWO_EC.splitlines())
    answer = negotiate(offer.params, OURS, error_corrections=offer.error_corrections)
    assert answer.error_correction == "redundancy"
    assert answer.version == 1 and answer.transcoding_mmr is False
    fec_only = negotiate(offer.params, OURS, error_corrections=("fec", "redundancy"))
    assert fec_only.error_correction == "fec" and fec_only.fec_max_span == 3


@pytest.mark.parametrize("offered, ours, answer", [
    ("fec", "fec", "fec"),
    ("fec", "redundancy", "redundancy"),
    ("fec", "none", "none"),
    ("redundancy", "fec", "redundancy"),
    ("redundancy", "none", "none"),
    ("none", "fec", "none"),
])
def test_error_correction_steps_down_never_up(offered: str, ours: str, answer: str) -> None:
    result = negotiate(T38Params(error_correction=offered),  # type: ignore[arg-type]
                       T38Params(error_correction=ours, ec_depth=(2, 4)))  # type: ignore
    assert result.error_correction == answer
    assert result.ec_depth == (None if answer == "none" else (2, 4))


def test_answer_echoes_rate_management_and_keeps_our_limits() -> None:
    offer = T38Params(version=3, max_bit_rate=33600, rate_management="localTCF",
                      max_buffer=99, max_datagram=99, max_ifp=99, vendor_info="1 2 3")
    answer = negotiate(offer, OURS)
    assert answer.rate_management == "localTCF"
    assert (answer.max_buffer, answer.max_datagram, answer.max_ifp, answer.vendor_info) == (
        2000, 400, None, "0 0 0")
    assert (answer.version, answer.max_bit_rate) == (3, 14400)


def test_unknown_higher_version_is_answered_with_ours() -> None:
    offer = parse_media(["m=image 5000 udptl t38", "a=T38FaxVersion:7"])
    assert offer.params.version == 7
    assert negotiate(offer.params, OURS).version == 3


_EC_RANK = {"none": 0, "redundancy": 1, "fec": 2}


@settings(max_examples=300, deadline=None)
@given(params_strategy, params_strategy,
       st.lists(st.sampled_from(["none", "redundancy", "fec"]), max_size=3))
def test_negotiate_rules(offer: T38Params, local: T38Params, listed: list[str]) -> None:
    answer = negotiate(offer, local, error_corrections=listed)  # type: ignore[arg-type]
    offered = listed or [offer.error_correction]
    # Numbers never above either side.
    assert answer.version == min(offer.version, local.version)
    assert answer.max_bit_rate == min(offer.max_bit_rate, local.max_bit_rate)
    # Options only when both state them; rate management echoed.
    for name in ("fill_bit_removal", "transcoding_mmr", "transcoding_jbig"):
        assert getattr(answer, name) == (getattr(offer, name) and getattr(local, name))
    assert answer.rate_management == offer.rate_management
    # Error correction: one we implement, never stronger than what was offered.
    rank = _EC_RANK[answer.error_correction]
    assert rank <= _EC_RANK[local.error_correction]
    assert rank <= max(_EC_RANK[ec] for ec in offered)
    usable = [ec for ec in offered if _EC_RANK[ec] <= _EC_RANK[local.error_correction]]
    assert answer.error_correction == (usable[0] if usable else local.error_correction)
    # Our receive limits.
    assert (answer.max_buffer, answer.max_datagram, answer.max_ifp, answer.vendor_info) == (
        local.max_buffer, local.max_datagram, local.max_ifp, local.vendor_info)
    assert answer.fec_max_span == (local.fec_max_span if rank == 2 else None)
    # An answer is itself a valid offer that we would answer unchanged, and it can be sent.
    assert negotiate(answer, local) == answer
    assert parse_media(format_media(5000, answer)).params == answer


# --- hostile and malformed input -----------------------------------------------------

M = "m=image 5000 udptl t38"


@pytest.mark.parametrize("lines, message", [
    ([], "no m=image"),
    (["", "   ", "\r\n"], "no m=image"),
    (["a=T38FaxVersion:0"], "starts with m="),
    (["hello"], "not an SDP line"),
    (["m=image udptl t38"], "needs media, port"),
    (["m=image 5000 udptl"], "needs media, port"),
    (["m=image 5000 udptl image/t38"], "no t38"),
    (["m=image 5000 tcp t38"], "not udptl"),
    (["m=image 5000 RTP/AVP t38"], "not udptl"),
    (["m=audio 5000 RTP/AVP 0"], "not image"),
    (["m=image -1 udptl t38"], "digits"),
    (["m=image 65536 udptl t38"], "above 65535"),
    (["m=image 5000/2 udptl t38"], "digits"),
    (["m=image \uff15\uff10\uff10\uff10 udptl t38"], "digits"),
    ([M, "m=image 5002 udptl t38"], "second m="),
    ([M, "v=0"], "not allowed"),
    ([M, "o=- 1 1 IN IP4 192.0.2.1"], "not allowed"),
    ([M, "c=IN IP4"], "IN IP4|IP6"),
    ([M, "c=ATM NSAP 47.0091"], "IN IP4|IP6"),
    ([M, "c=IN IP4 ::1"], "is not IP4"),
    ([M, "c=IN IP6 10.0.0.1"], "is not IP6"),
    ([M, "c=IN IP4 233.252.0.1/127"], "neither an IP"),
    ([M, "c=IN IP4 10.0.0.1", "c=IN IP4 10.0.0.2"], "more than one c="),
    ([M, "a=T38FaxVersion:256"], "0..255"),
    ([M, "a=T38FaxVersion:-1"], "digits"),
    ([M, "a=T38FaxVersion:abc"], "digits"),
    ([M, "a=T38FaxVersion:1e3"], "digits"),
    ([M, "a=T38FaxVersion:0x1"], "digits"),
    ([M, "a=T38FaxVersion:\u0663"], "digits"),
    ([M, "a=T38FaxVersion:99999999999999999999999999"], "digits"),
    ([M, "a=T38FaxVersion:" + "9" * 5000], "limit"),
    ([M, "a=T38FaxVersion"], "needs a value"),
    ([M, "a=T38FaxVersion:"], "needs a value"),
    ([M, "a=T38MaxBitRate:0"], "max_bit_rate"),
    ([M, "a=T38FaxMaxDatagram:65536"], "max_datagram"),
    ([M, "a=T38FaxMaxDatagram:0"], "max_datagram"),
    ([M, "a=T38FaxMaxIFP:70000"], "max_ifp"),
    ([M, "a=T38FaxMaxBuffer:0"], "max_buffer"),
    ([M, "a=T38FaxVersion:0", "a=T38FaxVersion:0"], "duplicated"),
    ([M, "a=T38FaxVersion:0", "a=T38FaxVersion:3"], "duplicated"),
    ([M, "a=T38MaxBitRate:9600", "a=T38FaxMaxRate:14400"], "duplicated"),
    ([M, "a=T38FaxFillBitRemoval", "a=T38FaxFillBitRemoval:0"], "duplicated"),
    ([M, "a=T38FaxFillBitRemoval:yes"], ":0 or :1"),
    ([M, "a=T38FaxFillBitRemoval:2"], ":0 or :1"),
    ([M, "a=T38FaxFillBitRemoval:true"], ":0 or :1"),
    ([M, "a=T38FaxRateManagement:both"], "localTCF or transferredTCF"),
    ([M, "a=T38FaxRateManagement"], "needs a value"),
    ([M, "a=T38FaxUdpECDepth:3 1"], "below its min"),
    ([M, "a=T38FaxUdpECDepth:1 2 3"], "minred"),
    ([M, "a=T38FaxUdpECDepth:x"], "digits"),
    ([M, "a=T38FaxUdpECDepth:1:3"], "digits"),
    ([M, "a=T38FaxUdpECDepth:300"], "0..255"),
    ([M, "a=T38FaxUdpFECMaxSpan:0"], "fec_max_span"),
    ([M, "a=T38VendorInfo:bell\x07"], "printable"),
    ([M, "a=:5"], "without a name"),
    ([M, "a=T38FaxVersion:0\x00"], "control character"),
    ([M, "a=T38FaxVersion:0\rx"], "control character"),
    ([M, "a=x-long:" + "y" * 2000], "limit"),
    ([M] + ["a=sendrecv"] * 300, "more than 256"),
])
def test_malformed_input_raises_t38error(lines: list[str], message: str) -> None:
    with pytest.raises(T38Error, match=message):
        parse_media(lines)


@pytest.mark.parametrize("bad", ["m=image 5000 udptl t38", b"m=image 5000 udptl t38",
                                 [b"m=image 5000 udptl t38"], None, 5])
def test_wrong_argument_types(bad: object) -> None:
    with pytest.raises(T38Error):
        parse_media(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [
    {"version": -1}, {"version": 256}, {"version": True}, {"version": 1.0},
    {"max_bit_rate": 0}, {"max_bit_rate": True}, {"fill_bit_removal": 1},
    {"rate_management": "transferredtcf"}, {"error_correction": "FEC"},
    {"max_datagram": 0}, {"max_datagram": 65536}, {"max_buffer": -5},
    {"ec_depth": (3, 1)}, {"ec_depth": (1,)}, {"ec_depth": [1, 2]}, {"ec_depth": (-1, None)},
    {"fec_max_span": 0}, {"vendor_info": ""}, {"vendor_info": " x"}, {"vendor_info": "a\nb"},
    {"vendor_info": "x" * 257}, {"vendor_info": 5}, {"vendor_info": "0\xa00"},
])
def test_invalid_params_raise_t38error(kwargs: dict[str, object]) -> None:
    with pytest.raises(T38Error):
        T38Params(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("port, connection, extra", [
    (-1, None, ()), (65536, None, ()), ("5000", None, ()), (True, None, ()),
    (5000, "not an address!", ()), (5000, "10.0.0.1/24", ()), (5000, 10, ()),
    (5000, None, ["a=sendrecv\r\nv=0"]), (5000, None, ["sendrecv"]),
    (5000, None, ["a=T38FaxVersion:3"]), (5000, None, ["m=audio 0 RTP/AVP 0"]),
])
def test_format_rejects_bad_arguments(port: object, connection: object,
                                      extra: list[str]) -> None:
    with pytest.raises(T38Error):
        format_media(port, T38Params(), connection=connection, extra=extra)  # type: ignore


def test_negotiate_rejects_bad_arguments() -> None:
    with pytest.raises(T38Error):
        negotiate(T38Params(), "ours")  # type: ignore[arg-type]
    with pytest.raises(T38Error):
        negotiate(T38Params(), T38Params(), error_corrections=["parity"])  # type: ignore


def test_t38error_is_a_faxerror_and_valueerror() -> None:
    with pytest.raises(FaxError):
        parse_media([])
    with pytest.raises(ValueError):
        parse_media([])


_SDP_ALPHABET = "mcabikvo=: /-.\r\n\x00\t0123456789TtFfaxXIPUDdlpegEC3889" + "\u0663\uff15"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(_SDP_ALPHABET, max_size=40), max_size=12), st.booleans())
def test_fuzz_random_lines(lines: list[str], with_m_line: bool) -> None:
    if with_m_line:
        lines = [M, *lines]
    try:
        media = parse_media(lines)
    except T38Error:
        return
    assert isinstance(media, ImageMedia)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([text for text, _ in REAL_WORLD]), st.data())
def test_fuzz_mutated_real_media(text: str, data: st.DataObject) -> None:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        a = data.draw(st.integers(0, len(line)))
        b = data.draw(st.integers(a, len(line)))
        lines[i] = line[:a] + data.draw(st.text(_SDP_ALPHABET, max_size=6)) + line[b:]
    try:
        media = parse_media(lines)
    except T38Error:
        return
    # Whatever parses also writes and reads back the same.
    again = parse_media(format_media(media.port, media.params, connection=media.connection))
    assert again.params == media.params
