"""End-to-end sessions over the in-memory loopback line: our sender to our receiver, and
our engine against SpanDSP's own T.30 engine (tests/peers/t30_peer.c) on the same line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fastfax import samples, tiff
from fastfax.page import Page
from fastfax.t30.events import (
    FrameNote,
    FrameReceived,
    Negotiated,
    PageReceived,
    PageSent,
    StartTimer,
)
from fastfax.t30.frames import FCF, Nsf, Pps
from fastfax.t30.result import Cause
from fastfax.t30.station import create
from fastfax.transport.loopback import Line, LoopbackError, call

sys.path.insert(0, str(Path(__file__).parent / "peers"))
import t30_peer  # noqa: E402

RES = {"standard": (204, 98), "fine": (204, 196)}


def pages_of(n: int, resolution: str = "fine", height: int = 500) -> list[Page]:
    return [samples.text_page(resolution=resolution, height=height, seed=s) for s in range(n)]


def same(a: Page, b: Page) -> bool:
    return (a.width, a.height, a.data) == (b.width, b.height, b.data)


def all_same(want: list[Page], got: list[Page]) -> bool:
    return len(want) == len(got) and all(same(a, b) for a, b in zip(want, got, strict=True))


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("resolution", ["standard", "fine"])
@pytest.mark.parametrize(
    "coding,ecm", [("mh", False), ("mr", False), ("mh", True), ("mr", True), ("mmr", True)]
)
def test_pages_arrive_pixel_exact(n, resolution, coding, ecm):
    src = pages_of(n, resolution)
    codings = {"mh": ["mh"], "mr": ["mh", "mr"], "mmr": ["mh", "mr", "mmr"]}[coding]
    tx, rx = call(src, sender={"ecm": ecm, "codings": codings, "ident": "+1 555 0100"},
                  receiver={"ident": "RECEIVER 7"})  # fmt: skip
    assert tx.ok and rx.ok, (tx, rx)
    assert len(rx.pages) == len(tx.pages) == n
    assert all_same(src, rx.pages)
    assert all((p.xres, p.yres) == RES[resolution] for p in rx.pages)
    for r in (tx, rx):
        assert (r.rate, r.modem, r.coding, r.ecm) == (14400, "v17", coding, ecm)
        assert r.resolution == ("R8x7.7" if resolution == "fine" else "R8x3.85")
        assert r.bad_rows == r.retransmitted_frames == 0
    assert tx.remote_id == "RECEIVER 7" and rx.remote_id == "+1 555 0100"


def test_progress_events_and_tiff_input(tmp_path):
    src = pages_of(3, "standard", 300)
    path = tmp_path / "doc.tif"
    tiff.write(path, src, "g4")
    seen: list[object] = []
    tx, rx = call(path, on_event=seen.append)
    assert tx.ok and rx.ok
    sent = [e.number for e in seen if isinstance(e, PageSent)]
    got = [e.number for e in seen if isinstance(e, PageReceived) and e.accepted]
    assert sent == got == [1, 2, 3]
    assert sum(isinstance(e, Negotiated) for e in seen) == 2  # one per station
    assert all_same(src, rx.pages)


def sent_frames(line: Line, side: str) -> list[str]:
    return [a.name for _, s, a in line.log if s == side and isinstance(a, FrameNote) and a.sent]


@pytest.mark.parametrize("ecm", [False, True])
def test_mixed_resolutions_go_through_eom(ecm):
    src = [pages_of(1, "standard", 200)[0], pages_of(1, "fine", 300)[0]]
    line = Line(create(calling=True, pages=src, ecm=ecm), create(calling=False))
    tx, rx = line.run()
    assert tx.ok and rx.ok
    names = sent_frames(line, "sender")
    assert names.count("DCS") == 2 and ("EOM" in names) != ecm
    assert sent_frames(line, "receiver").count("DIS") == 2
    assert [p.yres for p in rx.pages] == [98, 196]
    assert all_same(src, rx.pages)


@pytest.mark.parametrize(
    "sender,receiver,rate",
    [
        ({"max_rate": 9600}, {}, 9600),
        ({}, {"modems": ["v29", "v27ter"]}, 9600),
        ({}, {"modems": ["v27ter"]}, 4800),
        ({"ecm": False}, {}, 14400),
    ],
)
def test_negotiation_limits(sender, receiver, rate):
    tx, rx = call(pages_of(1, "standard", 100), sender=sender, receiver=receiver)
    assert tx.ok and rx.ok
    assert tx.rate == rx.rate == rate
    assert tx.ecm == rx.ecm == sender.get("ecm", True)


def test_ecm_with_bit_errors_is_bit_exact_through_ppr():
    src = pages_of(2, "fine", 600)
    tx, rx = call(src, errors=2e-5, seed=3)
    assert tx.ok and rx.ok, (tx, rx)
    assert all_same(src, rx.pages)
    assert tx.retransmitted_frames > 0
    assert rx.retransmitted_frames >= tx.retransmitted_frames


def test_non_ecm_with_bit_errors_reports_bad_rows():
    src = pages_of(2, "fine", 1200)
    tx, rx = call(src, sender={"ecm": False}, errors=1e-5, seed=5)
    assert tx.ok and rx.ok, (tx, rx)
    assert rx.bad_rows == sum(p.bad_rows for p in rx.pages) > 0
    for a, b in zip(src, rx.pages, strict=True):
        # A damaged page says so: no silent differences.
        assert same(a, b) == (b.bad_rows == 0)


def test_heavy_errors_non_ecm_end_with_a_named_cause():
    tx, rx = call(pages_of(1, "fine", 1200), sender={"ecm": False}, errors=3e-3, seed=1)
    assert not tx.ok
    assert tx.cause in (Cause.CANNOT_TRAIN, Cause.TX_BADPG)
    assert rx.cause is not Cause.OK


def test_lost_control_frames_are_recovered():
    src = pages_of(2, "standard", 300)
    tx, rx = call(src, frame_loss=0.15, seed=11)
    assert tx.ok and rx.ok, (tx, rx)
    assert all_same(src, rx.pages)


def test_garbled_control_frames_are_recovered():
    src = pages_of(2, "standard", 200)
    garbled = 0
    for seed in range(8):
        tx_session, rx_session = create(calling=True, pages=src), create(calling=False)
        line = Line(tx_session, rx_session, v21_errors=1.5e-3, seed=seed)
        tx, rx = line.run()
        assert tx.ok and rx.ok, (seed, tx, rx)
        assert all_same(src, rx.pages)
        garbled += sum(isinstance(e, FrameReceived) and not e.ok for _, _, e in line.log)
    assert garbled > 0


def test_receiver_not_ready_is_polled_with_rr():
    line = Line(create(calling=True, pages=pages_of(1, "standard", 200)),
                create(calling=False, rnr_count=2))  # fmt: skip
    tx, rx = line.run()
    assert tx.ok and rx.ok
    assert sent_frames(line, "receiver").count("RNR") == 2
    assert sent_frames(line, "sender").count("RR") == 2


def test_bad_line_options():
    with pytest.raises(LoopbackError):
        call(pages_of(1, "standard", 10), errors=1.5)
    with pytest.raises(LoopbackError):
        call(pages_of(1, "standard", 10), delay_ms=-1)


# -- against SpanDSP's T.30 engine ---------------------------------------------------------


@pytest.fixture(scope="module")
def peer_built():
    try:
        return t30_peer.build()
    except t30_peer.PeerUnavailable as exc:
        pytest.skip(str(exc))


T4_MH, T4_MR, T6 = 0x02, 0x04, 0x08


@pytest.mark.parametrize("ecm", [False, True])
@pytest.mark.parametrize(
    "n,resolution,comp,coding",
    [(1, "standard", T4_MH, "mh"), (3, "fine", T4_MH | T4_MR, "mr"),
     (3, "fine", T4_MH | T4_MR | T6, "mmr"), (1, "fine", T4_MH | T6, "mmr")],
)  # fmt: skip
def test_we_send_to_spandsp(peer_built, tmp_path, ecm, n, resolution, comp, coding):
    src = pages_of(n, resolution, 400)
    rx_tif = tmp_path / "rx.tif"
    peer = t30_peer.SpanT30(calling=False, receive=rx_tif, ecm=ecm, compressions=comp,
                            log_path=tmp_path / "spandsp.log")  # fmt: skip
    try:
        tx, _ = Line(create(calling=True, pages=src, ident="FASTFAX TX"), peer).run()
    finally:
        peer.close()
    want = coding if ecm or coding != "mmr" else ("mr" if comp & T4_MR else "mh")
    assert tx.ok, (tx, peer.code, peer.log[-3000:])
    assert peer.code == t30_peer.T30_ERR_OK
    assert (tx.coding, tx.ecm) == (want, ecm)
    assert peer.stats["pages_rx"] == n and bool(peer.stats["ecm"]) == ecm
    assert peer.stats["remote_ident"].strip() == "FASTFAX TX"
    assert tx.remote_id == "SPANDSP T30"
    got = tiff.read(rx_tif)
    assert len(got) == n and all_same(src, got)


@pytest.mark.parametrize("ecm", [False, True])
@pytest.mark.parametrize("n,resolution", [(1, "standard"), (3, "fine")])
def test_spandsp_sends_to_us(peer_built, tmp_path, ecm, n, resolution):
    src = pages_of(n, resolution, 400)
    tx_tif = tmp_path / "tx.tif"
    tiff.write(tx_tif, src, "g3")
    peer = t30_peer.SpanT30(calling=True, send=tx_tif, ecm=ecm, log_path=tmp_path / "sp.log")
    try:
        _, rx = Line(peer, create(calling=False, ident="FASTFAX RX")).run()
    finally:
        peer.close()
    assert rx.ok, (rx, peer.log[-3000:])
    assert peer.code == t30_peer.T30_ERR_OK and peer.stats["pages_tx"] == n
    assert rx.remote_id == "SPANDSP T30" and rx.ecm == ecm
    assert rx.coding == ("mmr" if ecm else "mr")
    assert len(rx.pages) == n and all_same(src, rx.pages)


def test_ecm_errors_against_spandsp_both_ways(peer_built, tmp_path):
    src = pages_of(2, "fine", 600)
    peer = t30_peer.SpanT30(calling=False, receive=tmp_path / "rx.tif")
    try:
        tx, _ = Line(create(calling=True, pages=src), peer, errors=2e-5, seed=4).run()
    finally:
        peer.close()
    assert tx.ok and peer.code == t30_peer.T30_ERR_OK, peer.log[-3000:]
    assert tx.retransmitted_frames > 0
    assert all_same(src, tiff.read(tmp_path / "rx.tif"))

    tiff.write(tmp_path / "tx.tif", src, "g4")
    peer = t30_peer.SpanT30(calling=True, send=tmp_path / "tx.tif")
    try:
        _, rx = Line(peer, create(calling=False), errors=2e-5, seed=4).run()
    finally:
        peer.close()
    assert rx.ok and peer.code == t30_peer.T30_ERR_OK, peer.log[-3000:]
    assert rx.retransmitted_frames > 0 and peer.stats["ecm_retries"] >= 0
    assert all_same(src, rx.pages)


def test_spandsp_receiver_not_ready(peer_built, tmp_path):
    peer = t30_peer.SpanT30(calling=False, receive=tmp_path / "rx.tif", rnr=2)
    line = Line(create(calling=True, pages=pages_of(1, "standard", 200)), peer)
    try:
        tx, _ = line.run()
    finally:
        peer.close()
    assert tx.ok and peer.code == t30_peer.T30_ERR_OK, peer.log[-3000:]
    assert sent_frames(line, "sender").count("RR") >= 2


def test_spandsp_sends_non_ecm_through_noise_and_we_count_bad_rows(peer_built, tmp_path):
    src = pages_of(2, "fine", 1200)
    tiff.write(tmp_path / "tx.tif", src, "g3")
    peer = t30_peer.SpanT30(calling=True, send=tmp_path / "tx.tif", ecm=False)
    try:
        _, rx = Line(peer, create(calling=False), errors=1e-5, seed=1).run()
    finally:
        peer.close()
    assert rx.ok and peer.code == t30_peer.T30_ERR_OK
    assert rx.bad_rows == sum(p.bad_rows for p in rx.pages) > 0
    for a, b in zip(src, rx.pages, strict=True):
        assert same(a, b) or b.bad_rows > 0  # no silent damage


def test_ecm_pages_of_several_blocks():
    src = [
        samples.text_page(resolution="fine", seed=7)
    ]  # ~30 KB of MMR: 2 blocks of 64-octet frames
    line = Line(create(calling=True, pages=src, ecm_frame_size=64), create(calling=False),
                errors=1e-5, seed=2)  # fmt: skip
    tx, rx = line.run()
    assert tx.ok and rx.ok, (tx, rx)
    assert all_same(src, rx.pages)
    pps = [a for _, s, a in line.log if s == "receiver" and isinstance(a, FrameReceived)
           and a.data[2:3] == bytes([FCF.PPS | 1])]  # fmt: skip
    assert {Pps.parse(f.data[3:]).block for f in pps} == {0, 1}


def test_ecm_blocks_to_spandsp(peer_built, tmp_path):
    src = [samples.text_page(resolution="fine", seed=7)]
    peer = t30_peer.SpanT30(calling=False, receive=tmp_path / "rx.tif")
    try:
        tx, _ = Line(create(calling=True, pages=src, ecm_frame_size=64), peer).run()
    finally:
        peer.close()
    assert tx.ok and peer.code == t30_peer.T30_ERR_OK, peer.log[-3000:]
    assert all_same(src, tiff.read(tmp_path / "rx.tif"))


def test_nsf_names_the_vendor_both_ways():
    canon = Nsf(0x00, b"\x00\x11", b"model").encode()
    panasonic = Nsf(0x00, b"\x00\x0e").encode()
    tx, rx = call(pages_of(1, "standard", 50), sender={"nsf": canon}, receiver={"nsf": panasonic})
    assert tx.ok and rx.ok
    assert (rx.nsf_vendor, rx.remote_nsf) == ("Canon", canon)
    assert (tx.nsf_vendor, tx.remote_nsf) == ("Panasonic", panasonic)


V27TER, V29 = 0x01, 0x02


@pytest.mark.parametrize("modems,rate", [(V29 | V27TER, 9600), (V27TER, 4800)])
def test_spandsp_modem_limits_both_ways(peer_built, tmp_path, modems, rate):
    src = pages_of(1, "standard", 200)
    peer = t30_peer.SpanT30(calling=False, receive=tmp_path / "rx.tif", modems=modems)
    try:
        tx, _ = Line(create(calling=True, pages=src), peer).run()
    finally:
        peer.close()
    assert tx.ok and tx.rate == rate and peer.stats["bit_rate"] == rate
    tiff.write(tmp_path / "tx.tif", src, "g4")
    peer = t30_peer.SpanT30(calling=True, send=tmp_path / "tx.tif", modems=modems)
    try:
        _, rx = Line(peer, create(calling=False)).run()
    finally:
        peer.close()
    assert rx.ok and rx.rate == rate and all_same(src, rx.pages)


class _Stuck:
    """A broken engine: never hangs up (``forever``: keeps a timer going)."""

    def __init__(self, forever: bool):
        self.forever = forever

    def handle(self, event):
        return [StartTimer("T1", 10)] if self.forever else []


@pytest.mark.parametrize("forever", [False, True])
def test_a_runaway_engine_is_reported_not_looped(forever):
    line = Line(_Stuck(forever), create(calling=False), max_events=5000)
    with pytest.raises(LoopbackError):
        line.run()
