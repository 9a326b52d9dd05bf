"""The sans-I/O T.38 terminal (fastfax.t38.terminal), in virtual time, without sockets.

Two terminals, each around a real T.30 engine, exchange datagrams through an in-memory
network whose impairments (loss, bursts, duplication, jitter, reordering, a cut) are seeded.
The oracles are independent of the terminal: the pages sent (received pages must equal
them pixel for pixel), asn1tools' aligned PER on the T.38 ASN.1 (what the terminal puts on
the wire), and the T.4 decoder for fill-bit removal. A scripted engine checks the events
the terminal makes of crafted IFP streams.
"""

from __future__ import annotations

import heapq
import random
from pathlib import Path

import asn1tools
import numpy as np
import pytest

from fastfax import codec, samples
from fastfax.errors import T38Error
from fastfax.page import Page
from fastfax.t30.dis import Rate
from fastfax.t30.engine import Engine
from fastfax.t30.events import (
    CarrierDown,
    CarrierUp,
    Connected,
    DataReceived,
    FrameReceived,
    ReceiveFrames,
    ReceivePageData,
    ReceiveTcf,
    SendComplete,
    SendFrames,
    SendPageData,
    StartTimer,
    WrongCarrier,
)
from fastfax.t30.result import Cause
from fastfax.t30.station import create
from fastfax.t38 import terminal as term
from fastfax.t38.ifp import DataType, FieldType, Indicator, encode_data, encode_indicator
from fastfax.t38.sdp import T38Params
from fastfax.t38.terminal import LOSS_MARK, T38Terminal, strip_fill
from fastfax.t38.udptl import UdptlEncoder, decode_datagram, encode_datagram

DATA = Path(__file__).parent / "data"
PER_UDPTL = asn1tools.compile_files(str(DATA / "udptl.asn"), "per")
PER_IFP = {
    0: asn1tools.compile_string((DATA / "t38_v0.asn").read_text(), "per"),
    3: asn1tools.compile_string((DATA / "t38.asn").read_text(), "per"),
}
REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
ROWS = 500  # rows of the test pages: a third of a standard page, quick to send


def page(resolution: str = "fine", seed: int = 1, rows: int = ROWS) -> Page:
    return samples.text_page(resolution=resolution, seed=seed, height=rows)


# ---------------------------------------------------------------------------------------
# The virtual network


class Network:
    """Datagrams between two terminals in virtual time. ``loss``: probability a datagram
    starts a loss burst of ``burst`` datagrams (per direction); ``dup``: probability it
    arrives twice; ``jitter``: extra delay drawn from 0..jitter s (so datagrams overtake
    each other); ``cut``: from this time on nothing arrives; ``drop(src, n, datagram)``:
    True drops datagram number ``n`` from side ``src`` (0 caller, 1 answerer)."""

    def __init__(self, *, seed=0, loss=0.0, burst=1, dup=0.0, jitter=0.0, delay=0.03,
                 cut=None, drop=None):
        self.rng = random.Random(seed)
        self.loss, self.burst, self.dup, self.jitter = loss, burst, dup, jitter
        self.delay, self.cut, self.drop = delay, cut, drop
        self.left = [0, 0]
        self.count = [0, 0]
        self.lost = 0

    def arrivals(self, src: int, now: float, datagram: bytes) -> list[float]:
        n = self.count[src]
        self.count[src] += 1
        if (self.cut is not None and now >= self.cut) or (
            self.drop is not None and self.drop(src, n, datagram)
        ):
            return []
        if self.left[src]:
            self.left[src] -= 1
            self.lost += 1
            return []
        if self.rng.random() < self.loss:
            self.left[src] = self.burst - 1
            self.lost += 1
            return []
        copies = 2 if self.rng.random() < self.dup else 1
        return [now + self.delay + self.rng.random() * self.jitter for _ in range(copies)]


def run(tx: T38Terminal, rx: T38Terminal, net: Network | None = None, *, limit: float = 900.0,
        wire: list | None = None, hook=None) -> float:
    """Play the call to its end; return its length in virtual seconds. ``wire`` collects
    ``(time, side, datagram)`` for every datagram sent; ``hook`` is ``(time, function)``:
    the function is called with the time once it is reached."""
    net = net or Network()
    queue: list = []
    n = 0
    now = 0.0
    tx.start(now)
    rx.start(now)
    sides = ((tx, rx, 0), (rx, tx, 1))
    while not (tx.done and rx.done):
        if hook is not None and now >= hook[0]:
            hook[1](now)
            hook = None
        for src, dst, side in sides:
            for datagram in src.poll(now):
                if wire is not None:
                    wire.append((now, side, datagram))
                for when in net.arrivals(side, now, datagram):
                    n += 1
                    heapq.heappush(queue, (when, n, dst, datagram))
        if tx.done and rx.done:
            break
        times = [t for t in (tx.next_deadline, rx.next_deadline) if t is not None]
        if queue:
            times.append(queue[0][0])
        if hook is not None:
            times.append(hook[0])
        assert times, "both terminals wait for nothing: a hang"
        now = max(now, min(times))
        assert now < limit, "the call did not end"
        while queue and queue[0][0] <= now:
            _, _, dst, datagram = heapq.heappop(queue)
            dst.datagram_received(datagram, now)
    return now


