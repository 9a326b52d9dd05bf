"""The T.30 engine driven by hand, event by event: negotiation, fallback, pages, RTN, ECM
(PPR, CTC, EOR, RNR/RR), CRP, timers, DCN and bad input."""

from __future__ import annotations

import random

import pytest

from fastfax import codec, samples
from fastfax.page import Page
from fastfax.t30.dis import RATE_ORDER, Dcs, Dis, Rate, Rates
from fastfax.t30.events import (
    Action,
    CarrierDown,
    Connected,
    DataReceived,
    EndCall,
    FrameReceived,
    LineDropped,
    Note,
    PageSent,
    ReceiveEcmFrames,
    ReceiveFrames,
    ReceivePageData,
    ReceiveTcf,
    SendComplete,
    SendEcmFrames,
    SendFrames,
    SendPageData,
    SendTcf,
    Silence,
    StartTimer,
    StopTimer,
    TimerExpired,
    WrongCarrier,
)
from fastfax.t30.frames import FCF, Frame, Pps, encode_ident, ppr_frames, ppr_map
from fastfax.t30.receiver import tcf_ok
from fastfax.t30.result import Cause, SessionError
from fastfax.t30.station import create, local_dis
from fastfax.t30.timers import MAX_RTN, TIMERS
from fastfax.transport.loopback import Line

REMOTE = local_dis(receive=True)


def page(height: int = 300, resolution: str = "fine", seed: int = 0) -> Page:
    return samples.text_page(resolution=resolution, height=height, seed=seed)


def io(actions: list[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, (Note, StartTimer, StopTimer))]


def last_io(actions: list[Action]) -> Action:
    found = io(actions)
    assert found, actions
    return found[-1]


def frames_of(action: Action) -> list[Frame]:
    assert isinstance(action, SendFrames), action
    return [Frame.parse(f) for f in action.frames]


def sent_fcfs(actions: list[Action]) -> list[FCF]:
    return [f.fcf for a in actions if isinstance(a, SendFrames) for f in frames_of(a)]


def feed(session, *frames: Frame, x: bool = False) -> list[Action]:
    out: list[Action] = []
    for i, f in enumerate(frames):
        data = Frame(f.fcf, f.fif, x, final=i == len(frames) - 1).encode()
        out += session.handle(FrameReceived(data))
    return out


def complete(session, times: int = 1) -> list[Action]:
    out: list[Action] = []
    for _ in range(times):
        out += session.handle(SendComplete())
    return out


def timers(actions: list[Action]) -> list[tuple[str, str]]:
    return [(type(a).__name__, a.name) for a in actions if isinstance(a, (StartTimer, StopTimer))]


def hangup(actions: list[Action]):
    assert isinstance(actions[-1], EndCall), actions
    return actions[-1].result


# -- the sender (calling station) ---------------------------------------------------------


def sender_at_dcs(remote: Dis = REMOTE, **options):
    """A sender that received CSI + DIS; returns it and its DCS."""
    s = create(calling=True, pages=options.pop("pages", [page()]), ident="TX 1", **options)
    out = s.handle(Connected())
    assert timers(out) == [("StartTimer", "T1")] and isinstance(last_io(out), ReceiveFrames)
    out = feed(s, Frame(FCF.CSI, encode_ident("RX 2")), Frame(FCF.DIS, remote.encode()))
    frames = frames_of(last_io(out))
    assert [f.fcf for f in frames] == [FCF.TSI, FCF.DCS]
    assert [f.final for f in frames] == [False, True] and all(f.x for f in frames)
    return s, Dcs.parse(frames[-1].fif)


def train(s, rate: Rate) -> list[Action]:
    """DCS sent: silence, TCF at ``rate``, then listening with T4."""
    assert last_io(complete(s)) == Silence(75)
    assert last_io(complete(s)) == SendTcf(rate, 1500)
    out = complete(s)
    assert isinstance(last_io(out), ReceiveFrames) and ("StartTimer", "T4") in timers(out)
    return out


