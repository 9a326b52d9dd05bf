"""T.38 packet-path benchmark: IFP + UDPTL encode and decode, fastfax against SpanDSP's
``t38_core`` (C) on the same packet stream, in the same run.

The stream is what two SpanDSP ``t38_terminal``\\ s send each other in a whole 1-page fine
call (the shape was read off a capture of ``tests/peers/t38peer`` sending to itself, V.17
14400 bit/s, 30 ms a packet): indicators; V.21 control frames one octet per ``hdlc-data``
packet, each frame closed by an ``hdlc-fcs-OK`` (the last of a message by
``hdlc-fcs-OK-sig-end``) packet without data; TCF as 54-octet ``t4-non-ecm-data`` chunks;
then either ECM, 260-octet FCD frames (256 octets of the page's MMR data) as
54+54+54+54+44-octet ``hdlc-data`` packets and an ``hdlc-fcs-OK``, three RCP, or non-ECM,
the page's MH data as 54-octet ``t4-non-ecm-data`` chunks ending with
``t4-non-ecm-sig-end``. Direction 0 is the calling sender, 1 the answering receiver.
Indicators and ends of data go on the wire three times (SpanDSP's repeat counts, checked
against the anchor's), T.38 version 0, and each IFP is wrapped in UDPTL with redundancy 3
or with parity FEC (span 3, 3 entries).

- ``spandsp-c``: ``t38_core_send_indicator`` / ``t38_core_send_data`` /
  ``t38_core_send_data_multi_field`` -> tx handler -> UDPTL encode; decode: UDPTL receive ->
  ``t38_core_rx_ifp_packet`` -> rx handlers. SpanDSP 0.0.6 has no public UDPTL: the UDPTL
  is the C one of ``tests/peers/t38peer.c``, ``#include``d by
  ``bench/peers/t38core_bench.c``. Timed inside C (clock_gettime), best of many passes.
- ``fastfax``: ``ifp.encode_indicator`` / ``ifp.encode_data`` -> ``UdptlEncoder.pack``;
  decode: ``UdptlDecoder.feed`` on every datagram -> ``ifp.decode_raw`` on each IFP it
  delivers. One Python loop over the stream, best of many passes.
- ``fastfax-merged``: one native call a packet: ``UdptlEncoder.pack_indicator`` /
  ``pack_data``; decode: ``UdptlDecoder.feed_ifp`` (IFPs delivered decoded).
- ``fastfax-batched``: one native call for the whole stream: ``udptl.pack_many`` /
  ``udptl.feed_many`` on the list of (encoder, packet) / (decoder, datagram) items, built
  before the timed part (as a gateway's loop has them after a tick).
- ``fastfax-buffers``: one native call for the whole stream, no Python object per packet,
  the GIL released: ``udptl.pack_into`` of the stream as IFP records (one buffer, made
  before the timed part, as the anchor's packed stream is) into one output buffer and a
  (call, offset, length) table; decode: ``udptl.feed_into`` of the datagrams in one buffer
  with such a table (every copy a row, as the anchor feeds every copy) writing the IFPs
  delivered as IFP records (field data copied out: more than the anchor's rx handlers,
  which only count). The octets packed and the records decoded are checked before timing.

Each pass starts from fresh encoder/decoder state, made outside the timed part on both
sides. Figures are nanoseconds per IFP packet of the stream (decode time includes the
repeated datagrams); the session ends with a table and the time ratio fastfax / SpanDSP.
"""

from __future__ import annotations

import importlib.util
import sys
from array import array
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from fastfax import codec, samples
from fastfax.t38 import udptl
from fastfax.t38.ifp import (
    DataType,
    FieldType,
    Indicator,
    decode_raw,
    encode_data,
    encode_indicator,
)