def pair(pages, *, tx=None, rx=None, params=None, **kw) -> tuple[T38Terminal, T38Terminal]:
    sender = T38Terminal(create(calling=True, pages=pages, **(tx or {})), params=params, **kw)
    receiver = T38Terminal(create(calling=False, **(rx or {})), params=params, **kw)
    return sender, receiver


# ---------------------------------------------------------------------------------------
# Calls between two terminals


MATRIX = [
    pytest.param(dict(ecm=True), T38Params(), "fine", id="ecm-mmr-v0"),
    pytest.param(dict(ecm=True, codings=["mh"]), T38Params(version=3), "fine", id="ecm-mh-v3"),
    pytest.param(dict(ecm=False, codings=["mh"]), T38Params(), "standard", id="mh-standard"),
    pytest.param(dict(ecm=False), T38Params(version=3), "fine", id="mr-fine-v3"),
    pytest.param(dict(ecm=True), T38Params(error_correction="fec"), "standard", id="ecm-fec"),
    pytest.param(dict(ecm=False), T38Params(error_correction="none"), "fine", id="mr-no-ec"),
    pytest.param(dict(ecm=False), T38Params(rate_management="localTCF"), "fine", id="mr-localtcf"),
    pytest.param(dict(ecm=True), T38Params(rate_management="localTCF", version=3), "standard",
                 id="ecm-localtcf-v3"),
    pytest.param(dict(ecm=False, codings=["mh"]), T38Params(fill_bit_removal=True), "fine",
                 id="mh-fill-removal"),
    pytest.param(dict(ecm=False, max_rate=4800), T38Params(), "fine", id="mr-v27-4800"),
    pytest.param(dict(ecm=True, modems=["v29", "v27ter"]), T38Params(version=3), "fine",
                 id="ecm-v29-9600"),
]


@pytest.mark.parametrize(("options", "params", "resolution"), MATRIX)
def test_call_delivers_pages_exactly(options, params, resolution):
    pages = [page(resolution, seed=1), page(resolution, seed=2, rows=200)]
    tx, rx = pair(pages, tx=options, rx={"ecm": options["ecm"]}, params=params)
    run(tx, rx)
    assert tx.result.ok and rx.result.ok, (tx.result, rx.result)
    assert rx.result.pages == pages
    assert rx.result.ecm == options["ecm"]
    if "codings" in options and options["codings"] == ["mh"]:
        assert rx.result.coding == "mh"
    if "max_rate" in options:
        assert rx.result.rate == options["max_rate"]
    assert tx.stats.ifp_malformed == rx.stats.ifp_malformed == 0


def test_localtcf_puts_no_tcf_data_on_the_wire():
    """With localTCF the training check is the training indicator alone; the receiver
    takes it as a good TCF and answers CFR."""
    pages = [page(rows=100)]
    for params, tcf_packets in ((T38Params(rate_management="localTCF"), 0),
                                (T38Params(), 50)):
        tx, rx = pair(pages, tx={"ecm": True}, params=params)
        wire: list = []
        run(tx, rx, wire=wire)
        assert tx.result.ok and rx.result.ok
        # Sender's t4-non-ecm-data before the first hdlc (ECM) data at high speed: the TCF.
        sent = [ifp_of(d, 0) for _, side, d in wire if side == 0]
        tcf = 0
        for ifp in sent:
            if ifp.get("data-field") and ifp["type-of-msg"][1] != "v21":
                kinds = {f["field-type"] for f in ifp["data-field"]}
                if "hdlc-data" in kinds:
                    break
                tcf += "t4-non-ecm-data" in kinds
        assert tcf >= tcf_packets and (tcf == 0) == (tcf_packets == 0)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(
    ("loss", "burst"), [(0.01, 1), (0.05, 1), (0.10, 1), (0.05, 3)], ids=["1%", "5%", "10%", "5%x3"]
)
def test_ecm_pages_exact_through_a_bad_network(loss, burst, seed):
    """Redundancy 3 over random loss up to 10 %, bursts of 3, duplicates, and 0-200 ms of
    jitter (reordering): ECM pages arrive bit-exact."""
    pages = [page(seed=seed)]
    tx, rx = pair(pages, tx={"ecm": True})
    net = Network(seed=seed, loss=loss, burst=burst, dup=0.05, jitter=0.2)
    run(tx, rx, net)
    assert net.lost > 0
    assert tx.result.ok and rx.result.ok, (tx.result, rx.result)
    assert rx.result.pages == pages
    assert rx.stats.udptl.recovered_redundancy > 0
    assert rx.stats.udptl.duplicates > 0


