"""Wireshark's T.38 dissector (Debian's ``tshark``) reads our packets.

A whole call of ours (``send_fax_async`` to ``receive_fax_async`` on 127.0.0.1) runs through
a relay that records every datagram both ways; the test writes them to a pcap file
(LINKTYPE_RAW: IPv4 and UDP headers with their lengths and checksums, which tshark is told
to verify) with the two real endpoints' addresses, and reads it back with
``tshark -d udp.port==PORT,t38``, for versions 0 and 3, redundancy and FEC, ECM and not.

What is checked, frame by frame: every datagram is dissected as T.38 with good IP and UDP
checksums; the UDPTL sequence numbers go 0, 1, 2... each way (copies of a packet keep its
number); the error recovery is the one configured (secondary IFPs at most ``redundancy``,
or FEC with ``fec_entries`` parity strings); the indicators and data types are those of a
fax call; and Wireshark's own T.30 dissector, fed by its HDLC reassembly, finds the T.30
frames of the session (CSI, DIS, TSI, DCS, CFR, MCF, PPS or EOP, DCN).

One known complaint, not of the packets: we send indicators and the packets that end a
signal three times with the same sequence number (as SpanDSP does, and FreeSWITCH; a
UDPTL receiver drops the copies). Wireshark's dissector does not drop them: its
reassembly (not its ASN.1 decoding) meets the end of a signal whose data it already
reassembled, and says ``[RECEIVED END OF FRAGMENT W/OUT ANY FRAGMENT DATA]`` (an expert
error, ``_ws.malformed``) or, where the T.30 dissector runs out of reassembled data,
"Unreassembled fragment" (a note, the rest of that copy not dissected), on copies of
t4-non-ecm-sig-end and hdlc-fcs-OK-sig-end. The test checks that those complaints fall only on
such copies, that the same capture without the copies (what the far end's UDPTL keeps)
has no expert information at all, and that SpanDSP's own calls draw the same complaint.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_helpers import job_page

from fastfax.transport.t38 import receive_fax_async, send_fax_async

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from t38peer import PeerUnavailable, T38Peer, build  # noqa: E402

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(
    TSHARK is None, reason="tshark (Wireshark) is not installed; scripts/setup.sh installs it"
)

SPEED = 20
#: Calls made at most to get a capture the relay lost nothing of (see ``lost``).
ATTEMPTS = 3
REPEAT_END = "[RECEIVED END OF FRAGMENT W/OUT ANY FRAGMENT DATA]"
UNREASSEMBLED = "Unreassembled fragment (change preferences to enable reassembly)"
#: Expert severities (epan/proto.h PI_*).
NOTE, ERROR = 0x00400000, 0x00800000
#: T.38 Annex A values: Type-of-msg indicators and data types, Data-Field field types.
NO_SIGNAL, CNG, CED, V21_PREAMBLE = 0, 1, 2, 3
V21, V17_14400 = 0, 8
HDLC_DATA, HDLC_FCS_OK, HDLC_FCS_OK_SIG_END, T4_DATA, T4_SIG_END = 0, 2, 4, 6, 7
#: T.30 facsimile control fields (T.30 5.3.6, X bit cleared).
CSI, DIS, TSI, DCS, CFR, MCF, MPS, EOP, PPS, DCN = (
    0x02, 0x01, 0x42, 0x41, 0x21, 0x31, 0x72, 0x74, 0x7D, 0x5F)  # fmt: skip

FIELDS = [
    "frame.number", "_ws.col.Protocol", "udp.srcport", "udp.length", "ip.checksum.status",
    "udp.checksum.status", "t38.seq_number", "t38.type_of_msg", "t38.t30_indicator",
    "t38.t30_data", "t38.field_type", "t38.error_recovery", "t38.secondary_ifp_packets",
    "t38.fec_npackets", "t38.fec_data", "t30.FacsimileControl", "_ws.malformed",
    "_ws.expert.severity", "_ws.expert.message",
]  # fmt: skip

Record = tuple[float, tuple[str, int], tuple[str, int], bytes]


# -- capture ---------------------------------------------------------------------------
class _Relay(asyncio.DatagramProtocol):
    def __init__(self, on_datagram) -> None:  # noqa: ANN001
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        self.on_datagram(data, (addr[0], addr[1]))


async def relayed_call(pages, **kw) -> tuple[list[Record], tuple[str, int], tuple]:
    """Our sender calls our receiver through a relay on 127.0.0.1 that forwards every
    datagram; returns what the relay saw (as if the two had talked directly: real source
    and destination), the receiver's address and the two results."""
    loop = asyncio.get_running_loop()
    records: list[Record] = []
    ends: dict[str, tuple[str, int]] = {}
    relays: dict[str, _Relay] = {}

    def from_sender(data: bytes, addr: tuple[str, int]) -> None:
        ends["tx"] = addr
        records.append((time.time(), addr, ends["rx"], data))
        relays["rx"].transport.sendto(data, ends["rx"])

    def from_receiver(data: bytes, addr: tuple[str, int]) -> None:
        records.append((time.time(), ends["rx"], ends["tx"], data))
        relays["tx"].transport.sendto(data, ends["tx"])

    for side, handler in (("tx", from_sender), ("rx", from_receiver)):
        _, relays[side] = await loop.create_datagram_endpoint(
            lambda h=handler: _Relay(h), local_addr=("127.0.0.1", 0))  # fmt: skip
    bound = loop.create_future()
    rx_kw = {k: v for k, v in kw.items() if k != "ecm"}
    receiving = asyncio.create_task(receive_fax_async(
        ("127.0.0.1", 0), speed=SPEED, timeout=10, on_bound=bound.set_result, **rx_kw))  # fmt: skip
    ends["rx"] = tuple((await bound)[:2])
    relay = relays["tx"].transport.get_extra_info("sockname")
    try:
        sent = await send_fax_async(relay[:2], pages, speed=SPEED, **kw)
        got = await receiving
    finally:
        for r in relays.values():
            r.transport.close()
    return records, ends["rx"], (sent, got)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes, ident: int) -> bytes:
    """An IPv4 packet (no options, DF) holding a UDP datagram, both checksums set."""
    saddr, daddr = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", src[1], dst[1], length, 0) + payload
    pseudo = saddr + daddr + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident & 0xFFFF, 0x4000, 64,
                     socket.IPPROTO_UDP, 0, saddr, daddr)  # fmt: skip
    return ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:] + udp