@pytest.mark.parametrize(
    "remote,rate,coding,ecm",
    [
        (REMOTE, Rate.V17_14400, "mmr", True),
        (local_dis(receive=True, ecm=False), Rate.V17_14400, "mr", False),
        (local_dis(receive=True, modems=["v29", "v27ter"]), Rate.V29_9600, "mmr", True),
        (local_dis(receive=True, codings=["mh"]), Rate.V17_14400, "mh", True),
        (local_dis(receive=True, modems=["v27ter"], ecm=False), Rate.V27TER_4800, "mr", False),
    ],
)
def test_sender_chooses_the_best_common_mode(remote, rate, coding, ecm):
    s, dcs = sender_at_dcs(remote)
    assert dcs.rate == rate and dcs.ecm == ecm and dcs.resolution == "R8x7.7"
    assert ("mmr" if dcs.t6 else "mr" if dcs.two_d else "mh") == coding
    assert s.result.remote_id == "RX 2"
    train(s, rate)
    out = feed(s, Frame(FCF.CFR))
    assert (s.result.rate, s.result.coding, s.result.ecm) == (rate.bps, coding, ecm)
    assert last_io(out) == Silence(75)
    data = last_io(complete(s))
    assert isinstance(data, SendEcmFrames if ecm else SendPageData) and data.rate == rate


@pytest.mark.parametrize("modems", [["v17", "v29", "v27ter"], ["v29", "v27ter"], ["v29"]])
def test_fallback_after_ftt_walks_down_the_rates(modems):
    remote = local_dis(receive=True, modems=modems)
    s, dcs = sender_at_dcs(remote)
    offered = {
        "v17": {r for r in Rate if r.modem == "v17"},
        "v29": {Rate.V29_9600, Rate.V29_7200},
        "v27ter": {Rate.V27TER_4800},
    }
    common = set().union(*(offered[m] for m in modems)) | {Rate.V27TER_2400}
    rates = []
    while True:
        rates.append(dcs.rate)
        train(s, dcs.rate)
        out = feed(s, Frame(FCF.FTT))
        if sent_fcfs(out) == [FCF.DCN]:
            break
        dcs = Dcs.parse(frames_of(last_io(out))[-1].fif)
    assert rates == [r for r in RATE_ORDER if r in common]
    result = hangup(complete(s))
    assert result.cause is Cause.CANNOT_TRAIN and result.fallbacks == len(rates) - 1


def test_no_response_to_dcs_retries_lower_then_gives_up():
    s, dcs = sender_at_dcs()
    rates = [dcs.rate]
    train(s, dcs.rate)
    for _ in range(2):
        out = s.handle(TimerExpired("T4"))
        again = Dcs.parse(frames_of(last_io(out))[-1].fif)
        rates.append(again.rate)
        train(s, again.rate)
    out = s.handle(TimerExpired("T4"))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(s)).cause is Cause.TX_PHBDEAD
    assert rates == [Rate.V17_14400, Rate.V17_12000, Rate.V29_9600]


def test_dis_repeated_means_dcs_was_lost():
    s, dcs = sender_at_dcs()
    train(s, dcs.rate)
    out = feed(s, Frame(FCF.DIS, REMOTE.encode()))
    assert sent_fcfs(out) == [FCF.TSI, FCF.DCS]


def test_sender_gets_dcn_instead_of_dis():
    s = create(calling=True, pages=[page()])
    s.handle(Connected())
    out = feed(s, Frame(FCF.DCN))
    assert hangup(out).cause is Cause.TX_GOTDCN and not sent_fcfs(out)


def test_sender_t1_without_dis():
    s = create(calling=True, pages=[page()])
    s.handle(Connected())
    out = s.handle(TimerExpired("T1"))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(s)).cause is Cause.T1_EXPIRED


def test_remote_that_cannot_take_the_page():
    s = create(calling=True, pages=[page(resolution="fine")])
    s.handle(Connected())
    standard_only = local_dis(receive=True, resolutions=["R8x3.85"])
    out = feed(s, Frame(FCF.DIS, standard_only.encode()))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(s)).cause is Cause.NORESSUPPORT
    s = create(calling=True, pages=[page()])
    s.handle(Connected())
    feed(s, Frame(FCF.DIS, local_dis(receive=False).encode()))
    assert hangup(complete(s)).cause is Cause.RX_INCAPABLE


def to_phase_c(remote: Dis = REMOTE, **options):
    s, dcs = sender_at_dcs(remote, **options)
    train(s, dcs.rate)
    feed(s, Frame(FCF.CFR))
    return s, dcs, last_io(complete(s))


