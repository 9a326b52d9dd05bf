"""The SpanDSP T.38 peer (tests/peers/t38peer.c) proven against itself and against others.

Two peers call each other over UDP on 127.0.0.1: SpanDSP's T.38 terminal to SpanDSP's
T.38 terminal, and a SpanDSP audio fax terminal behind SpanDSP's T.38 gateway to a T.38
terminal.  The oracles are independent of the peer: libtiff (through Pillow) decodes the
received TIFF, which must equal the sent pages pixel for pixel; Wireshark's T.38
dissector (tshark, when installed) reads the UDPTL datagrams from the peers' pcap files.
Crafted and hostile datagrams from a Python socket check the peer's UDPTL decoder.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageSequence

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from t38peer import PeerUnavailable, T38Peer, build  # noqa: E402

WIDTH = 1728
SPEED = 10  # both ends run SpanDSP's clock this many times faster than real time
CALL_TIMEOUT = 60


@pytest.fixture(scope="module")
def binary() -> Path:
    """The t38peer binary, built once (cached by source hash); skip where it cannot be."""
    try:
        return build()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def make_pages(path: Path, count: int = 1, rows: int = 240, seed: int = 1) -> list[np.ndarray]:
    """Write ``count`` pages of boxes and text as a G4 TIFF at 204x196 dpi; True = black."""
    rng = np.random.default_rng(seed)
    images = []
    for n in range(count):
        im = Image.new("1", (WIDTH, rows), 1)
        draw = ImageDraw.Draw(im)
        for _ in range(rows // 5):
            x, y = int(rng.integers(0, WIDTH - 60)), int(rng.integers(0, rows - 12))
            w, h = int(rng.integers(2, 60)), int(rng.integers(1, 12))
            draw.rectangle([x, y, x + w, y + h], fill=0)
        for y in range(20, rows - 20, 50):
            draw.text((60, y), f"t38peer page {n} row {y} " * 6, fill=0)
        draw.line([0, rows - 1, WIDTH - 1, 0], fill=0, width=2)
        images.append(im)
    images[0].save(
        path, compression="group4", dpi=(204, 196), save_all=True, append_images=images[1:]
    )
    return [np.array(im) == 0 for im in images]


def read_pages(path: Path) -> list[np.ndarray]:
    """Every page of a TIFF as a bool array (True = black), decoded by libtiff."""
    with Image.open(path) as im:
        return [np.array(page.convert("1")) == 0 for page in ImageSequence.Iterator(im)]


def assert_same_pages(received: Path, sent: list[np.ndarray]) -> None:
    pages = read_pages(received)
    assert len(pages) == len(sent)
    for got, want in zip(pages, sent, strict=True):
        assert got.shape == want.shape
        assert np.array_equal(got, want)


def call(
    tmp_path: Path, tx: dict[str, Any], rx: dict[str, Any], pages: int = 1
) -> tuple[dict[str, Any], dict[str, Any], list[np.ndarray]]:
    """Receiver listens, sender calls it; return both RESULTs and the sent pages."""
    source = tmp_path / "tx.tif"
    sent = make_pages(source, pages)
    common = {"speed": SPEED, "timeout": CALL_TIMEOUT, "linger": 0.1}
    with T38Peer(
        receive=tmp_path / "rx.tif",
        ident="RECEIVER",
        log_path=tmp_path / "rx.log",
        **{**common, **rx},
    ) as receiver:
        with T38Peer(
            send=source,
            calling=True,
            remote=receiver.address,
            ident="SENDER",
            log_path=tmp_path / "tx.log",
            **{**common, **tx},
        ) as sender:
            sent_result = sender.wait()
        received_result = receiver.wait()
    return sent_result, received_result, sent


def assert_call_ok(
    tmp_path: Path, tx: dict[str, Any], rx: dict[str, Any], pages: list[np.ndarray]
) -> None:
    for result, other in ((tx, "RECEIVER"), (rx, "SENDER")):
        assert result["exit"] == "completed"
        assert result["ok"], result["completion"]
        assert result["pages"] == len(pages)
        assert result["remote_ident"] == other
        assert result["udptl"]["malformed"] == 0
        assert result["udptl"]["ifp_errors"] == 0
    assert rx["udptl"]["received"] > 0 and tx["udptl"]["received"] > 0
    assert_same_pages(tmp_path / "rx.tif", pages)


CASES = {
    # name: (options for both ends, expected ECM, compression, bit rate)
    "ecm-mmr-v0-redundancy": ({"ecm": True, "version": 0, "ec": "redundancy"}, True, "mmr", 14400),
    "noecm-mh-v3-fec": (
        {"ecm": False, "version": 3, "ec": "fec", "compressions": ["mh"]},
        False,
        "mh",
        14400,
    ),
    "noecm-mr-v1-none-nofill": (
        {"ecm": False, "version": 1, "ec": "none", "fill_bit_removal": True},
        False,
        "mr",
        14400,
    ),
    "ecm-mr-v2-9600": (
        {"ecm": True, "version": 2, "compressions": ["mh", "mr"], "max_bitrate": 9600},
        True,
        "mr",
        9600,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_terminal_to_terminal(binary: Path, tmp_path: Path, name: str) -> None:
    options, ecm, compression, bit_rate = CASES[name]
    pages = 2 if name.startswith("ecm-mmr") else 1
    tx, rx, sent = call(tmp_path, options, options, pages)
    assert_call_ok(tmp_path, tx, rx, sent)
    for result in (tx, rx):
        assert result["mode"] == "terminal"
        assert result["ecm"] is ecm
        assert result["compression"] == compression
        assert result["bit_rate"] == bit_rate
        assert result["t38_version"] == options["version"]
        assert result["udptl"]["lost"] == 0
    assert tx["role"] == "send" and tx["calling"] and rx["role"] == "receive"
    assert rx["width"] == WIDTH and rx["resolution"] == "fine"


@pytest.mark.parametrize("ec", ["redundancy", "fec"])
def test_recovers_lost_and_reordered_datagrams(binary: Path, tmp_path: Path, ec: str) -> None:
    """Each end drops 5 % of its datagrams and swaps 10 % with the next: nothing is lost."""
    options = {
        "ec": ec,
        "redundancy": 2,
        "fec_span": 2,
        "fec_entries": 2,
        "loss": 0.05,
        "reorder": 0.1,
        "seed": 4242,
    }
    tx, rx, sent = call(tmp_path, options, {**options, "seed": 777})
    assert_call_ok(tmp_path, tx, rx, sent)
    assert tx["udptl"]["dropped"] > 0 and rx["udptl"]["dropped"] > 0
    assert rx["udptl"]["recovered"] > 0
    assert rx["udptl"]["reordered"] > 0
    assert rx["udptl"]["lost"] == 0 and rx["t38_missing"] == 0


GATEWAY_CASES = {
    # name: (sender options, receiver options, expected ECM, compression)
    "fax-gateway-sends-ecm": ({"gateway": True}, {}, True, "mmr"),
    "fax-gateway-sends-noecm-mh": (
        {"gateway": True, "ecm": False, "compressions": ["mh"]},
        {"ecm": False, "compressions": ["mh"]},
        False,
        "mh",
    ),
    "terminal-to-fax-gateway-v3": ({"version": 3}, {"gateway": True, "version": 3}, True, "mmr"),
}


@pytest.mark.parametrize("name", list(GATEWAY_CASES))
def test_gateway_and_audio_terminal(binary: Path, tmp_path: Path, name: str) -> None:
    tx_opts, rx_opts, ecm, compression = GATEWAY_CASES[name]
    tx, rx, sent = call(tmp_path, tx_opts, rx_opts)
    assert_call_ok(tmp_path, tx, rx, sent)
    gateway = tx if tx_opts.get("gateway") else rx
    assert gateway["mode"] == "gateway"
    assert gateway["gateway"]["pages"] == 1
    assert gateway["gateway"]["ecm"] is ecm
    for result in (tx, rx):
        assert result["ecm"] is ecm and result["compression"] == compression


def tshark_fields(pcap: Path, port: int, fields: list[str]) -> list[list[str]]:
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-d",
            f"udp.port=={port},t38",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "separator=;",
            *[a for f in fields for a in ("-e", f)],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.split(";") for line in out.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark (Wireshark)")
def test_pcap_is_udptl_to_wireshark(binary: Path, tmp_path: Path) -> None:
    """The sender protects its packets with FEC, the receiver with redundancy; Wireshark's
    T.38 dissector reads every datagram in both captures, checksums good, with the error
    recovery each end was told to use."""
    tx, rx, sent = call(
        tmp_path,
        {"ec": "fec", "fec_span": 3, "fec_entries": 3, "pcap": tmp_path / "tx.pcap"},
        {"ec": "redundancy", "redundancy": 3, "pcap": tmp_path / "rx.pcap"},
    )
    assert_call_ok(tmp_path, tx, rx, sent)
    fields = [
        "udp.srcport",
        "udp.dstport",
        "t38.seq_number",
        "t38.error_recovery",
        "t38.fec_npackets",
        "t38.fec_data",
        "t38.secondary_ifp_packets",
        "ip.checksum.status",
        "udp.checksum.status",
        "_ws.expert.severity",
    ]
    for pcap, me in ((tmp_path / "tx.pcap", tx), (tmp_path / "rx.pcap", rx)):
        rx_port = rx["local_port"]
        rows = tshark_fields(pcap, rx_port, fields)
        counters = me["udptl"]
        assert len(rows) == sum(counters[k] for k in ("sent", "received", "malformed", "foreign"))
        seen: set[tuple[str, int]] = set()
        from_tx = from_rx = 0
        for src, dst, seq_s, recovery, npackets, fec_data, secondary, ip_ok, udp_ok, sev in rows:
            assert ip_ok == "1" and udp_ok == "1"
            assert seq_s != "", "not dissected as T.38"
            seq = int(seq_s)
            key = (src, seq)
            if sev:
                # Wireshark's HDLC reassembly flags the 2nd and 3rd copies of a packet that
                # ends a frame (SpanDSP sends those three times); nothing else.
                assert key in seen
                continue
            seen.add(key)
            if int(dst) == rx_port:  # sender -> receiver: FEC, winding up over 9 packets
                from_tx += 1
                assert recovery == "1"
                assert int(npackets) == (0 if seq < 3 else 3)
                assert int(fec_data) == min(3, seq // 3)
            else:  # receiver -> sender: up to 3 secondary packets
                from_rx += 1
                assert recovery == "0"
                assert int(secondary) == min(3, seq)
        assert from_tx > 50 and from_rx > 20


def test_pairs_mode_for_the_benchmark(binary: Path, tmp_path: Path) -> None:
    source = tmp_path / "tx.tif"
    sent = make_pages(source, 1, rows=160)
    keep = tmp_path / "received"
    keep.mkdir()
    with T38Peer(send=source, receive=keep, pairs=3, speed=SPEED, timeout=CALL_TIMEOUT) as peer:
        result = peer.wait()
    assert result["mode"] == "pairs" and result["exit"] == "completed"
    assert result["ok"] and result["calls_ok"] == 3 and result["pages_ok"] == 3
    assert result["cpu_seconds"] > 0 and result["wall_seconds"] > 0
    assert result["udptl"]["malformed"] == 0 and result["udptl"]["lost"] == 0
    for n in range(3):
        assert_same_pages(keep / f"rx-{n}.tif", sent)


def udptl(seq: int, primary: bytes, tail: bytes = b"\x00\x00") -> bytes:
    """A UDPTL packet as T.38 writes it (aligned PER): seq, open type, error recovery."""
    assert len(primary) < 128
    return seq.to_bytes(2, "big") + bytes([len(primary)]) + primary + tail


NO_SIGNAL = b"\x00"  # IFP: t30-indicator no-signal
CNG = b"\x02"  # IFP: t30-indicator cng

WELL_FORMED = [
    udptl(0, NO_SIGNAL),
    udptl(1, CNG, b"\x00\x01\x01\x00"),  # redundancy: one secondary (seq 0)
    udptl(2, CNG, b"\x80\x01\x00\x00"),  # fec-info: npackets 0, no entries
    udptl(3, CNG, b"\x80\x01\x02\x01\x01\x02"),  # fec: span 2, one entry of 1 octet
    udptl(9000, NO_SIGNAL),  # a wild jump: a sequence restart, not an error
    udptl(9001, b"\x7f\x7f\x7f"),  # well-formed UDPTL around garbage IFP
    udptl(9001, NO_SIGNAL),  # a duplicate
]
MALFORMED = [
    b"",
    b"\x00",
    b"\x00\x05",  # no primary
    b"\x00\x05\x00\x00\x00",  # empty primary
    b"\x00\x05\x05\x00\x00",  # primary longer than the datagram
    b"\x00\x05\x01\x00",  # no error recovery
    udptl(5, NO_SIGNAL, b"\x40\x00"),  # padding bits set in the CHOICE octet
    udptl(5, NO_SIGNAL, b"\x00\x02\x01\x00"),  # two secondaries announced, one present
    udptl(5, NO_SIGNAL, b"\x00\x00\x00"),  # a trailing octet
    udptl(5, NO_SIGNAL, b"\x00\xc1" + b"\x01\x00" * 3),  # fragmented count
    udptl(5, NO_SIGNAL, b"\x00\x7f" + b"\x01\x00" * 127),  # 127 secondaries: deeper than 32
    udptl(5, NO_SIGNAL, b"\x80\x01\xff\x00"),  # negative fec-npackets
    udptl(5, NO_SIGNAL, b"\x80\x02\x7f\xff\x00"),  # fec-npackets 32767: more than 32
    udptl(5, NO_SIGNAL, b"\x80\x00\x00"),  # fec-npackets of no octets
    udptl(5, NO_SIGNAL, b"\x80\x01\x02\x40" + b"\x01\x00" * 64),  # 64 FEC entries: over 16
    udptl(5, NO_SIGNAL, b"\x80\x01\x02\x01\x8f\xff"),  # an FEC entry of 4095 octets, absent
    b"\x00\x05\xbf\xff" + b"\x00" * 16,  # a 16383-octet primary, absent
    b"\xff" * 1400,
]


def random_datagrams(seed: int, count: int) -> list[bytes]:
    """Random bytes, and random IFP packets inside UDPTL with random error recovery."""
    rng = np.random.default_rng(seed)
    out = []
    for n in range(count):
        body = rng.integers(0, 256, int(rng.integers(1, 120)), dtype=np.uint8).tobytes()
        if n % 3 == 0:
            out.append(body)
        else:
            recovery = rng.integers(0, 256, int(rng.integers(0, 12)), dtype=np.uint8).tobytes()
            out.append(udptl(int(rng.integers(0, 65536)), body, recovery))
    return out


def test_decoder_survives_random_datagrams(binary: Path, tmp_path: Path) -> None:
    """A Python socket plays the far end: once the peer has learnt it from a well-formed
    packet, 600 random datagrams follow; the peer counts each one as received or
    malformed, keeps running, and stops cleanly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    fuzz = random_datagrams(seed=38, count=600)
    try:
        with T38Peer(
            receive=tmp_path / "rx.tif",
            speed=SPEED,
            timeout=30,
            linger=30,  # stays up even if the random packets end its call
            log_path=tmp_path / "rx.log",
        ) as peer:
            sock.sendto(WELL_FORMED[0], peer.address)
            reply, _ = sock.recvfrom(2048)  # the answering terminal starts talking:
            assert reply[:4] == b"\x00\x00\x01" + NO_SIGNAL  # seq 0, no-signal
            for k, datagram in enumerate(fuzz):
                sock.sendto(datagram, peer.address)
                if k % 50 == 49:
                    time.sleep(0.01)  # well within the socket's receive buffer
            time.sleep(0.3)
            assert peer.returncode is None  # still running
            result = peer.stop()
    finally:
        sock.close()
    assert result is not None and result["exit"] == "signal"
    counters = result["udptl"]
    assert counters["received"] + counters["malformed"] == 1 + len(fuzz)
    assert counters["malformed"] >= len(fuzz) // 3  # the raw random ones at least
    assert counters["sent"] > 0