ANCHOR_MODULE = Path(__file__).resolve().parent / "peers" / "t38core_bench.py"
ANCHOR_NAME = "fastfax_bench_t38core"
VERSION = 0
#: Octets a packet carries at 14400 bit/s in 30 ms (SpanDSP's t38_terminal).
CHUNK = 54
#: The UDPTL datagram limit of the anchor's UDPTL (t38peer.c MAX_DATAGRAM), used by ours too.
MAX_DATAGRAM = 1400
#: UDPTL error correction of each case; "ifp-only" times the IFP layer alone (no UDPTL).
EC = {
    "redundancy": {"error_correction": "redundancy", "redundancy": 3},
    "fec": {"error_correction": "fec", "fec_span": 3, "fec_entries": 3},
    "ifp-only": None,
}
STREAMS = ("ecm", "non-ecm")
IMPLS = ("spandsp-c", "fastfax", "fastfax-merged", "fastfax-batched", "fastfax-buffers")
OURS = IMPLS[1:]
CASES = [(i, s, e) for s in STREAMS for e in EC for i in IMPLS
         if EC[e] is not None or i in ("spandsp-c", "fastfax")]  # fmt: skip
IDS = [f"{i}-{s}-{e}" for i, s, e in CASES]
#: Passes over the stream per call of the C anchor (its best pass counts).
C_PASSES = 20
#: Timed passes of ours (pytest-benchmark rounds, each on fresh state).
ROUNDS = 150

Item = tuple[int, int, int, tuple[tuple[int, bytes], ...]]
Wire = list[tuple[int, int, bytes]]

# ---------------------------------------------------------------------------------------------
# The packet stream

SIG_END = {FieldType.HDLC_FCS_OK_SIG_END, FieldType.HDLC_FCS_BAD_SIG_END,
           FieldType.HDLC_SIG_END, FieldType.T4_NON_ECM_SIG_END}  # fmt: skip


def _frame(fcf: int, info: bytes = b"", final: bool = True) -> bytes:
    """An HDLC frame as T.38 carries it (no flags, no FCS; first bit on the line = MSB):
    address FF, control C8 (final) or C0, the FCF, its information field."""
    return bytes((0xFF, 0xC8 if final else 0xC0, fcf)) + info


def _v21(direction: int, *frames: bytes) -> list[Item]:
    """A V.21 message: preamble, each frame one octet a packet, FCS-OK after each frame and
    FCS-OK-sig-end after the last, then no-signal."""
    items: list[Item] = [(direction, 0, Indicator.V21_PREAMBLE, ())]
    for k, frame in enumerate(frames):
        items += [(direction, 1, DataType.V21, ((FieldType.HDLC_DATA, frame[i : i + 1]),))
                  for i in range(len(frame))]  # fmt: skip
        end = FieldType.HDLC_FCS_OK_SIG_END if k == len(frames) - 1 else FieldType.HDLC_FCS_OK
        items.append((direction, 1, DataType.V21, ((end, b""),)))
    items.append((direction, 0, Indicator.NO_SIGNAL, ()))
    return items


def _non_ecm(direction: int, data: bytes) -> list[Item]:
    """Image data (or TCF) as CHUNK-octet t4-non-ecm-data packets, the last one sig-end."""
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    items: list[Item] = [
        (direction, 1, DataType.V17_14400, ((FieldType.T4_NON_ECM_DATA, c),)) for c in chunks
    ]
    items[-1] = (direction, 1, DataType.V17_14400, ((FieldType.T4_NON_ECM_SIG_END, chunks[-1]),))
    return items