def test_ecm_pages_exact_with_fec():
    pages = [page(seed=3)]
    tx, rx = pair(pages, tx={"ecm": True}, params=T38Params(error_correction="fec", version=3))
    net = Network(seed=3, loss=0.05, dup=0.05, jitter=0.1)
    run(tx, rx, net)
    assert tx.result.ok and rx.result.ok and rx.result.pages == pages
    assert rx.stats.udptl.recovered_fec > 0


def test_non_ecm_page_exact_at_one_percent_loss():
    pages = [page(seed=4)]
    tx, rx = pair(pages, tx={"ecm": False})
    net = Network(seed=4, loss=0.01, dup=0.02, jitter=0.1)
    run(tx, rx, net)
    assert tx.result.ok and rx.result.ok and rx.result.pages == pages


def test_lost_page_data_shows_as_bad_rows():
    """Without error correction a page data packet that never arrives is not papered over:
    the receiver counts damaged rows."""
    pages = [page(seed=5, rows=800)]
    data_seen = [0]

    def drop(src, n, datagram):
        """Drop the caller's 150th t4-non-ecm-data packet (the TCF is 53)."""
        if src == 0 and is_page_data(datagram):
            data_seen[0] += 1
            return data_seen[0] == 150
        return False

    tx, rx = pair(pages, tx={"ecm": False, "codings": ["mh"]},
                  params=T38Params(error_correction="none"))
    run(tx, rx, Network(drop=drop))
    assert data_seen[0] > 150
    assert rx.stats.ifp_lost == 1
    assert rx.result.bad_rows >= 1 or rx.result.rtn_pages >= 1
    assert not rx.result.pages or rx.result.pages[0] != pages[0]


def is_page_data(datagram: bytes) -> bool:
    ifp = PER_UDPTL.decode("UDPTLPacket", datagram)["primary-ifp-packet"]
    fields = decode_ifp(ifp, 0).get("data-field") or ()
    return any(f["field-type"] == "t4-non-ecm-data" for f in fields)


@pytest.mark.parametrize("when", [0.0, 0.15, 0.3, 0.5, 0.7])
@pytest.mark.parametrize("ecm", [True, False])
def test_silent_far_end_ends_with_a_named_cause(when, ecm):
    """Everything stops arriving at a point of the call (a share of its length): both
    ends give up through the T.30 timers with a named cause, well within the timers'
    reach (no hang)."""
    pages = [page(seed=6)]
    whole = run(*pair(pages, tx={"ecm": ecm}))
    tx, rx = pair(pages, tx={"ecm": ecm})
    length = run(tx, rx, Network(cut=when * whole))
    assert not tx.result.ok
    assert tx.result.cause in {Cause.T1_EXPIRED, Cause.TX_PHBDEAD, Cause.TX_PHDDEAD}
    assert rx.result.cause in {Cause.T1_EXPIRED, Cause.RX_T2EXP, Cause.RX_NOCARRIER}
    assert length < 80


def test_cancel_sends_dcn():
    tx, rx = pair([page(seed=7)], tx={"ecm": True})
    run(tx, rx, hook=(12.0, tx.cancel))  # in phase C: the sender hangs up
    assert tx.result.cause is Cause.CANCELLED
    assert rx.result.cause in {Cause.RX_DCNDATA, Cause.RX_DCNFAX}


def test_line_dropped_ends_the_call():
    tx, rx = pair([page(seed=7)])
    tx.start(0.0)
    tx.poll(0.0)
    tx.line_dropped(1.0)
    assert tx.done and tx.result.cause is Cause.CALLDROPPED
    assert tx.next_deadline is None


def test_speed_runs_the_line_clock_faster():
    pages = [page(seed=8, rows=200)]
    slow = run(*pair(pages), Network(delay=0.0))
    tx, rx = pair(pages, speed=10.0)
    fast = run(tx, rx, Network(delay=0.0))
    assert tx.result.ok and rx.result.pages == pages
    assert fast == pytest.approx(slow / 10, rel=0.05)
    assert tx.line_time == pytest.approx(fast * 10, rel=0.01)


