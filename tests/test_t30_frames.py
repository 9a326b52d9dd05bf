"""fastfax.t30.frames and fastfax.t30.dis: frame codes, FIFs, DIS/DCS fields, DCS choice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastfax.errors import FaxError
from fastfax.t30 import FCF, Dcs, Dis, Frame, T30FrameError, choose_dcs
from fastfax.t30.dis import RESOLUTIONS, Length, Rate, Rates, ScanTime, Width
from fastfax.t30.frames import (
    IDENT_LEN,
    Nsf,
    Pps,
    decode_ident,
    encode_ident,
    fcd,
    has_x_bit,
    parse_fcd,
    ppr_frames,
    ppr_map,
)

ISSUE_FRAMES = """DIS DTC DCS CSI TSI CIG NSF NSS NSC SUB SEP PWD SID CFR FTT MPS EOM EOP PRI_EOM
PRI_MPS PRI_EOP MCF RTP RTN PIP PIN DCN CRP PPS PPR CTC CTR RR RNR ERR EOR FCD RCP""".split()


def sample_fif(fcf: FCF) -> bytes:
    if fcf in (FCF.DIS, FCF.DTC):
        return Dis(can_receive=True).encode()
    if fcf == FCF.DCS:
        return Dcs(receive=True).encode()
    if fcf in (FCF.CSI, FCF.TSI, FCF.CIG, FCF.SUB, FCF.SEP, FCF.PWD, FCF.SID, FCF.PSA):
        return encode_ident("+1 555 0100")
    if fcf in (FCF.NSF, FCF.NSS, FCF.NSC):
        return Nsf(0xB5, b"\x00\x01", b"xyz").encode()
    return {
        FCF.PPS: Pps(FCF.EOP, 1, 2, 3).encode(),
        FCF.PPR: ppr_map([0, 255]),
        FCF.CTC: b"\x00\x22",
        FCF.EOR: b"\x00",
        FCF.FCD: b"\x07" + bytes(64),
        FCF.FNV: b"\x01",
    }.get(fcf, b"")


@pytest.mark.parametrize("name", ISSUE_FRAMES)
@pytest.mark.parametrize("x", [False, True])
@pytest.mark.parametrize("final", [False, True])
def test_every_frame_round_trips(name, x, final):
    fcf = FCF[name]
    frame = Frame(fcf, sample_fif(fcf), x, final)
    raw = frame.encode()
    assert raw[0] == 0xFF and raw[1] == (0x13 if final else 0x03)
    back = Frame.parse(raw)
    # The X bit only exists on frames sent after DIS; the others keep a fixed first bit.
    assert back == frame and back.x == (x and has_x_bit(fcf))
    assert raw[2] == fcf.value | back.x
    assert back.name == name.replace("_", "-")


def test_fcf_octets_follow_line_order():
    # T.30 writes FCFs first bit leftmost: DIS is 0000 0001, DCS is X100 0001, MCF X011 0001.
    def octet(text: str, x: int = 0) -> int:
        bits = text.replace(" ", "").replace("X", str(x))
        return sum(int(b) << i for i, b in enumerate(bits))

    assert FCF.DIS == octet("0000 0001") and FCF.DTC == octet("1000 0001")
    assert FCF.DCS == octet("X100 0001") and FCF.MCF == octet("X011 0001")
    assert FCF.EOP == octet("X111 0100") and FCF.DCN == octet("X101 1111")
    assert Frame(FCF.DCS, Dcs().encode(), x=True).encode()[2] == octet("X100 0001", 1)


@pytest.mark.parametrize(
    "raw, octet",
    [
        (b"", 0),
        (b"\xff\x13", 2),
        (b"\xfe\x13\x80" + bytes(3), 0),
        (b"\xff\x12\x80" + bytes(3), 1),
        (b"\xff\x13\x02", 2),  # no such FCF
        (b"\xff\x13\x8c\x00", 3),  # MCF carries no FIF
        (b"\xff\x13\x42" + bytes(19), 22),  # TSI one octet short
        (b"\xff\x13\x80\x00\x00", 5),  # DIS under 3 octets
        (b"\xff\x13\x80\x00\x00\x80", 5),  # extend bit but nothing follows
        (b"\xff\x13\xbe\x00\x00\x00", 6),  # PPS one octet short
        (b"\xff\x13\xbc" + bytes(31), 34),  # PPR map short
    ],
)
def test_bad_frames_name_the_octet(raw, octet):
    with pytest.raises(T30FrameError) as info:
        f = Frame.parse(raw)
        if f.fcf in (FCF.DIS, FCF.DTC):
            Dis.parse(f.fif)
    assert info.value.octet == octet and isinstance(info.value, FaxError)
    assert f"octet {octet}" in str(info.value)


def test_bad_dcs_rate_is_an_error():
    fif = bytearray(Dcs(receive=True).encode())
    fif[1] = (fif[1] & ~0x3C) | (0x5 << 2)  # bits 11-14 = 5: reserved
    with pytest.raises(T30FrameError, match="bits 11-14") as info:
        Dcs.parse(bytes(fif))
    assert info.value.frame == "DCS" and info.value.octet == 4


def test_identity_reversed_on_line():
    fif = encode_ident("+1 555")
    assert len(fif) == IDENT_LEN and fif == b" " * 14 + b"555 1+"
    assert decode_ident(fif) == "+1 555"
    with pytest.raises(T30FrameError):
        encode_ident("x" * 21)
    with pytest.raises(T30FrameError):
        encode_ident("é")
    with pytest.raises(T30FrameError, match="octet 4"):
        decode_ident(b" \x01" + b" " * 18)


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20))
def test_identity_round_trip(ident):
    assert decode_ident(encode_ident(ident)) == ident


def test_nsf():
    nsf = Nsf.parse(Nsf(0x00, b"\x00\x11", b"\x01\x02").encode())
    assert (nsf.country_name, nsf.vendor, nsf.data) == ("Japan", "Canon", b"\x01\x02")
    ext = Nsf.parse(b"\xff\x12\x00\x01")
    assert ext.country == 0xFF12 and ext.provider == b"\x00\x01" and ext.vendor is None
    with pytest.raises(T30FrameError):
        Nsf.parse(b"\xb5\x00")


def test_pps_ppr_fcd():
    pps = Pps(None, 3, 7, 256)
    assert pps.encode() == b"\x00\x03\x07\xff" and Pps.parse(pps.encode()) == pps
    assert Pps.parse(Pps(FCF.EOP, 0, 0, 1).encode(x=True)).command == FCF.EOP
    with pytest.raises(T30FrameError):
        Pps(FCF.MCF, 0, 0, 1).encode()
    with pytest.raises(T30FrameError):
        Pps(None, 0, 0, 0).encode()
    with pytest.raises(T30FrameError, match="octet 3"):
        Pps.parse(b"\x8c\x00\x00\x00")
    assert ppr_frames(ppr_map({0, 9, 255})) == [0, 9, 255]
    assert ppr_map([9])[1] == 0x02
    assert parse_fcd(fcd(5, b"abc")) == (5, b"abc")
    with pytest.raises(T30FrameError):
        parse_fcd(Frame(FCF.MCF).encode())


@given(
    st.builds(
        Dis,
        rate=st.sampled_from(Rates),
        width=st.sampled_from(Width),
        length=st.sampled_from(Length),
        scan_time=st.sampled_from(ScanTime),
        fine=st.booleans(),
        ecm=st.booleans(),
        t6=st.booleans(),
        r600_1200=st.booleans(),
        letter=st.booleans(),
    )
)
def test_dis_round_trip(dis):
    fif = dis.encode()
    assert Dis.parse(fif) == dis
    # Extend bits: set on every octet from the third on, except the last.
    assert all(o & 0x80 for o in fif[2:-1]) and not fif[-1] & 0x80


def test_dis_bit_positions():
    # T.30 Table 2: bit n is bit (n-1) % 8 of octet (n-1) // 8.
    fif = Dis(ecm=True).encode()
    assert fif[3] & 0x04 and len(fif) == 4
    assert Dis(can_receive=True).encode()[1] & 0x02
    assert Dis(rate=Rates.V27TER_V29_V17).encode()[1] >> 2 & 0xF == 0xB
    assert Dis.parse(b"\x00\x00\x80\x80\x80\x01").superfine
    unknown = Dis.parse(b"\x00\x00\x80\x02")  # bit 26 uncompressed, named; and bit 30
    assert unknown.uncompressed is True and Dis.parse(b"\x00\x00\x80\x20").extra_bits == {30}
    assert Dis.parse(b"\x00\x00\x80\x20").encode() == b"\x00\x00\x80\x20"


def test_resolutions():
    dis = Dis(fine=True, superfine=True, r16=True, r300=True, metric_preferred=True)
    assert dis.resolutions == {"R8x3.85", "R8x7.7", "R8x15.4", "R16x15.4", "300x300"}
    both = Dis(fine=True)
    assert {"R8x7.7", "200x200"} <= both.resolutions
    for name, bits in [
        ("400x400", Dcs(r16=True, inch=True)),
        ("R8x15.4", Dcs(superfine=True)),
        ("200x100", Dcs(inch=True)),
        ("600x1200", Dcs(r600_1200=True)),
    ]:
        assert bits.resolution == name and name in RESOLUTIONS


def test_choose_dcs():
    remote = Dis(
        can_receive=True,
        rate=Rates.V27TER_V29_V17,
        fine=True,
        ecm=True,
        t6=True,
        two_d=True,
        width=Width.B4,
        length=Length.UNLIMITED,
        scan_time=ScanTime.MS10,
    )
    local = Dis(rate=Rates.V27TER_V29, fine=True, ecm=True, t6=True, two_d=True, width=Width.A3)
    dcs = choose_dcs(remote, local, resolution="R8x7.7", width=Width.B4)
    assert (dcs.rate, dcs.ecm, dcs.t6, dcs.two_d, dcs.fine, dcs.width) == (
        Rate.V29_9600,
        True,
        True,
        False,
        True,
        Width.B4,
    )
    assert dcs.scan_time == ScanTime.MS0 and dcs.frame_size == 256
    slower = choose_dcs(remote, local, resolution="R8x7.7", max_rate=Rate.V29_7200)
    assert slower.rate == Rate.V29_7200
    no_ecm = choose_dcs(remote, Dis(two_d=True, fine=True), resolution="R8x7.7")
    assert (no_ecm.ecm, no_ecm.t6, no_ecm.two_d, no_ecm.rate) == (
        False,
        False,
        True,
        Rate.V27TER_4800,
    )
    assert no_ecm.scan_time == ScanTime.MS10
    halved = Dis(can_receive=True, fine=True, scan_time=ScanTime.MS20_HALF)
    assert choose_dcs(halved, Dis(fine=True), resolution="R8x7.7").scan_time == ScanTime.MS10
    assert choose_dcs(halved, Dis(fine=True)).scan_time == ScanTime.MS20
    with pytest.raises(T30FrameError):
        choose_dcs(remote, local, resolution="R8x15.4")
    with pytest.raises(T30FrameError):
        choose_dcs(remote, local, width=Width.A3)
    with pytest.raises(T30FrameError):
        choose_dcs(Dis(), local)


@given(st.binary(max_size=40))
def test_garbage_parses_or_fails_cleanly(data):
    for raw in (data, b"\xff\x13" + data):
        try:
            frame = Frame.parse(raw)
        except T30FrameError as exc:
            assert exc.octet is not None and exc.octet <= len(raw)
            continue
        assert frame.encode() == raw[:2] + bytes([raw[2]]) + raw[3:]
        try:
            if frame.fcf in (FCF.DIS, FCF.DTC):
                assert Dis.parse(frame.fif).can_receive in (True, False)
            elif frame.fcf == FCF.DCS:
                Dcs.parse(frame.fif)
            elif frame.fcf == FCF.PPS:
                Pps.parse(frame.fif)
            elif frame.fcf in (FCF.NSF, FCF.NSS, FCF.NSC):
                Nsf.parse(frame.fif)
            elif frame.fcf in (FCF.CSI, FCF.TSI, FCF.CIG):
                decode_ident(frame.fif)
        except T30FrameError:
            pass