def test_multi_page_non_ecm_commands_and_confirmations():
    pages = [page(seed=i) for i in range(3)]
    s, dcs, data = to_phase_c(local_dis(receive=True, ecm=False), pages=pages)
    commands, notes = [], []
    for i in range(3):
        assert isinstance(data, SendPageData) and data.short_train
        # The remote's minimum scan line time is 0 ms: no fill.
        assert data.data == codec.encode(pages[i], "mr", msb_first=False, rtc=True)
        decoder = codec.Decoder(1728, "mr", msb_first=False)
        decoder.feed(data.data)
        assert decoder.done and decoder.rows == pages[i].height  # RTC ends the page
        assert last_io(complete(s)) == Silence(75)
        out = complete(s)
        commands += sent_fcfs(out)
        complete(s)
        out = feed(s, Frame(FCF.MCF))
        notes += [a for a in out if isinstance(a, PageSent)]
        if i < 2:
            assert last_io(out) == Silence(75)
            data = last_io(complete(s))
    assert commands == [FCF.MPS, FCF.MPS, FCF.EOP]
    assert [n.number for n in notes] == [1, 2, 3]
    assert sent_fcfs(out) == [FCF.DCN]
    result = hangup(complete(s))
    assert result.ok and result.pages == pages


def test_minimum_scan_line_time_fills_rows():
    remote = Dis(**{**REMOTE.__dict__, "ecm": False, "scan_time": REMOTE.scan_time.__class__(2)})
    s, dcs, data = to_phase_c(remote)
    assert dcs.scan_time.ms == 10
    want = codec.encode(page(), "mr", msb_first=False, rtc=True, min_row_bits=10 * 14400 // 1000)
    assert data.data == want


def test_rtn_retrains_resends_then_gives_up():
    s, dcs, data = to_phase_c(local_dis(receive=True, ecm=False))
    first = data.data
    rate = dcs.rate
    for attempt in range(MAX_RTN + 1):
        complete(s, 3)  # page, silence, EOP
        out = feed(s, Frame(FCF.RTN))
        if attempt == MAX_RTN:
            break
        new = Dcs.parse(frames_of(last_io(out))[-1].fif)
        assert RATE_ORDER.index(new.rate) == RATE_ORDER.index(rate) + 1
        rate = new.rate
        train(s, rate)
        feed(s, Frame(FCF.CFR))
        again = last_io(complete(s))
        assert isinstance(again, SendPageData) and again.data == first
    assert sent_fcfs(out) == [FCF.DCN]
    result = hangup(complete(s))
    assert result.cause is Cause.TX_BADPG and result.rtn_pages == MAX_RTN + 1


def test_no_response_after_page():
    s, dcs, data = to_phase_c()
    complete(s)  # the block
    complete(s)  # silence
    for _ in range(2):
        complete(s)  # PPS sent
        out = s.handle(TimerExpired("T4"))
        assert sent_fcfs(out) == [FCF.PPS]
    complete(s)
    out = s.handle(TimerExpired("T4"))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(s)).cause is Cause.TX_PHDDEAD


# -- ECM, sending -------------------------------------------------------------------------


def ecm_block(s, action) -> tuple[list[bytes], Pps]:
    """Finish sending a block; return its FCD frames and the PPS that follows."""
    assert isinstance(action, SendEcmFrames)
    assert last_io(complete(s)) == Silence(75)
    out = complete(s)
    pps = frames_of(last_io(out))[-1]
    assert pps.fcf == FCF.PPS and pps.x
    complete(s)
    return [f for f in action.frames if f[2] == FCF.FCD], Pps.parse(pps.fif)


def test_ecm_ppr_sends_exactly_the_frames_asked_for():
    big = page(height=1200)
    s, dcs, action = to_phase_c(pages=[big])
    fcds, pps = ecm_block(s, action)
    assert pps.command == FCF.EOP and pps.frames == len(fcds) > 4
    assert b"".join(f[4:] for f in fcds) == codec.encode(big, "mmr", msb_first=False, rtc=True)
    out = feed(s, Frame(FCF.PPR, ppr_map([1, 3, 200])))  # 200 is past the block's end
    assert last_io(out) == Silence(75)
    again = last_io(complete(s))
    assert [f[3] for f in again.frames if f[2] == FCF.FCD] == [1, 3]
    assert [f[2] for f in again.frames][-3:] == [FCF.RCP] * 3
    assert s.result.retransmitted_frames == 2
    _, pps2 = ecm_block(s, again)
    assert pps2 == pps
    out = feed(s, Frame(FCF.MCF))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(s)).ok