# ---------------------------------------------------------------------------------------
# What goes on the wire, read by asn1tools


def ifp_of(datagram: bytes, version: int) -> dict:
    packet = PER_UDPTL.decode("UDPTLPacket", datagram)
    return decode_ifp(packet["primary-ifp-packet"], version)


def decode_ifp(octets: bytes, version: int) -> dict:
    return PER_IFP[version].decode("IFPPacket", octets)


@pytest.mark.parametrize("version", [0, 3])
def test_v21_burst_on_the_wire(version):
    """The answering terminal's opening: no-signal, CED, then DIS's frames: no-signal,
    v21-preamble, 1 s later hdlc-data paced at 300 bit/s, octets bit-reversed (a final
    frame's control field reads C8), hdlc-fcs-OK between frames, hdlc-fcs-OK-sig-end last,
    no-signal. Indicators and the sig-end go out three times with one sequence number."""
    actions: list = []
    rx = T38Terminal(create(calling=False), params=T38Params(version=version),
                     trace=lambda t, what, item: actions.append(item) if what == "action" else 0)
    rx.start(0.0)
    wire = []
    now = 0.0
    while now < 6.0:
        wire += [(now, d) for d in rx.poll(now)]
        now = rx.next_deadline
    frames = next(a for a in actions if isinstance(a, SendFrames)).frames
    decoded = [(t, PER_UDPTL.decode("UDPTLPacket", d)) for t, d in wire]
    seqs = [p["seq-number"] for _, p in decoded]
    # Copies share a sequence number; the numbers run 0, 1, 2, ... without gaps.
    distinct = sorted(set(seqs))
    assert distinct == list(range(len(distinct)))
    packets = []
    for seq in distinct:
        same = [(t, p) for t, p in decoded if p["seq-number"] == seq]
        t, p = same[0]
        ifp = decode_ifp(p["primary-ifp-packet"], version)
        packets.append((t, ifp, len(same)))
        # Redundancy: each datagram carries the IFPs before it, newest first.
        secondary = p["error-recovery"][1]
        assert secondary == [decoded[seqs.index(seq - k)][1]["primary-ifp-packet"]
                             for k in range(1, min(3, seq) + 1)]

    def name(ifp):
        kind, value = ifp["type-of-msg"]
        if kind == "t30-indicator":
            return value
        return [f["field-type"] for f in ifp["data-field"]][0]

    names = [name(ifp) for _, ifp, _ in packets]
    assert names[:5] == ["no-signal", "ced", "no-signal", "v21-preamble", "hdlc-data"]
    assert names[-2:] == ["hdlc-fcs-OK-sig-end", "no-signal"]
    assert names.count("hdlc-fcs-OK") == len(frames) - 1
    for (_, ifp, copies), n in zip(packets, names, strict=True):
        assert copies == (3 if n in ("no-signal", "ced", "v21-preamble",
                                     "hdlc-fcs-OK-sig-end") else 1)
        if ifp["type-of-msg"][0] == "t30-data":
            assert ifp["type-of-msg"][1] == "v21"
    # CED lasts 3 s; the preamble 1 s before the first octet; octets at 300 bit/s.
    times = {n: t for (t, _, _), n in zip(reversed(packets), reversed(names), strict=True)}
    assert times["v21-preamble"] - times["ced"] >= 3.0
    assert times["hdlc-data"] - times["v21-preamble"] == pytest.approx(1.0)
    data = [(t, ifp["data-field"][0]["field-data"]) for t, ifp, _ in packets
            if name(ifp) == "hdlc-data"]
    for (t0, d0), (t1, _) in zip(data, data[1:], strict=False):
        assert t1 - t0 >= len(d0) * 8 / 300 - 1e-9
    # The frames, bit-reversed back, are what the engine sent.
    wire_frames, current = [], b""
    for _, ifp, _ in packets:
        if name(ifp) == "hdlc-data":
            current += ifp["data-field"][0]["field-data"]
        elif name(ifp).startswith("hdlc-fcs-OK"):
            wire_frames.append(current)
            current = b""
    assert [f.translate(REV) for f in wire_frames] == list(frames)
    assert wire_frames[-1][1] == 0xC8 and wire_frames[-1][0] == 0xFF


