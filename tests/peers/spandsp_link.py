"""Build and run ``spandsp_link.c``: SpanDSP's HDLC, CRC and T.30 code as a test peer.

The program is compiled with gcc against Debian's libspandsp (and libtiff, which the
T.30 engine needs for its page file) into a directory the caller chooses.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("spandsp_link.c")


def _pkg_config(*args: str) -> list[str]:
    try:
        out = subprocess.run(
            ["pkg-config", *args, "spandsp"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ["-lspandsp"] if "--libs" in args else []
    return out.split()


def build(out_dir: Path) -> Path:
    """Compile the peer into ``out_dir``; raise RuntimeError when that cannot be done."""
    if shutil.which("gcc") is None:
        raise RuntimeError("gcc is not installed")
    exe = Path(out_dir) / "spandsp_link"
    cmd = [
        "gcc",
        "-O2",
        "-o",
        str(exe),
        str(SOURCE),
        *_pkg_config("--cflags"),
        *_pkg_config("--libs"),
        "-ltiff",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cannot build the SpanDSP peer: {done.stderr.strip()}")
    return exe


def pack_frames(frames: list[bytes]) -> bytes:
    """Frames as the peer reads them: a 4-octet little-endian length before each."""
    return b"".join(struct.pack("<I", len(f)) + bytes(f) for f in frames)


@dataclass
class RxResult:
    """What SpanDSP's hdlc_rx made of a stream: frames as (ok, data) and its counters."""

    frames: list[tuple[bool, bytes]]
    good: int
    crc_errors: int
    length_errors: int
    aborts: int
    octets: int


class Peer:
    """The compiled peer program."""

    def __init__(self, exe: Path):
        self.exe = Path(exe)

    def _run(self, args: list[str], data: bytes = b"") -> bytes:
        done = subprocess.run([str(self.exe), *args], input=data, capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"peer {args} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout

    def hdlc_tx(self, frames: list[bytes], fcs_bits: int = 16, ifflags: int = 1) -> bytes:
        """SpanDSP's hdlc_tx bit stream (LSB first) for ``frames``."""
        return self._run(["tx", str(int(fcs_bits == 32)), str(ifflags)], pack_frames(frames))

    def hdlc_rx(
        self, stream: bytes, fcs_bits: int = 16, max_len: int = 260, flags_needed: int = 1
    ) -> RxResult:
        """Feed an LSB-first bit stream to SpanDSP's hdlc_rx."""
        out = self._run(
            ["rx", str(int(fcs_bits == 32)), str(max_len), str(flags_needed)], stream
        ).decode()
        frames = []
        stats: list[int] = []
        for line in out.splitlines():
            kind, _, rest = line.partition(" ")
            if kind in ("G", "B"):
                frames.append((kind == "G", bytes.fromhex(rest)))
            elif kind == "S":
                stats = [int(x) for x in rest.split()]
        return RxResult(frames, *stats)

    def fcs(self, frames: list[bytes]) -> list[tuple[int, int]]:
        """SpanDSP's (FCS-16, FCS-32) of each frame."""
        out = self._run(["crc"], pack_frames(frames)).decode()
        return [(int(a), int(b)) for a, b in (line.split() for line in out.splitlines())]

    def t30_exchange(
        self, modems: int, resolutions: int, sizes: int, compressions: int, ecm: bool, tiff: Path
    ) -> list[tuple[str, bytes]]:
        """Let an answering and a calling SpanDSP T.30 engine talk; return the frames each
        sent, as ("A" or "C", frame without FCS)."""
        out = self._run(
            [
                "t30",
                hex(modems),
                hex(resolutions),
                hex(sizes),
                hex(compressions),
                str(int(ecm)),
                str(tiff),
            ]
        ).decode()
        return [(line[0], bytes.fromhex(line[2:])) for line in out.splitlines() if line[1:2] == " "]

    def bench(self, frames: list[bytes], fcs_bits: int, rounds: int) -> dict[str, float]:
        """SpanDSP's own timing of the same work, in nanoseconds per pass over ``frames``."""
        out = (
            self._run(["bench", str(int(fcs_bits == 32)), str(rounds)], pack_frames(frames))
            .decode()
            .split()
        )
        total, tx, rx, c16, c32, nframes = (float(x) for x in out)
        return {
            "octets": total,
            "hdlc_tx": tx,
            "hdlc_rx": rx,
            "fcs16": c16,
            "fcs32": c32,
            "frames": nframes,
        }