def test_ecm_ctc_after_four_pprs():
    s, dcs, action = to_phase_c(pages=[page(height=800)])
    for n in range(4):
        _, pps = ecm_block(s, action)
        out = feed(s, Frame(FCF.PPR, ppr_map([0])))
        if n < 3:
            action = last_io(complete(s))
    ctc = frames_of(last_io(out))[-1]
    assert ctc.fcf == FCF.CTC and len(ctc.fif) == 2
    new_rate = Rate((ctc.fif[1] >> 2) & 0xF)
    assert new_rate == RATE_ORDER[RATE_ORDER.index(dcs.rate) + 1]
    complete(s)
    feed(s, Frame(FCF.CTR))
    again = last_io(complete(s))
    assert isinstance(again, SendEcmFrames) and again.rate == new_rate
    assert s.result.rate == new_rate.bps


def test_ecm_eor_at_the_slowest_rate():
    remote = Dis(**{**REMOTE.__dict__, "rate": Rates.V27TER_FALLBACK})
    s, dcs, action = to_phase_c(remote)
    assert dcs.rate == Rate.V27TER_2400
    for n in range(4):
        ecm_block(s, action)
        out = feed(s, Frame(FCF.PPR, ppr_map([0])))
        if n < 3:
            action = last_io(complete(s))
    eor = frames_of(last_io(out))[-1]
    assert eor.fcf == FCF.EOR and eor.fif[0] & 0xFE == FCF.EOP
    complete(s)
    out = feed(s, Frame(FCF.ERR))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(s)).cause is Cause.TX_ECMPHD


def test_rnr_is_polled_with_rr_until_t5():
    s, dcs, action = to_phase_c()
    ecm_block(s, action)
    out = feed(s, Frame(FCF.RNR))
    assert sent_fcfs(out) == [FCF.RR] and ("StartTimer", "T5") in timers(out)
    complete(s)
    out = feed(s, Frame(FCF.RNR))
    assert sent_fcfs(out) == [FCF.RR] and ("StartTimer", "T5") not in timers(out)
    complete(s)
    out = s.handle(TimerExpired("T5"))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(s)).cause is Cause.TX_T5EXP


def test_rr_answered_by_mcf_goes_on():
    s, dcs, action = to_phase_c(pages=[page(seed=1), page(seed=2)])
    ecm_block(s, action)
    feed(s, Frame(FCF.RNR))
    complete(s)
    out = feed(s, Frame(FCF.MCF))
    assert ("StopTimer", "T5") in timers(out) and last_io(out) == Silence(75)
    assert isinstance(last_io(complete(s)), SendEcmFrames)


def test_crp_repeats_the_last_command():
    s, dcs, action = to_phase_c()
    ecm_block(s, action)
    out = feed(s, Frame(FCF.CRP))
    assert sent_fcfs(out) == [FCF.PPS]


def test_garbled_answer_repeats_the_command_at_once():
    s, dcs, action = to_phase_c()
    ecm_block(s, action)
    out = s.handle(FrameReceived(b"\xff\x13\x8c", ok=False))
    assert not io(out)
    out = s.handle(CarrierDown())
    assert sent_fcfs(out) == [FCF.PPS]


# -- the receiver (answering station) -------------------------------------------------------


def receiver_at_dcs(dcs: Dcs, **options):
    r = create(calling=False, ident="RX 9", **options)
    out = r.handle(Connected())
    frames = frames_of(last_io(out))
    assert [f.fcf for f in frames] == [FCF.CSI, FCF.DIS] and not any(f.x for f in frames)
    assert Dis.parse(frames[-1].fif).can_receive
    out = complete(r)
    assert isinstance(last_io(out), ReceiveFrames) and ("StartTimer", "T4") in timers(out)
    out = feed(r, Frame(FCF.TSI, encode_ident("TX 3")), Frame(FCF.DCS, dcs.encode()), x=True)
    assert last_io(out) == ReceiveTcf(dcs.rate)
    assert r.result.remote_id == "TX 3"
    return r