def test_page_data_on_the_wire():
    """Non-ECM page data: the training indicator of the rate (V.17 short after TCF),
    t4-non-ecm-data bit-reversed in ~30 ms packets at the bit rate, zero padding after
    RTC, t4-non-ecm-sig-end three times, no-signal."""
    actions: list = []
    pages = [page(seed=9, rows=300)]
    tx, rx = pair(pages, tx={"ecm": False}, params=T38Params(version=3))
    tx.trace = lambda t, what, item: actions.append(item) if what == "action" else 0
    wire: list = []
    run(tx, rx, wire=wire)
    assert rx.result.pages == pages
    send = next(a for a in actions if isinstance(a, SendPageData))
    assert send.rate is Rate.V17_14400 and send.short_train
    seen, packets = set(), []
    for t, side, d in wire:
        p = PER_UDPTL.decode("UDPTLPacket", d)
        if side == 0 and p["seq-number"] not in seen:
            seen.add(p["seq-number"])
            packets.append((t, decode_ifp(p["primary-ifp-packet"], 3)))
    start = next(i for i, (_, ifp) in enumerate(packets)
                 if ifp["type-of-msg"] == ("t30-indicator", "v17-14400-short-training"))
    chunks, times = [], []
    for t, ifp in packets[start + 1:]:
        fields = ifp["data-field"]
        if fields[0]["field-type"] != "t4-non-ecm-data":
            break
        assert ifp["type-of-msg"] == ("t30-data", "v17-14400")
        chunks.append(fields[0]["field-data"])
        times.append(t)
    assert packets[start + 1 + len(chunks)][1]["data-field"][0]["field-type"] == \
        "t4-non-ecm-sig-end"
    assert packets[start + 2 + len(chunks)][1]["type-of-msg"] == ("t30-indicator", "no-signal")
    assert {len(c) for c in chunks} == {54}  # 30 ms at 14400 bit/s
    assert times[1] - times[0] == pytest.approx(0.03)
    data = b"".join(chunks).translate(REV)
    assert data.startswith(send.data)
    tail = data[len(send.data):]
    assert tail == bytes(len(tail)) and len(tail) >= 3 * 54


def test_fill_bit_removal_on_the_wire():
    """With fill-bit removal the sender strips fill: the wire holds less, and what it holds
    decodes to the page."""
    pg = page(seed=10, rows=120)
    data = codec.encode(pg, "mh", msb_first=False, rtc=True, min_row_bits=1200)
    out = {}
    for fbr in (False, True):
        t = T38Terminal(Script(calling=True, first=[SendPageData(Rate.V29_9600, data)]),
                        params=T38Params(fill_bit_removal=fbr), tones=False)
        t.start(0.0)
        chunks, now = [], 0.0
        while not t.engine.events or not isinstance(t.engine.events[-1], SendComplete):
            for d in t.poll(now):
                ifp = ifp_of(d, 0)
                for f in ifp.get("data-field") or ():
                    if f["field-type"] == "t4-non-ecm-data":
                        chunks.append(f["field-data"])
            now = t.next_deadline
        out[fbr] = b"".join(chunks).translate(REV)
    assert len(out[True]) < len(out[False]) // 2
    assert codec.decode(out[True], 1728, "mh", msb_first=False) == pg
    assert codec.decode(out[False], 1728, "mh", msb_first=False) == pg


@pytest.mark.parametrize("scheme", ["mh", "mr"])
@pytest.mark.parametrize("min_bits", [0, 300, 2000])
def test_strip_fill_keeps_the_page(scheme, min_bits):
    pg = page(seed=11, rows=150)
    data = codec.encode(pg, scheme, msb_first=False, rtc=True, min_row_bits=min_bits)
    stripped = strip_fill(data)
    assert codec.decode(stripped, 1728, scheme, msb_first=False) == pg
    assert strip_fill(stripped) == stripped
    bits = np.unpackbits(np.frombuffer(stripped, np.uint8), bitorder="little")
    ones = np.flatnonzero(bits)
    assert (np.diff(ones) - 1).max() <= 14
    if min_bits >= 2000:
        assert len(stripped) < len(data) // 2


# ---------------------------------------------------------------------------------------
# Crafted IFP streams into a scripted engine


class Script(Engine):
    """An engine that answers ``Connected`` with the actions ``first`` and records every
    event; ``on`` maps an event type to the actions it answers with."""

    def __init__(self, *, calling: bool = False, first=(), on=None):
        super().__init__(calling=calling, sending=calling, ident="", nsf=None, timers=None)
        self.first, self.on, self.events = list(first), dict(on or {}), []

    def handle(self, event):
        self.events.append(event)
        if isinstance(event, Connected):
            return self.first
        return list(self.on.get(type(event), []))


