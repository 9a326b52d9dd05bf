"""SpanDSP's ``t38_core`` with our C test peer's UDPTL, through ctypes: the anchor of the
T.38 packet-path benchmark (``bench/test_t38_bench.py``).

:func:`load` compiles ``t38core_bench.c`` (next to this file; it ``#include``s
``tests/peers/t38peer.c`` for the UDPTL) with gcc against the system libspandsp
(``pkg-config spandsp``) into a cache directory, once per version of the two sources, and
returns a :class:`T38CoreBench`.

A packet stream is a list of items ``(direction, kind, type, fields)``: ``direction`` 0 or
1 (the two terminals of a call; each has its own t38_core and UDPTL contexts), ``kind`` 0
for an indicator packet (``type`` the T.38 indicator, ``fields`` empty) or 1 for a data
packet (``type`` the T.38 data type, ``fields`` a sequence of ``(field type, bytes)``, b""
for no field-data). Numbers are the ASN.1 enumeration indices, which are SpanDSP's too.

The wire is a list of ``(direction, copies, datagram)``: each UDPTL datagram with the number
of times SpanDSP's t38_core asked for it to be sent.

This module does not import fastfax.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

SOURCE = Path(__file__).with_name("t38core_bench.c")
#: The C test peer whose UDPTL the anchor uses (``#include``d by SOURCE).
UDPTL_SOURCE = Path(__file__).resolve().parents[2] / "tests" / "peers" / "t38peer.c"
#: Error correction modes, as t38b_encode takes them.
EC_MODES = {"ifp-only": -1, "none": 0, "redundancy": 1, "fec": 2}

Item = tuple[int, int, int, Sequence[tuple[int, bytes]]]


class PeerUnavailable(RuntimeError):
    """The anchor cannot be built here (no gcc, no libspandsp-dev, or a compile error)."""


def cache_dir() -> Path:
    """Where built helpers go: ``$FASTFAX_PEER_CACHE``, else a per-user temp directory."""
    env = os.environ.get("FASTFAX_PEER_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / f"fastfax-peers-{os.getuid()}"


def build() -> Path:
    """Compile the anchor if this version of its sources is not built yet; return its path."""
    if not UDPTL_SOURCE.exists():
        raise PeerUnavailable(f"{UDPTL_SOURCE} is missing (the anchor's UDPTL)")
    digest = hashlib.sha256(SOURCE.read_bytes() + UDPTL_SOURCE.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"t38core_bench-{digest}.so"
    if target.exists():
        return target
    gcc = shutil.which("gcc") or shutil.which("cc")
    pkg_config = shutil.which("pkg-config")
    if gcc is None or pkg_config is None:
        raise PeerUnavailable("gcc and pkg-config are needed to build the t38_core anchor")
    flags = subprocess.run(
        [pkg_config, "--cflags", "--libs", "spandsp"], capture_output=True, text=True
    )
    if flags.returncode != 0:
        raise PeerUnavailable("libspandsp development files not found (apt install libspandsp-dev)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    command = [
        gcc, "-O2", "-shared", "-fPIC", str(SOURCE), "-o", partial, *flags.stdout.split(), "-lm"
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(partial)
        raise PeerUnavailable("cannot build the t38_core anchor:\n" + done.stderr.strip())
    os.replace(partial, target)
    return target


def pack_stream(items: Iterable[Item]) -> bytes:
    """The stream in t38core_bench.c's format (see its header comment)."""
    out = bytearray()
    for direction, kind, type_, fields in items:
        out += bytes((direction, kind, type_, len(fields)))
        for field_type, data in fields:
            out += bytes((field_type,)) + len(data).to_bytes(2, "big") + data
    return bytes(out)


def pack_wire(wire: Iterable[tuple[int, int, bytes]]) -> bytes:
    """``(direction, copies, datagram)`` items in t38core_bench.c's wire format."""
    out = bytearray()
    for direction, copies, datagram in wire:
        out += bytes((direction, copies)) + len(datagram).to_bytes(2, "big") + datagram
    return bytes(out)


def unpack_wire(raw: bytes) -> list[tuple[int, int, bytes]]:
    """The inverse of :func:`pack_wire`."""
    out, pos = [], 0
    while pos < len(raw):
        n = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        out.append((raw[pos], raw[pos + 1], raw[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out


class T38CoreBench:
    """The anchor's encode and decode loops (see the module docstring for the formats)."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        i64, i64p = ctypes.c_int64, ctypes.POINTER(ctypes.c_int64)
        cint = ctypes.c_int
        lib.t38b_encode.restype = cint
        lib.t38b_encode.argtypes = [
            ctypes.c_char_p, i64, cint, cint, cint, cint, cint, cint,
            ctypes.c_void_p, i64, i64p, i64p,
        ]  # fmt: skip
        lib.t38b_decode.restype = cint
        lib.t38b_decode.argtypes = [ctypes.c_char_p, i64, cint, cint, cint, i64p, i64p]
        lib.t38b_spandsp_version.restype = ctypes.c_char_p
        self._lib = lib
        #: SpanDSP's release date and time, e.g. "20110122 075024" (Debian's 0.0.6).
        self.version: str = lib.t38b_spandsp_version().decode()

    def encode(
        self,
        stream: bytes,
        *,
        version: int = 0,
        ec: str = "redundancy",
        redundancy: int = 3,
        fec_span: int = 3,
        fec_entries: int = 3,
        passes: int = 1,
        wire: bool = False,
    ) -> tuple[list[tuple[int, int, bytes]] | None, int]:
        """Encode a packed stream ``passes`` times: (the first pass's wire if ``wire``, the
        best pass in ns). ``ec="ifp-only"``: t38_core alone, the wire holds the IFPs."""
        cap = 16 * len(stream) + 65536 if wire else 0
        out = ctypes.create_string_buffer(cap) if wire else None
        out_len, best = ctypes.c_int64(), ctypes.c_int64()
        status = self._lib.t38b_encode(
            stream, len(stream), version, EC_MODES[ec], redundancy, fec_span, fec_entries,
            passes, out, cap, ctypes.byref(out_len), ctypes.byref(best),
        )  # fmt: skip
        if status:
            raise RuntimeError(f"t38b_encode failed ({status})")
        return (unpack_wire(out.raw[: out_len.value]) if wire else None), best.value

    def decode(
        self, wire: bytes, *, version: int = 0, ifp_only: bool = False, passes: int = 1
    ) -> tuple[int, dict]:
        """Decode a packed wire ``passes`` times: (the best pass in ns, the last pass's
        counts: ``ifps`` delivered by UDPTL, ``indicators`` and ``fields`` t38_core handed
        on, ``octets`` of field data, ``ifp_errors`` t38_core reported, ``udptl_errors``:
        datagrams malformed plus IFPs lost). ``ifp_only``: the wire holds IFP packets, fed
        to t38_core directly."""
        best = ctypes.c_int64()
        counts = (ctypes.c_int64 * 6)()
        status = self._lib.t38b_decode(
            wire, len(wire), version, ifp_only, passes, ctypes.byref(best), counts
        )
        if status:
            raise RuntimeError(f"t38b_decode failed ({status})")
        names = ("ifps", "indicators", "fields", "octets", "ifp_errors", "udptl_errors")
        return best.value, dict(zip(names, counts, strict=True))


@functools.lru_cache(maxsize=1)
def load() -> T38CoreBench:
    """Build (if needed) and load the anchor; raises :class:`PeerUnavailable` if it can't."""
    return T38CoreBench(build())