def tcf(rate: Rate, noise_every: int = 0) -> bytes:
    data = bytearray(rate.bps * 1500 // 8000)
    if noise_every:
        for i in range(noise_every // 2, len(data), noise_every):
            data[i] = 0x10
    return bytes(data)


def dcs_for(coding: str = "mh", ecm: bool = False, rate: Rate = Rate.V17_14400) -> Dcs:
    return Dcs(receive=True, rate=rate, fine=True, two_d=coding == "mr", t6=coding == "mmr",
               ecm=ecm)  # fmt: skip


def trained(dcs: Dcs, **options):
    r = receiver_at_dcs(dcs, **options)
    r.handle(CarrierDown() if False else DataReceived(tcf(dcs.rate)))
    out = r.handle(CarrierDown())
    assert sent_fcfs(out) == [FCF.CFR]
    out = complete(r)
    want = ReceiveEcmFrames if dcs.ecm else ReceivePageData
    assert isinstance(last_io(out), want) and ("StartTimer", "T2") in timers(out)
    return r


def test_tcf_verdict():
    rate = Rate.V29_9600
    assert tcf_ok(tcf(rate), rate)
    early = bytearray(tcf(rate))
    early[10] = 0x10  # one hit near the start: 1.4 s of zeros remain
    assert tcf_ok(bytes(early), rate)
    assert not tcf_ok(tcf(rate, noise_every=len(early) - 1), rate)  # one hit in the middle
    assert not tcf_ok(tcf(rate, noise_every=600), rate)
    assert not tcf_ok(b"", rate)
    assert tcf_ok(b"\x80" + bytes(1200) + b"\x01", rate)  # 7 + 9600 + 0 zero bits


def test_receiver_ftt_then_lower_rate():
    r = receiver_at_dcs(dcs_for())
    r.handle(DataReceived(tcf(Rate.V17_14400, noise_every=500)))
    out = r.handle(CarrierDown())
    assert sent_fcfs(out) == [FCF.FTT]
    assert isinstance(last_io(complete(r)), ReceiveFrames)
    out = feed(r, Frame(FCF.DCS, dcs_for(rate=Rate.V17_12000).encode()), x=True)
    assert last_io(out) == ReceiveTcf(Rate.V17_12000)


def page_events(p: Page, coding: str, flip: int = 0) -> list:
    """The coded page in chunks, with ``flip`` random bits flipped."""
    data = bytearray(codec.encode(p, coding, msb_first=False, rtc=True))
    rng = random.Random(1)
    for _ in range(flip):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return [DataReceived(bytes(data[i : i + 1000])) for i in range(0, len(data), 1000)]


@pytest.mark.parametrize("coding", ["mh", "mr"])
def test_receiver_pages_and_copy_quality(coding):
    r = trained(dcs_for(coding))
    pages = [page(seed=1), page(seed=2)]
    for ev in page_events(pages[0], coding):
        r.handle(ev)
    r.handle(CarrierDown())
    out = feed(r, Frame(FCF.MPS), x=True)
    assert sent_fcfs(out) == [FCF.MCF]
    assert isinstance(last_io(complete(r)), ReceivePageData)
    # A page hit hard in the middle: RTN, then the sender retrains and sends it again.
    for ev in page_events(pages[1], coding, flip=60):
        r.handle(ev)
    r.handle(CarrierDown())
    out = feed(r, Frame(FCF.EOP), x=True)
    assert sent_fcfs(out) == [FCF.RTN]
    complete(r)
    out = feed(r, Frame(FCF.DCS, dcs_for(coding).encode()), x=True)
    r.handle(DataReceived(tcf(Rate.V17_14400)))
    r.handle(CarrierDown())
    complete(r)
    for ev in page_events(pages[1], coding):
        r.handle(ev)
    r.handle(CarrierDown())
    out = feed(r, Frame(FCF.EOP), x=True)
    assert sent_fcfs(out) == [FCF.MCF]
    out = complete(r)
    assert isinstance(last_io(out), ReceiveFrames)
    result = hangup(feed(r, Frame(FCF.DCN), x=True))
    assert result.ok and result.rtn_pages == 1 and result.bad_rows == 0
    assert [p.data for p in result.pages] == [p.data for p in pages]


def test_receiver_repeats_its_answer_to_a_repeated_command():
    r = trained(dcs_for())
    for ev in page_events(page(), "mh"):
        r.handle(ev)
    r.handle(CarrierDown())
    feed(r, Frame(FCF.MPS), x=True)
    complete(r)
    out = r.handle(WrongCarrier())  # MPS again: our MCF was lost
    assert isinstance(last_io(out), ReceiveFrames)
    out = feed(r, Frame(FCF.MPS), x=True)
    assert sent_fcfs(out) == [FCF.MCF]
    assert isinstance(last_io(complete(r)), ReceivePageData)
    assert len(r.result.pages) == 1


def ecm_frames(p: Page, coding: str = "mmr") -> list[bytes]:
    from fastfax.t30.ecm import EcmSender

    return EcmSender(codec.encode(p, coding, msb_first=False, rtc=True), page=0).block_frames(0)


def test_receiver_ecm_ppr_rnr_and_duplicate_pps():
    dcs = dcs_for("mmr", ecm=True)
    r = trained(dcs, rnr_count=1)
    p = page(height=800)
    frames = ecm_frames(p)
    fcds = [f for f in frames if f[2] == FCF.FCD]
    for f in frames:
        r.handle(FrameReceived(f, ok=f is not fcds[2]))  # frame 2 arrives damaged
    assert isinstance(last_io(r.handle(CarrierDown())), ReceiveFrames)
    pps = Frame(FCF.PPS, Pps(FCF.EOP, 0, 0, len(fcds)).encode(x=True))
    out = feed(r, pps, x=True)
    assert sent_fcfs(out) == [FCF.RNR]  # not ready, once
    complete(r)
    out = feed(r, Frame(FCF.RR), x=True)
    answer = frames_of(last_io(out))[-1]
    assert answer.fcf == FCF.PPR and ppr_frames(answer.fif) == [2]
    assert isinstance(last_io(complete(r)), ReceiveEcmFrames)
    r.handle(FrameReceived(fcds[2]))
    r.handle(CarrierDown())
    out = feed(r, Frame(FCF.PPS, Pps(FCF.EOP, 0, 0, 1).encode(x=True)), x=True)  # SpanDSP's count
    assert sent_fcfs(out) == [FCF.MCF]
    complete(r)
    out = feed(r, pps, x=True)  # the sender missed our MCF
    assert sent_fcfs(out) == [FCF.MCF]
    complete(r)
    result = hangup(feed(r, Frame(FCF.DCN), x=True))
    assert result.ok and result.retransmitted_frames == 1
    assert [q.data for q in result.pages] == [p.data]


def test_receiver_ctc_changes_rate():
    r = trained(dcs_for("mmr", ecm=True))
    r.handle(CarrierDown())
    ctc_fif = bytes([0, Dcs(rate=Rate.V17_9600).encode()[1]])
    out = feed(r, Frame(FCF.CTC, ctc_fif), x=True)
    assert sent_fcfs(out) == [FCF.CTR]
    out = complete(r)
    assert last_io(out) == ReceiveEcmFrames(Rate.V17_9600, True)
    assert r.result.rate == 9600


def test_receiver_crp_for_a_garbled_command():
    r = trained(dcs_for())
    for ev in page_events(page(), "mh"):
        r.handle(ev)
    r.handle(CarrierDown())
    r.handle(FrameReceived(b"\xff\x13\x4f", ok=False))
    out = r.handle(CarrierDown())
    assert sent_fcfs(out) == [FCF.CRP]


def test_receiver_dis_repeats_then_t1():
    r = create(calling=False)
    r.handle(Connected())
    repeats = 0
    for _ in range(5):
        complete(r)
        out = r.handle(TimerExpired("T4"))
        repeats += sent_fcfs(out) == [FCF.CSI, FCF.DIS]
    assert repeats == 5
    out = r.handle(TimerExpired("T1"))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(r)).cause is Cause.T1_EXPIRED


def test_receiver_dcn_in_phase_b():
    r = create(calling=False)
    r.handle(Connected())
    complete(r)
    assert hangup(feed(r, Frame(FCF.DCN), x=True)).cause is Cause.RX_DCNWHY


def test_receiver_t2_without_page():
    r = trained(dcs_for())
    out = r.handle(TimerExpired("T2"))
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(r)).cause is Cause.RX_NOCARRIER