class FarEnd:
    """Builds a peer's datagrams; ``fresh=True`` gives each repeated copy its own sequence
    number (as some T.38 stacks send them)."""

    def __init__(self, version: int = 0, fresh: bool = False, redundancy: int = 0):
        self.version, self.fresh = version, fresh
        self.udptl = UdptlEncoder(error_correction="redundancy", redundancy=redundancy,
                                  max_datagram=65507)

    def ind(self, indicator, copies=3):
        ifp = encode_indicator(indicator, self.version)
        return self._out(ifp, copies)

    def data(self, data_type, fields, copies=1):
        ifp = encode_data(data_type, fields, self.version)
        return self._out(ifp, copies)

    def _out(self, ifp, copies):
        if self.fresh:
            return [self.udptl.pack(ifp) for _ in range(copies)]
        return [self.udptl.pack(ifp)] * copies

    def hdlc(self, frames, data_type=DataType.V21, chunk=4, end=True):
        out = []
        for i, frame in enumerate(frames):
            wire = frame.translate(REV)
            for k in range(0, len(wire), chunk):
                out += self.data(data_type, [(FieldType.HDLC_DATA, wire[k:k + chunk])])
            last = i == len(frames) - 1 and end
            ft = FieldType.HDLC_FCS_OK_SIG_END if last else FieldType.HDLC_FCS_OK
            out += self.data(data_type, [(ft, b"")], copies=3 if last else 1)
        return out


def listen(action, **kw) -> tuple[T38Terminal, Script]:
    engine = Script(first=[StartTimer("T1", 600_000), action])
    t = T38Terminal(engine, tones=False, **kw)
    t.start(0.0)
    return t, engine


def feed(t: T38Terminal, datagrams, now: float = 1.0):
    for d in datagrams:
        t.datagram_received(d, now)
        t.poll(now)
        now += 0.01
    return now


def received(engine: Script) -> list:
    return [e for e in engine.events if not isinstance(e, Connected)]


DIS = b"\xff\x13\x80\x00\xee\xfa\xc4\x80\x07"
CSI = b"\xff\x03\x40" + b"4321 " * 4


@pytest.mark.parametrize("fresh", [False, True])
def test_repeats_make_no_duplicate_events(fresh):
    t, engine = listen(ReceiveFrames())
    far = FarEnd(fresh=fresh)
    stream = (far.ind(Indicator.V21_PREAMBLE) + far.hdlc([CSI, DIS])
              + far.data(DataType.V21, [(FieldType.HDLC_FCS_OK, b"")], copies=2)
              + far.ind(Indicator.NO_SIGNAL))
    feed(t, stream)
    assert received(engine) == [CarrierUp(), FrameReceived(CSI, True), FrameReceived(DIS, True),
                                CarrierDown()]


def test_lost_packet_makes_the_frame_bad():
    t, engine = listen(ReceiveFrames())
    far = FarEnd()
    stream = far.ind(Indicator.V21_PREAMBLE) + far.hdlc([CSI, DIS])
    # Without redundancy, the datagram carrying CSI's third chunk never arrives; the next
    # datagram shows the gap, which the terminal gives up on after gap_wait.
    lost = stream[3 + 2]
    now = feed(t, [d for d in stream if d is not lost])
    t.poll(now + 1.0)
    assert t.stats.ifp_lost == 1
    events = received(engine)
    frames = [e for e in events if isinstance(e, FrameReceived)]
    assert [f.ok for f in frames] == [False, True]
    assert frames[1].data == DIS
    assert events[-1] == CarrierDown()


def test_v21_during_a_page_receive_is_wrong_carrier():
    t, engine = listen(ReceivePageData(Rate.V17_14400, True))
    far = FarEnd()
    feed(t, far.ind(Indicator.V21_PREAMBLE) + far.hdlc([DIS]))
    assert received(engine)[0] == WrongCarrier()
    assert FrameReceived(DIS, True) not in received(engine)  # the engine did not switch


def test_page_data_and_its_loss():
    t, engine = listen(ReceivePageData(Rate.V29_9600), params=T38Params(error_correction="none"))
    far = FarEnd()
    chunks = [bytes([k]) * 36 for k in range(1, 9)]
    stream = far.ind(Indicator.V29_9600_TRAINING)
    stream += [far.data(DataType.V29_9600, [(FieldType.T4_NON_ECM_DATA, c)])[0] for c in chunks]
    stream += far.data(DataType.V29_9600, [(FieldType.T4_NON_ECM_SIG_END, b"")], copies=3)
    lost = stream[3 + 4]  # chunks[4]
    now = feed(t, [d for d in stream if d is not lost])
    t.poll(now + 1.0)
    events = received(engine)
    assert events[0] == CarrierUp() and events[-1] == CarrierDown()
    data = b"".join(e.data for e in events if isinstance(e, DataReceived))
    want = b"".join(c.translate(REV) for c in chunks[:4]) + LOSS_MARK + b"".join(
        c.translate(REV) for c in chunks[5:])
    assert data == want