def test_decoder_counts_crafted_datagrams(binary: Path, tmp_path: Path) -> None:
    """Hand-made datagrams from a Python socket: the peer learns the socket from its first
    well-formed packet (the malformed ones before are ignored), answers it, and counts
    exactly which datagrams are malformed and which one is a duplicate."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        with T38Peer(
            receive=tmp_path / "rx.tif", speed=SPEED, timeout=30, log_path=tmp_path / "rx.log"
        ) as peer:
            for datagram in MALFORMED[:3] + WELL_FORMED[:4]:
                sock.sendto(datagram, peer.address)
            reply, _ = sock.recvfrom(2048)
            assert reply[:4] == b"\x00\x00\x01" + NO_SIGNAL  # seq 0, no-signal
            for datagram in MALFORMED[3:] + WELL_FORMED[4:]:
                sock.sendto(datagram, peer.address)
            time.sleep(0.3)
            result = peer.stop()
    finally:
        sock.close()
    assert result is not None and result["exit"] == "signal"
    counters = result["udptl"]
    assert counters["malformed"] == len(MALFORMED)
    assert counters["received"] == len(WELL_FORMED)
    assert counters["duplicates"] == 1


def test_foreign_datagrams_are_ignored(binary: Path, tmp_path: Path) -> None:
    """Datagrams from a third address during a call change nothing."""
    source = tmp_path / "tx.tif"
    sent = make_pages(source, 1, rows=120)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with T38Peer(
            receive=tmp_path / "rx.tif",
            speed=SPEED,
            timeout=CALL_TIMEOUT,
            ident="RECEIVER",
            log_path=tmp_path / "rx.log",
        ) as receiver:
            with T38Peer(
                send=source,
                calling=True,
                remote=receiver.address,
                speed=SPEED,
                timeout=CALL_TIMEOUT,
                ident="SENDER",
                log_path=tmp_path / "tx.log",
            ) as sender:
                deadline = time.monotonic() + 10
                while "peer is" not in receiver.log() and time.monotonic() < deadline:
                    time.sleep(0.02)
                for seq in range(5):
                    intruder.sendto(udptl(seq, NO_SIGNAL), receiver.address)
                tx = sender.wait()
            rx = receiver.wait()
    finally:
        intruder.close()
    assert_call_ok(tmp_path, tx, rx, sent)
    assert rx["udptl"]["foreign"] == 5


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--send", "a.tif", "--receive", "b.tif"],
        ["--receive", "b.tif", "--rate-management", "1"],
        ["--send", "a.tif", "--version", "4"],
        ["--send", "a.tif", "--ec", "parity"],
        ["--send", "a.tif", "--fec-span", "10", "--fec-entries", "10"],
        ["--send", "a.tif", "--remote", "nowhere"],
        ["--pairs", "2"],
        ["--send", "a.tif", "--speed", "0"],
    ],
)
def test_rejects_bad_options(binary: Path, args: list[str]) -> None:
    run = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=10)
    assert run.returncode == 2
    assert "RESULT" not in run.stdout