def test_receiver_t2_waiting_for_dcn_is_success():
    r = trained(dcs_for())
    for ev in page_events(page(), "mh"):
        r.handle(ev)
    r.handle(CarrierDown())
    feed(r, Frame(FCF.EOP), x=True)
    complete(r)
    result = hangup(r.handle(TimerExpired("T2")))
    assert result.ok and len(result.pages) == 1


# -- both, and the rules of the vocabulary ---------------------------------------------------


def test_hang_up_cancel_and_after_the_end():
    s = create(calling=True, pages=[page()])
    s.handle(Connected())
    assert hangup(s.handle(LineDropped())).cause is Cause.CALLDROPPED
    assert s.done and s.handle(Connected()) == [] and s.cancel() == []
    s = create(calling=True, pages=[page()])
    s.handle(Connected())
    out = s.cancel()
    assert sent_fcfs(out) == [FCF.DCN]
    assert hangup(complete(s)).cause is Cause.CANCELLED
    assert hangup(create(calling=False).handle(LineDropped())).cause is Cause.CALLDROPPED


def test_stale_timer_is_ignored():
    s = create(calling=True, pages=[page()])
    s.handle(Connected())
    feed(s, Frame(FCF.DIS, REMOTE.encode()))
    assert s.handle(TimerExpired("T1")) == []  # stopped when the DIS came