def test_local_tcf_takes_the_training_indicator_as_good_tcf():
    t, engine = listen(ReceiveTcf(Rate.V17_9600), params=T38Params(rate_management="localTCF"))
    far = FarEnd()
    feed(t, far.ind(Indicator.V17_9600_LONG_TRAINING) + far.ind(Indicator.NO_SIGNAL))
    assert received(engine) == [CarrierUp(), DataReceived(bytes(9600 * 1500 // 8000)),
                                CarrierDown()]


def test_transferred_tcf_a_training_without_data_is_no_tcf():
    t, engine = listen(ReceiveTcf(Rate.V17_9600))
    far = FarEnd()
    feed(t, far.ind(Indicator.V17_9600_LONG_TRAINING) + far.ind(Indicator.NO_SIGNAL))
    assert received(engine) == [CarrierDown()]


def test_what_arrives_while_sending_is_held_for_the_next_receive():
    engine = Script(first=[SendFrames((DIS,))], on={SendComplete: [ReceiveFrames()]})
    t = T38Terminal(engine, tones=False)
    t.start(0.0)
    t.poll(0.0)
    far = FarEnd()
    feed(t, far.ind(Indicator.V21_PREAMBLE) + far.hdlc([CSI]), now=0.5)
    assert received(engine) == []  # still sending: V.21 at 300 bit/s takes > 1 s
    now = 0.5
    while SendComplete() not in engine.events:
        now = t.next_deadline
        t.poll(now)
    assert received(engine) == [SendComplete(), CarrierUp(), FrameReceived(CSI, True),
                                CarrierDown()]


def test_a_signal_that_stops_is_closed_after_signal_idle():
    t, engine = listen(ReceiveFrames(), signal_idle=2.0)
    far = FarEnd()
    part = DIS[:4].translate(REV)
    feed(t, far.ind(Indicator.V21_PREAMBLE) + far.data(DataType.V21, [(FieldType.HDLC_DATA,
                                                                          part)]))
    assert t.next_deadline == pytest.approx(1.03 + 2.0, abs=0.02)
    t.poll(5.0)
    assert received(engine) == [CarrierUp(), FrameReceived(DIS[:4], False), CarrierDown()]


# ---------------------------------------------------------------------------------------
# Hostile input


def hostile_datagrams(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    far = FarEnd(version=3)
    valid = (far.ind(Indicator.V21_PREAMBLE) + far.hdlc([CSI, DIS])
             + far.ind(Indicator.V17_14400_LONG_TRAINING)
             + far.data(DataType.V17_14400, [(FieldType.T4_NON_ECM_DATA, bytes(54))] * 3))
    out: list[bytes] = [b"", b"\x00", b"\xff" * 3, bytes(65507)]
    out += [d[:k] for d in valid[:6] for k in range(len(d))]
    out += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(300)]
    for _ in range(200):  # well-formed UDPTL carrying random IFP octets
        ifp = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        out.append(encode_datagram(rng.randrange(65536), ifp, []))
    big = [
        encode_data(DataType.V21, [(FieldType.HDLC_DATA, bytes(16000))], 3),
        encode_data(DataType.V17_14400, [(FieldType.T4_NON_ECM_DATA, b"\xff" * 16000)], 3),
        encode_data(DataType.V8, [(FieldType.CM_MESSAGE, b"1")], 3),
        encode_data(DataType.V34_PRI_RATE, [(FieldType.V34RATE, b"336")], 3),
        encode_data(DataType.V21, [(FieldType.HDLC_FCS_BAD_SIG_END, b"\x01" * 100)] * 100, 3),
        encode_indicator(Indicator.V8_ANSAM, 3),
        encode_indicator(Indicator.V34_PRI_CHANNEL, 3),
    ]
    seq = 0
    for _ in range(60):  # a stream of valid but senseless IFPs, in sequence
        out.append(encode_datagram(seq, rng.choice(big), []))
        seq += 1
    return out


@pytest.mark.parametrize("mode", [ReceiveFrames(), ReceivePageData(Rate.V17_14400, True)])
@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_datagrams_never_raise(mode, seed):
    t, engine = listen(mode, params=T38Params(version=3))
    now = 1.0
    for d in hostile_datagrams(seed):
        t.datagram_received(d, now)
        t.poll(now)
        now += 0.001
    assert t.stats.udptl.malformed > 100
    assert t.stats.ifp_malformed > 10
    assert len(t._frame) <= term.MAX_FRAME
    assert len(t._held) <= term.MAX_HELD and t._held_octets <= term.MAX_HELD_OCTETS
    assert all(isinstance(e, (CarrierUp, CarrierDown, FrameReceived, DataReceived,
                              WrongCarrier)) for e in received(engine))


def test_hostile_datagrams_mid_call_do_not_stop_it():
    """Garbage (not UDPTL) mixed into the caller's stream: counted, dropped, the call goes
    on to deliver the page."""
    pages = [page(seed=12, rows=200)]
    tx, rx = pair(pages)
    junk = [d for d in hostile_datagrams(3) if not is_udptl(d)]
    rng = random.Random(3)
    original = rx.datagram_received

    def with_junk(data, now):
        if rng.random() < 0.2:
            original(rng.choice(junk), now)
        original(data, now)

    rx.datagram_received = with_junk
    run(tx, rx)
    assert tx.result.ok and rx.result.ok and rx.result.pages == pages
    assert rx.stats.udptl.malformed > 0


def is_udptl(datagram: bytes) -> bool:
    try:
        decode_datagram(datagram)
    except T38Error:
        return False
    return True


def test_the_hold_is_bounded():
    engine = Script(first=[SendFrames((DIS,) * 2000)])
    t = T38Terminal(engine, tones=False)
    t.start(0.0)
    far = FarEnd()
    stream = far.ind(Indicator.V17_14400_LONG_TRAINING)
    stream += [far.data(DataType.V17_14400, [(FieldType.T4_NON_ECM_DATA, bytes(16000))])[0]
               for _ in range(100)]
    feed(t, stream)
    assert t._held_octets <= term.MAX_HELD_OCTETS
    assert t.stats.held_dropped > 0


# ---------------------------------------------------------------------------------------
# Set-up


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(speed=0), "speed"),
        (dict(speed=True), "speed"),
        (dict(gap_wait=-1), "gap_wait"),
        (dict(params=T38Params(version=4)), "version"),
        (dict(params={"version": 0}), "T38Params"),
        (dict(params=T38Params(max_datagram=12)), "max_datagram"),
    ],
)
def test_bad_options_raise_t38error(kw, match):
    with pytest.raises(T38Error, match=match):
        T38Terminal(create(calling=False), **kw)