def _ecm_block(direction: int, data: bytes) -> list[Item]:
    """One ECM partial page: 256-octet FCD frames in CHUNK-octet hdlc-data packets and an
    hdlc-fcs-OK each, then three RCP, the last one closed by hdlc-fcs-OK-sig-end."""
    items: list[Item] = []
    frames = [data[i : i + 256].ljust(256, b"\0") for i in range(0, len(data), 256)]
    assert len(frames) <= 256, "one partial page"
    dt = DataType.V17_14400
    for number, body in enumerate(frames):
        frame = _frame(0x60, bytes((number,)) + body, final=False)  # FCD
        items += [(direction, 1, dt, ((FieldType.HDLC_DATA, frame[i : i + CHUNK]),))
                  for i in range(0, len(frame), CHUNK)]  # fmt: skip
        items.append((direction, 1, dt, ((FieldType.HDLC_FCS_OK, b""),)))
    for k in range(3):
        items.append((direction, 1, dt, ((FieldType.HDLC_DATA, _frame(0x61, final=False)),)))
        end = FieldType.HDLC_FCS_OK_SIG_END if k == 2 else FieldType.HDLC_FCS_OK
        items.append((direction, 1, dt, ((end, b""),)))
    return items


@cache
def call_stream(kind: str) -> tuple[Item, ...]:
    """Every IFP packet of a 1-page fine call (``kind`` "ecm": MMR in ECM, "non-ecm": MH),
    both directions, in the order they are sent."""
    page = samples.text_page(resolution="fine")
    ecm = kind == "ecm"
    caller, answerer = 0, 1
    ident = b" 4321 5678 555 44+"[::-1].ljust(20)
    dis = _frame(0x01, bytes((0x00, 0xEE, 0xF8, 0x80, 0x80, 0x89, 0x80)))
    dcs = _frame(0xC1, bytes((0x00, 0xE6 if ecm else 0x46, 0x80, 0x84)))
    items: list[Item] = [(caller, 0, Indicator.NO_SIGNAL, ()), (caller, 0, Indicator.CNG, ())]
    items += [(answerer, 0, Indicator.NO_SIGNAL, ()), (answerer, 0, Indicator.CED, ())]
    items += [(answerer, 0, Indicator.NO_SIGNAL, ())]
    items += _v21(answerer, _frame(0x02, ident, final=False), dis)  # CSI, DIS
    items += _v21(caller, _frame(0xC2, ident, final=False), dcs)  # TSI, DCS
    items += [(caller, 0, Indicator.V17_14400_LONG_TRAINING, ())]
    items += _non_ecm(caller, bytes(14400 * 3 // 2 // 8))  # TCF: 1.5 s of zeros
    items += [(caller, 0, Indicator.NO_SIGNAL, ())]
    items += _v21(answerer, _frame(0x21))  # CFR
    items += [(caller, 0, Indicator.V17_14400_SHORT_TRAINING, ())]
    if ecm:
        items += _ecm_block(caller, codec.encode(page, "mmr"))
        items += [(caller, 0, Indicator.NO_SIGNAL, ())]
        items += _v21(caller, _frame(0xFD, bytes((0x2F, 0, 0, 0x76))))  # PPS-EOP
    else:
        items += _non_ecm(caller, codec.encode(page, "mh"))
        items += [(caller, 0, Indicator.NO_SIGNAL, ())]
        items += _v21(caller, _frame(0xAF))  # EOP
    items += _v21(answerer, _frame(0x31))  # MCF
    items += _v21(caller, _frame(0xDF))  # DCN
    return tuple((d, k, int(t), tuple((int(f), b) for f, b in fields))
                 for d, k, t, fields in items)  # fmt: skip


def copies(item: Item) -> int:
    """How many times the packet goes on the wire (SpanDSP's t38_terminal's counts)."""
    _, kind, _, fields = item
    return 3 if kind == 0 or any(f in SIG_END for f, _ in fields) else 1


def make_encoders(ec: str) -> tuple[udptl.UdptlEncoder, udptl.UdptlEncoder]:
    return tuple(udptl.UdptlEncoder(max_datagram=MAX_DATAGRAM, **EC[ec]) for _ in range(2))


def make_decoders() -> tuple[udptl.UdptlDecoder, udptl.UdptlDecoder]:
    return udptl.UdptlDecoder(), udptl.UdptlDecoder()


# ---------------------------------------------------------------------------------------------
# Ours: the per-packet loops a T.38 endpoint runs


def ours_encode(items: tuple[Item, ...], encoders) -> None:
    """IFP-encode and UDPTL-pack every packet (the datagrams are dropped, as a socket would
    take them)."""
    pack = (encoders[0].pack, encoders[1].pack)
    for direction, kind, type_, fields in items:
        if kind:
            pack[direction](encode_data(type_, fields, VERSION))
        else:
            pack[direction](encode_indicator(type_, VERSION))


def ours_decode(wire: list[tuple[int, bytes]], decoders) -> None:
    """UDPTL-feed every datagram (repeats included) and IFP-decode every IFP delivered."""
    feed = (decoders[0].feed, decoders[1].feed)
    for direction, datagram in wire:
        for _seq, ifp_packet in feed[direction](datagram):
            decode_raw(ifp_packet, VERSION)


def ours_encode_merged(items: tuple[Item, ...], encoders) -> None:
    """The same with one native call a packet (every packet of the stream has one field)."""
    data = (encoders[0].pack_data, encoders[1].pack_data)
    indicator = (encoders[0].pack_indicator, encoders[1].pack_indicator)
    for direction, kind, type_, fields in items:
        if kind:
            field_type, payload = fields[0]
            data[direction](type_, field_type, payload, VERSION)
        else:
            indicator[direction](type_, VERSION)


def ours_encode_batched(batch: list) -> None:
    udptl.pack_many(batch, VERSION)


def ours_decode_merged(wire: list[tuple[int, bytes]], decoders) -> None:
    feed = (decoders[0].feed_ifp, decoders[1].feed_ifp)
    for direction, datagram in wire:
        feed[direction](datagram, VERSION)


def ours_decode_batched(batch: list) -> None:
    udptl.feed_many(batch, VERSION)


def ours_encode_buffers(encoders, records: bytes, out: bytearray, table: array) -> None:
    result = udptl.pack_into(encoders, records, out, table, VERSION)
    assert result.error is None and result.consumed == len(records)


def ours_decode_buffers(decoders, data: bytes, table: array, out: bytearray) -> None:
    udptl.feed_into(decoders, data, table, out, VERSION)


def _encode_buffers(stream: str, ec: str):
    """pack_into's arguments: fresh encoders, the stream's records, room for its wire."""
    items = call_stream(stream)
    records = udptl.write_records(items)
    room = sum(len(dg) for _, _, dg in ours_wire(stream, ec))

    def setup():
        return (make_encoders(ec), records, bytearray(room), array("I", bytes(12 * len(items)))), {}

    return setup


def _decode_buffers(wire: Wire):
    """feed_into's arguments: fresh decoders, each datagram once in one buffer, a table row
    for every copy on the wire, room for the records."""
    data = b"".join(dg for _, _, dg in wire)
    table = array("I")
    offset = 0
    for direction, copies_, dg in wire:
        for _ in range(copies_):
            table.extend((direction, offset, len(dg)))
        offset += len(dg)
    room = max(udptl.RECORD_MAX, 8 * len(data))

    def setup():
        return (make_decoders(), data, table, bytearray(room)), {}

    return setup


def _encode_batch(items: tuple[Item, ...], ec: str):
    def setup():
        encoders = make_encoders(ec)
        return ([(encoders[d], k, t, f) for d, k, t, f in items],), {}

    return setup


def _decode_batch(wire: list[tuple[int, bytes]]):
    def setup():
        decoders = make_decoders()
        return ([(decoders[d], datagram) for d, datagram in wire],), {}

    return setup


def ours_ifp_encode(items: tuple[Item, ...], _: object) -> None:
    """The IFP layer alone: encode every packet."""
    for _direction, kind, type_, fields in items:
        if kind:
            encode_data(type_, fields, VERSION)
        else:
            encode_indicator(type_, VERSION)


def ours_ifp_decode(wire: list[tuple[int, bytes]], _: object) -> None:
    """The IFP layer alone: decode every IFP packet."""
    for _direction, ifp_packet in wire:
        decode_raw(ifp_packet, VERSION)


@cache
def ours_wire(kind: str, ec: str) -> Wire:
    """The datagrams our encoders make of the stream, with their copies ("ifp-only": the
    IFP packets, once each)."""
    encoders = make_encoders(ec) if EC[ec] else None
    out: Wire = []
    for item in call_stream(kind):
        direction, k, type_, fields = item
        ifp_packet = encode_data(type_, fields, VERSION) if k else encode_indicator(type_, VERSION)
        if encoders is None:
            out.append((direction, 1, ifp_packet))
        else:
            out.append((direction, copies(item), encoders[direction].pack(ifp_packet)))
    return out


def expanded(wire: Wire) -> list[tuple[int, bytes]]:
    return [(d, dg) for d, n, dg in wire for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# Anchor, results, summary


def anchor_module() -> ModuleType:
    if ANCHOR_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(ANCHOR_NAME, ANCHOR_MODULE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[ANCHOR_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[ANCHOR_NAME]


class Results:
    """Best seconds per pass of each (op, stream, ec, impl), printed at the session's end."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str, str, str], float] = {}
        self.notes: list[str] = []

    def per_packet_ns(self, op: str, stream: str, ec: str, impl: str) -> float | None:
        seconds = self.seconds.get((op, stream, ec, impl))
        return seconds / len(call_stream(stream)) * 1e9 if seconds else None

    def ratio(self, op: str, stream: str, ec: str, impl: str = "fastfax") -> float | None:
        """Our time over the anchor's (<= 1: at least as fast)."""
        ours = self.seconds.get((op, stream, ec, impl))
        theirs = self.seconds.get((op, stream, ec, "spandsp-c"))
        return ours / theirs if ours and theirs else None

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.seconds and not self.notes:
            return
        write = terminalreporter.write_line
        terminalreporter.section("fastfax T.38 packet path (best ns per IFP packet)")
        for note in self.notes:
            write(note)
        if not self.seconds:  # --benchmark-disable: the checks ran, nothing was timed
            return
        write(f"{'stream':<9}{'ec':<12}{'op':<8}{'packets':>8}{'datagrams':>10}"
              f"{'SpanDSP-C ns':>14}{'fastfax ns':>12}{'ours/C':>8}{'merged ns':>11}"
              f"{'ours/C':>8}{'batched ns':>12}{'ours/C':>8}{'buffers ns':>12}"
              f"{'ours/C':>8}")  # fmt: skip
        for stream in STREAMS:
            for ec in EC:
                for op in ("encode", "decode"):
                    datagrams = sum(n for _, n, _ in ours_wire(stream, ec)) if EC[ec] else "-"
                    cells = [f"{stream:<9}{ec:<12}{op:<8}{len(call_stream(stream)):>8}"
                             f"{datagrams:>10}"]  # fmt: skip
                    ns = self.per_packet_ns(op, stream, ec, "spandsp-c")
                    cells.append(f"{ns:>14.0f}" if ns else f"{'-':>14}")
                    for impl, width in zip(OURS, (12, 11, 12, 12), strict=True):
                        ns = self.per_packet_ns(op, stream, ec, impl)
                        cells.append(f"{ns:>{width}.0f}" if ns else f"{'-':>{width}}")
                        ratio = self.ratio(op, stream, ec, impl)
                        cells.append(f"{ratio:>7.2f}x" if ratio else f"{'-':>8}")
                    write("".join(cells))
        write(
            "ours/C: fastfax time over SpanDSP's (<= 1.00: at least as fast). SpanDSP-C: "
            "t38_core + t38peer.c's UDPTL timed inside C; decode covers every datagram "
            "copy on the wire; ifp-only: the IFP layer alone (t38_core / fastfax.t38.ifp). "
            "merged: one native call a packet (pack_data/pack_indicator, feed_ifp); batched: "
            "one call for the stream (pack_many, feed_many); buffers: one call for the "
            "stream on IFP records and datagram buffers, GIL released (pack_into, "
            "feed_into)."
        )


_RESULTS = Results()


@pytest.fixture(scope="session")
def results(request) -> Results:
    plugins = request.config.pluginmanager
    if not plugins.is_registered(_RESULTS):
        plugins.register(_RESULTS, "fastfax-t38-bench-results")
    return _RESULTS


@pytest.fixture(scope="session")
def anchor(results):
    module = anchor_module()
    try:
        lib = module.load()
    except module.PeerUnavailable as exc:
        results.notes.append(f"SpanDSP anchors skipped: {exc}")
        pytest.skip(f"t38_core anchor unavailable: {exc}")
    results.notes.append(f"SpanDSP release {lib.version} (t38_core), UDPTL of t38peer.c")
    return lib


def _record(benchmark, results, op, stream, ec, impl, seconds: float | None) -> None:
    if seconds is None:  # --benchmark-disable
        return
    results.seconds[(op, stream, ec, impl)] = seconds
    benchmark.extra_info["ns_per_packet"] = round(results.per_packet_ns(op, stream, ec, impl), 1)
    benchmark.extra_info["packets"] = len(call_stream(stream))
    ratio = results.ratio(op, stream, ec, impl)
    if impl != "spandsp-c" and ratio:
        benchmark.extra_info["time_ratio_vs_spandsp_c"] = round(ratio, 3)


def _fresh(make: Callable[[], object], *args) -> Callable[[], tuple[tuple, dict]]:
    return lambda: ((*args, make()), {})


# ---------------------------------------------------------------------------------------------
# Same stream on both sides: checked before timing


def _check_anchor_encode(anchor, stream: str, ec: str) -> None:
    """The anchor's IFPs are ours octet for octet, with the same repeat counts; with
    redundancy its datagrams are ours too."""
    items = call_stream(stream)
    mod = anchor_module()
    theirs, _ = anchor.encode(mod.pack_stream(items), version=VERSION, ec=ec, wire=True)
    ours = ours_wire(stream, ec)
    assert [d for d, _, _ in theirs] == [d for d, _, _ in ours]
    if EC[ec] is None:
        assert [p for _, _, p in theirs] == [p for _, _, p in ours]
        return
    assert [n for _, n, _ in theirs] == [n for _, n, _ in ours]
    assert [udptl.decode_datagram(dg).primary for _, _, dg in theirs] == [
        udptl.decode_datagram(dg).primary for _, _, dg in ours
    ]
    if ec == "redundancy":
        assert [dg for _, _, dg in theirs] == [dg for _, _, dg in ours]


def _check_decodes(anchor, stream: str, ec: str) -> None:
    """Both decoders deliver every IFP of the stream once, and nothing is malformed."""
    items = call_stream(stream)
    wire = ours_wire(stream, ec)
    packed = anchor_module().pack_wire(wire)
    _, counts = anchor.decode(packed, version=VERSION, ifp_only=EC[ec] is None)
    assert counts["ifps"] == len(items)
    assert counts["ifp_errors"] == counts["udptl_errors"] == 0
    assert counts["indicators"] == sum(1 for it in items if it[1] == 0)
    assert counts["fields"] == sum(len(it[3]) for it in items)
    decoders = make_decoders()
    for direction in (0, 1):
        if EC[ec] is None:
            got = [decode_raw(p, VERSION) for d, _, p in wire if d == direction]
        else:
            got = [decode_raw(ifp_packet, VERSION)
                   for d, dg in expanded(wire) if d == direction
                   for _, ifp_packet in decoders[d].feed(dg)]  # fmt: skip
        want = [(0, t) if k == 0 else (1, t, list(f)) for d, k, t, f in items if d == direction]
        assert got == want


def _check_buffers_encode(stream: str, ec: str) -> None:
    """pack_into makes the datagrams of the per-packet path, in order, in its table."""
    (encoders, records, out, table), _ = _encode_buffers(stream, ec)()
    result = udptl.pack_into(encoders, records, out, table, VERSION)
    assert result.error is None and result.consumed == len(records)
    rows = [table[3 * k : 3 * k + 3] for k in range(result.datagrams)]
    got = [(call, bytes(out[off : off + n])) for call, off, n in rows]
    assert got == [(d, dg) for d, _, dg in ours_wire(stream, ec)]


def _check_buffers_decode(stream: str, ec: str) -> None:
    """feed_into delivers every IFP of the stream once, as its records, nothing lost."""
    (decoders, data, table, out), _ = _decode_buffers(ours_wire(stream, ec))()
    result = udptl.feed_into(decoders, data, table, out, VERSION)
    assert result.datagrams == len(table) // 3
    got = [(c, k, t, f) for c, _, k, t, f in udptl.read_records(out, result.used)]
    assert sorted(got, key=lambda r: r[0]) == sorted(call_stream(stream), key=lambda r: r[0])


# ---------------------------------------------------------------------------------------------
# The benchmarks


@pytest.mark.parametrize(("impl", "stream", "ec"), CASES, ids=IDS)
def test_encode(benchmark, request, results, impl: str, stream: str, ec: str) -> None:
    benchmark.group = f"t38-encode-{stream}-{ec}"
    items = call_stream(stream)
    if impl != "spandsp-c":
        if EC[ec] is None:
            loop, setup = ours_ifp_encode, _fresh(lambda: None, items)
        elif impl == "fastfax-batched":
            loop, setup = ours_encode_batched, _encode_batch(items, ec)
        elif impl == "fastfax-buffers":
            _check_buffers_encode(stream, ec)
            loop, setup = ours_encode_buffers, _encode_buffers(stream, ec)
        else:
            loop = ours_encode if impl == "fastfax" else ours_encode_merged
            setup = _fresh(lambda: make_encoders(ec), items)
        benchmark.pedantic(loop, setup=setup, rounds=ROUNDS, warmup_rounds=3)
        seconds = benchmark.stats.stats.min if benchmark.stats else None
    else:
        anchor = request.getfixturevalue("anchor")
        _check_anchor_encode(anchor, stream, ec)
        packed = anchor_module().pack_stream(items)
        inside: list[int] = []

        def run() -> None:
            inside.append(anchor.encode(packed, version=VERSION, ec=ec, passes=C_PASSES)[1])

        benchmark(run)
        seconds = min(inside) / 1e9 if benchmark.stats else None
    _record(benchmark, results, "encode", stream, ec, impl, seconds)


@pytest.mark.parametrize(("impl", "stream", "ec"), CASES, ids=IDS)
def test_decode(benchmark, request, results, impl: str, stream: str, ec: str) -> None:
    benchmark.group = f"t38-decode-{stream}-{ec}"
    wire = ours_wire(stream, ec)
    if impl != "spandsp-c":
        if impl == "fastfax-batched":
            loop, setup = ours_decode_batched, _decode_batch(expanded(wire))
        elif impl == "fastfax-buffers":
            _check_buffers_decode(stream, ec)
            loop, setup = ours_decode_buffers, _decode_buffers(wire)
        else:
            loop = {"fastfax": ours_decode, "fastfax-merged": ours_decode_merged}[impl]
            loop = loop if EC[ec] else ours_ifp_decode
            setup = _fresh(make_decoders, expanded(wire))
        benchmark.pedantic(loop, setup=setup, rounds=ROUNDS, warmup_rounds=3)
        seconds = benchmark.stats.stats.min if benchmark.stats else None
    else:
        anchor = request.getfixturevalue("anchor")
        _check_decodes(anchor, stream, ec)
        packed = anchor_module().pack_wire(wire)
        inside: list[int] = []

        def run() -> None:
            best, _ = anchor.decode(
                packed, version=VERSION, ifp_only=EC[ec] is None, passes=C_PASSES
            )
            inside.append(best)

        benchmark(run)
        seconds = min(inside) / 1e9 if benchmark.stats else None
    _record(benchmark, results, "decode", stream, ec, impl, seconds)