class Recorder:
    """Wraps a session and keeps every batch of actions it returns."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def handle(self, event):
        out = self.session.handle(event)
        self.batches.append(out)
        return out


@pytest.mark.parametrize("ecm", [False, True])
def test_each_batch_has_at_most_one_io_action_last(ecm):
    sides = [
        Recorder(create(calling=True, pages=[page(seed=i) for i in range(2)], ecm=ecm)),
        Recorder(create(calling=False)),
    ]
    tx, rx = Line(*sides, errors=2e-5, seed=1).run()
    assert tx.ok and rx.ok
    for side in sides:
        for batch in side.batches:
            found = [i for i, a in enumerate(batch) if a in io(batch)]
            assert len(found) <= 1 and (not found or found[0] == len(batch) - 1), batch


@pytest.mark.parametrize(
    "kwargs",
    [
        {"calling": True, "pages": []},
        {"calling": True, "pages": ["not a page"]},
        {"calling": True, "pages": [Page.blank(1000, 10)]},
        {"calling": True, "pages": [Page.blank(1728, 10, 150, 150)]},
        {"calling": True},
        {"calling": False, "pages": [Page.blank(1728, 10)]},
        {"calling": False, "ident": "x" * 21},
        {"calling": False, "ident": "caf\u00e9"},
        {"calling": False, "modems": ["v34"]},
        {"calling": False, "codings": ["mmr"]},
        {"calling": False, "resolutions": ["R99"]},
        {"calling": False, "timers": {"T9": 5}},
        {"calling": False, "timers": {"T4": -1}},
        {"calling": False, "rnr_count": -1},
        {"calling": True, "pages": [Page.blank(1728, 10)], "max_rate": 1200},
        {"calling": True, "pages": [Page.blank(1728, 10)], "ecm_frame_size": 100},
    ],
)
def test_bad_options_raise_session_error(kwargs):
    with pytest.raises(SessionError):
        create(**kwargs)


def test_bad_events_and_frames():
    s = create(calling=False)
    with pytest.raises(SessionError):
        s.handle("DIS")  # type: ignore[arg-type]
    s.handle(Connected())
    complete(s)
    assert io(s.handle(FrameReceived(b"\x00\x01"))) == []  # not a T.30 frame: ignored
    assert io(s.handle(FrameReceived(b"\xff\x13\x82\x00"))) == []  # DCS too short
    assert not s.done


def test_timer_table_and_overrides():
    s = create(calling=True, pages=[page()], timers={"T1": 1000})
    assert s.handle(Connected())[0] == StartTimer("T1", 1000)
    assert TIMERS["T4"] == 3000


def test_far_end_hangs_up_mid_page():
    s, dcs, data = to_phase_c(local_dis(receive=True, ecm=False))
    assert isinstance(data, SendPageData)
    result = hangup(s.handle(LineDropped()))
    assert result.cause is Cause.CALLDROPPED and result.pages == []
    r = trained(dcs_for())
    r.handle(page_events(page(), "mh")[0])
    result = hangup(r.handle(LineDropped()))
    assert result.cause is Cause.CALLDROPPED and result.pages == []