def write_pcap(path: Path, records: list[Record]) -> None:
    """A classic pcap file (microseconds), link type 101 (LINKTYPE_RAW: IPv4 packets)."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for n, (when, src, dst, data) in enumerate(records):
            packet = ipv4_udp(src, dst, data, n)
            seconds, micros = int(when), int(round(when % 1 * 1e6)) % 1000000
            fh.write(struct.pack("<IIII", seconds, micros, len(packet), len(packet)) + packet)


def without_copies(records: list[Record]) -> list[Record]:
    """The records less each datagram equal to one sent before it the same way (what the
    far end's UDPTL drops as a duplicate)."""
    seen: set[tuple[tuple[str, int], bytes]] = set()
    out = []
    for record in records:
        key = (record[1], record[3])
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


def lost(records: list[Record]) -> list[tuple[int, int]]:
    """The (source port, sequence number) of the datagrams missing from a capture: the
    relay's socket overflows when the machine is so busy that the event loop stalls and the
    sender catches up with a burst. The call survives by redundancy, but Wireshark's HDLC
    reassembly then misses a frame's start ("T30 Address must be 0xFF"), so such a
    capture does not show what our packets look like and the call is made again."""
    missing = []
    last: dict[int, int] = {}
    for _, src, _, data in records:
        seq = data[0] << 8 | data[1]
        before = last.get(src[1], -1)
        missing += [(src[1], n) for n in range(before + 1, seq)]
        last[src[1]] = max(before, seq)
    return missing


# -- dissection ------------------------------------------------------------------------
def dissect(path: Path, port: int, pre_corrigendum: bool) -> list[dict[str, list[str]]]:
    """tshark's reading of each frame: field -> the values of its occurrences (the
    primary IFP's first, then the secondary ones')."""
    args = [TSHARK, "-n", "-r", str(path), "-d", f"udp.port=={port},t38",
            "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
            "-o", f"t38.use_pre_corrigendum_asn1_specification:{pre_corrigendum}",
            "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for field in FIELDS:
        args += ["-e", field]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        assert len(values) == len(FIELDS), line
        rows.append({f: (v.split("|") if v else []) for f, v in zip(FIELDS, values, strict=True)})
    return rows


def ints(row: dict[str, list[str]], field: str) -> list[int]:
    return [int(v, 0) for v in row[field]]


def complaints(rows: list[dict[str, list[str]]]) -> dict[int, list[tuple[int, str]]]:
    """Frame number -> its expert items (severity, message)."""
    out = {}
    for row in rows:
        items = list(zip(ints(row, "_ws.expert.severity"), row["_ws.expert.message"],
                         strict=True))  # fmt: skip
        if items or row["_ws.malformed"]:
            out[int(row["frame.number"][0])] = items
    return out


# -- the calls -------------------------------------------------------------------------
CASES = {
    "v0-redundancy-ecm": dict(version=0, error_correction="redundancy", ecm=True),
    "v0-fec-nonecm": dict(version=0, error_correction="fec", ecm=False),
    "v3-redundancy-nonecm": dict(version=3, error_correction="redundancy", ecm=False),
    "v3-fec-ecm": dict(version=3, error_correction="fec", ecm=True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tshark_decodes_a_call_of_ours(tmp_path: Path, case: str) -> None:
    kw = CASES[case]
    pages = [job_page(11), job_page(12)]
    for _attempt in range(ATTEMPTS):
        records, receiver, (sent, got) = asyncio.run(relayed_call(pages, **kw))
        assert sent.ok and got.ok and got.pages == pages
        if not lost(records):
            break
    assert not lost(records), f"the relay lost datagrams in {ATTEMPTS} calls: {lost(records)}"
    pcap = tmp_path / "call.pcap"
    write_pcap(pcap, records)
    pre = kw["version"] == 0  # version 0 is the pre-corrigendum ASN.1 (T.38 1998)
    rows = dissect(pcap, receiver[1], pre)

    # Every datagram, as T.38, in good IP/UDP packets.
    assert len(rows) == len(records)
    for row, (_, src, _, data) in zip(rows, records, strict=True):
        assert row["_ws.col.Protocol"] == ["T.38"], row
        assert ints(row, "udp.srcport") == [src[1]]
        assert ints(row, "udp.length") == [8 + len(data)]
        assert row["ip.checksum.status"] == ["1"] and row["udp.checksum.status"] == ["1"]
        assert ints(row, "t38.seq_number") == [data[0] << 8 | data[1]]

    # Complaints only on copies of a signal's end; none once the copies are dropped.
    sent_before: set[tuple[int, bytes]] = set()
    copies = set()
    for row, (_, src, _, data) in zip(rows, records, strict=True):
        if (src[1], data) in sent_before:
            copies.add(int(row["frame.number"][0]))
        sent_before.add((src[1], data))
    assert copies  # indicators and signal ends go out three times
    by_frame = {int(r["frame.number"][0]): r for r in rows}
    for frame, items in complaints(rows).items():
        assert frame in copies, (frame, items)
        assert items and all(item in ((ERROR, REPEAT_END), (NOTE, UNREASSEMBLED))
                             for item in items), (frame, items)  # fmt: skip
        types = ints(by_frame[frame], "t38.field_type")  # none: dissection stopped
        assert types[:1] in ([T4_SIG_END], [HDLC_FCS_OK_SIG_END], []), (frame, types)
        assert types or (NOTE, UNREASSEMBLED) in items
    clean = tmp_path / "clean.pcap"
    write_pcap(clean, without_copies(records))
    clean_rows = dissect(clean, receiver[1], pre)
    assert len(clean_rows) == len(without_copies(records))
    assert complaints(clean_rows) == {}

    # Sequence numbers each way: 0, then the same (a copy) or the next.
    for port in {r["udp.srcport"][0] for r in rows}:
        seqs = [ints(r, "t38.seq_number")[0] for r in rows if r["udp.srcport"][0] == port]
        assert seqs[0] == 0
        assert all(b - a in (0, 1) for a, b in zip(seqs, seqs[1:], strict=False)), seqs

    # The content of a fax call, each way (the primary IFP of each datagram).
    caller = {r["udp.srcport"][0] for r in rows} - {str(receiver[1])}
    for side in ("caller", "answerer"):
        mine = [r for r in clean_rows if (r["udp.srcport"][0] in caller) == (side == "caller")]
        indicators = {ints(r, "t38.t30_indicator")[0] for r in mine if r["t38.t30_indicator"]
                      and ints(r, "t38.type_of_msg")[0] == 0}  # fmt: skip
        tone = CNG if side == "caller" else CED
        assert {NO_SIGNAL, tone, V21_PREAMBLE} <= indicators, indicators
        data = {(ints(r, "t38.t30_data")[0], ints(r, "t38.field_type")[0]) for r in mine
                if ints(r, "t38.type_of_msg")[0] == 1}  # fmt: skip
        assert {(V21, HDLC_DATA), (V21, HDLC_FCS_OK), (V21, HDLC_FCS_OK_SIG_END)} <= data
        if side == "caller":
            assert max(indicators) > V21_PREAMBLE  # a training indicator
            assert (V17_14400, T4_DATA) in data and (V17_14400, T4_SIG_END) in data  # TCF
            if kw["ecm"]:
                assert {(V17_14400, HDLC_DATA), (V17_14400, HDLC_FCS_OK_SIG_END)} <= data
        frames = [ints(r, "t30.FacsimileControl")[0] & 0x7F for r in mine
                  if r["t30.FacsimileControl"]]  # fmt: skip
        if side == "caller":
            assert frames[:2] == [TSI, DCS] and frames[-1] == DCN, frames
            assert (PPS in frames) == kw["ecm"] and (EOP in frames) != kw["ecm"], frames
            assert kw["ecm"] or MPS in frames
        else:
            assert frames[:3] == [CSI, DIS, CFR] and frames.count(MCF) >= 2, frames

    # The error recovery configured.
    for row in rows[3:]:  # past the first three datagrams of the caller
        if not row["t38.error_recovery"]:
            continue  # a copy whose dissection stopped at the complaint
        if kw["error_correction"] == "redundancy":
            assert ints(row, "t38.error_recovery") == [0]
            assert ints(row, "t38.secondary_ifp_packets")[0] <= 3
        else:
            assert ints(row, "t38.error_recovery") == [1]
            assert ints(row, "t38.fec_npackets") == [3]
            assert ints(row, "t38.fec_data")[0] <= 3
    field = "t38.secondary_ifp_packets" if kw["error_correction"] == "redundancy" else \
        "t38.fec_data"  # fmt: skip
    assert max(ints(r, field)[0] for r in rows if r[field]) == 3

    if kw["version"] == 3:  # the check tells the encodings apart: read as 1998's, it is wrong
        wrong = dissect(clean, receiver[1], True)
        types = [r["t38.field_type"][:1] for r in clean_rows]
        assert types != [r["t38.field_type"][:1] for r in wrong]


def test_spandsp_draws_the_same_complaint(tmp_path: Path) -> None:
    """SpanDSP's t38_terminal to SpanDSP's, captured by its peer program: the copies of
    its signal ends get the same reassembly complaint from tshark."""
    try:
        build()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))
    from PIL import Image

    Image.fromarray(~job_page(5).to_array()).save(tmp_path / "tx.tif", compression="group4",
                                                  dpi=(204, 98))  # fmt: skip
    with T38Peer(receive=tmp_path / "rx.tif", speed=SPEED, timeout=60, ecm=False,
                 pcap=tmp_path / "spandsp.pcap", log_path=tmp_path / "rx.log") as rx:  # fmt: skip
        with T38Peer(send=tmp_path / "tx.tif", calling=True, remote=rx.address, speed=SPEED,
                     timeout=60, ecm=False, log_path=tmp_path / "tx.log") as tx:  # fmt: skip
            assert tx.wait(60)["ok"]
        assert rx.wait(60)["ok"]
    rows = dissect(tmp_path / "spandsp.pcap", rx.port, True)
    assert rows and all(r["_ws.col.Protocol"] == ["T.38"] for r in rows)
    found = {item for items in complaints(rows).values() for item in items}
    assert (ERROR, REPEAT_END) in found, found


def test_the_oracle_sees_bad_packets(tmp_path: Path) -> None:
    """The checks above can fail: tshark flags a truncated UDPTL datagram as malformed
    (the ASN.1 decoding's own complaint) and a wrong UDP checksum as bad."""
    good = bytes([0, 0, 0x01, 0x00, 0x00])  # seq 0, no-signal (1998 ASN.1), no recovery
    records = [(1.0, ("127.0.0.1", 1000), ("127.0.0.1", 2000), good),
               (1.1, ("127.0.0.1", 1000), ("127.0.0.1", 2000), good[:3])]  # fmt: skip
    write_pcap(tmp_path / "t.pcap", records)
    data = bytearray((tmp_path / "t.pcap").read_bytes())
    data[24 + 16 + 20 + 6] ^= 1  # the first packet's UDP checksum
    (tmp_path / "t.pcap").write_bytes(bytes(data))
    first, second = dissect(tmp_path / "t.pcap", 2000, True)
    assert first["udp.checksum.status"] == ["0"] and ints(first, "t38.t30_indicator") == [0]
    assert second["udp.checksum.status"] == ["1"] and second["_ws.malformed"]
    assert (ERROR, "Malformed Packet (Exception occurred)") in complaints([second])[2]