def test_not_an_engine():
    with pytest.raises(T38Error, match="engine"):
        T38Terminal(object())  # type: ignore[arg-type]


def test_datagrams_before_start_are_ignored():
    t = T38Terminal(create(calling=False))
    t.datagram_received(b"\x00\x00\x01\x00\x00", 0.0)
    assert t.poll(0.0) == [] and t.next_deadline is None
    assert t.stats.ignored == 1
    t.start(0.0)
    with pytest.raises(T38Error, match="already"):
        t.start(0.0)


def test_frame_extra_bits_counts_stuffed_zeros():
    """An HDLC frame's extra line bits: a zero stuffed after every 5 ones in a row (line
    order, least significant bit of each octet first, runs crossing octets), the FCS
    with 3 bits for its stuffing and two flags. Oracle: the runs of ones counted in the
    frame's bits as a string."""
    from fastfax.t38._terminal import frame_extra_bits

    def stuffed(frame: bytes) -> int:
        line = "".join(f"{octet:08b}"[::-1] for octet in frame)
        return sum(len(run) // 5 for run in line.split("0"))

    rng = random.Random(5)
    frames = [b"", b"\xff", b"\x1f", b"\xf8\x03", b"\xff" * 40, bytes(range(256))]
    frames += [bytes(rng.choice((0xFF, 0xFE, 0x7F, 0xF0, 0x0F, 0, rng.randrange(256)))
                     for _ in range(rng.randrange(1, 300))) for _ in range(500)]  # fmt: skip
    for frame in frames:
        assert frame_extra_bits(frame) == stuffed(frame) + 16 + 3 + 16, frame.hex()


@pytest.mark.parametrize("speed", [1.0, 1000.0])
def test_polled_at_its_deadline_a_terminal_moves_on_on_a_clock_up_for_long(speed):
    """Polled at :attr:`next_deadline` (caller's seconds) a terminal acts: the next
    deadline is later. With the caller's clock at 17,000 s (a machine up for hours) and
    the line 1,000 times faster, a deadline converted to caller's time and back used to
    come out a hair early one time in five, and the terminal, polled, did nothing and
    asked again for the same moment, for ever."""
    t0 = 17_000.123456
    rx = T38Terminal(create(calling=False), params=T38Params(version=0), speed=speed)
    rx.start(t0)
    now, polls = t0, 0
    while not rx.done and polls < 2000:
        rx.poll(now)
        polls += 1
        nxt = rx.next_deadline
        if nxt is None:
            break
        assert nxt > now, (polls, nxt, now)
        now = nxt
    assert rx.done or polls == 2000
