"""libtiff's CCITT codec through ctypes: the peer of fastfax's interop tests and benchmarks.

:func:`load` compiles ``libtiff_codec.c`` (next to this file) with gcc against the
system libtiff into a cache directory, once per version of the source, and returns a
:class:`LibtiffCodec`. Pages travel as packed rows: ``(width + 7) // 8`` bytes a row,
most significant bit = leftmost pixel, 1 = black (Photometric MinIsWhite), the layout of
``fastfax.Page.data``. Coded strips are exactly what libtiff stores in a TIFF strip.

This module does not import fastfax, so it also serves as an independent reference.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

SOURCE = Path(__file__).with_name("libtiff_codec.c")
#: TIFF Compression and the T4Options 2-D bit for each scheme name.
COMPRESSION = {"rle": (2, 0), "mh": (3, 0), "mr": (3, 1), "mmr": (4, 0)}
#: T4Options bit 2: fill bits so that every EOL ends on a byte boundary.
T4_FILLBITS = 4


class PeerUnavailable(RuntimeError):
    """The helper cannot be built here (no gcc, no libtiff headers, or a compile error)."""


def cache_dir() -> Path:
    """Where built helpers go: ``$FASTFAX_PEER_CACHE``, else a per-user temp directory."""
    env = os.environ.get("FASTFAX_PEER_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / f"fastfax-peers-{os.getuid()}"


def _libtiff_flags() -> list[str]:
    pkg_config = shutil.which("pkg-config")
    if pkg_config:
        done = subprocess.run(
            [pkg_config, "--cflags", "--libs", "libtiff-4"], capture_output=True, text=True
        )
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.split()
    return ["-ltiff"]


def build() -> Path:
    """Compile the helper if this version of the source is not built yet; return its path."""
    source = SOURCE.read_bytes()
    target = cache_dir() / f"libtiff_codec-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if target.exists():
        return target
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise PeerUnavailable("no C compiler: install gcc to build the libtiff peer")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    command = [gcc, "-O2", "-shared", "-fPIC", str(SOURCE), "-o", partial, *_libtiff_flags()]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(partial)
        raise PeerUnavailable(
            "cannot build the libtiff peer (install libtiff-dev?):\n" + done.stderr.strip()
        )
    os.replace(partial, target)
    return target


class LibtiffCodec:
    """libtiff's encoder and decoder on one strip (see the module docstring for layouts)."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        i64p = ctypes.POINTER(ctypes.c_int64)
        lib.ltc_message.restype = ctypes.c_char_p
        lib.ltc_message.argtypes = []
        lib.ltc_encode.restype = ctypes.c_int
        lib.ltc_encode.argtypes = [
            ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_float, ctypes.c_float,
            ctypes.c_int, ctypes.c_uint32, ctypes.c_int, ctypes.c_int,
            ctypes.c_void_p, ctypes.c_int64, i64p, i64p,
        ]  # fmt: skip
        lib.ltc_decode.restype = ctypes.c_int
        lib.ltc_decode.argtypes = [
            ctypes.c_char_p, ctypes.c_int64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_float,
            ctypes.c_float, ctypes.c_int, ctypes.c_uint32, ctypes.c_int, ctypes.c_int,
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), i64p,
        ]  # fmt: skip
        lib.TIFFGetVersion.restype = ctypes.c_char_p
        self._lib = lib
        self._scratch = threading.local()
        #: libtiff's version banner, e.g. "LIBTIFF, Version 4.5.0 ...".
        self.version: str = lib.TIFFGetVersion().decode().splitlines()[0]

    def _buffer(self, size: int) -> ctypes.Array[ctypes.c_char]:
        """A scratch output buffer of at least ``size`` bytes, reused within a thread."""
        buffer = getattr(self._scratch, "buffer", None)
        if buffer is None or len(buffer) < size:
            buffer = self._scratch.buffer = ctypes.create_string_buffer(size)
        return buffer

    def _fail(self, what: str) -> RuntimeError:
        return RuntimeError(f"libtiff {what} failed: {self._lib.ltc_message().decode()}")

    @staticmethod
    def _options(scheme: str, fill_bits: bool, msb_first: bool) -> tuple[int, int, int]:
        compression, t4options = COMPRESSION[scheme]
        if fill_bits:
            t4options |= T4_FILLBITS
        return compression, t4options, 1 if msb_first else 2

    def encode(
        self,
        rows: bytes,
        width: int,
        height: int,
        scheme: str,
        *,
        xres: float = 204,
        yres: float = 196,
        fill_bits: bool = False,
        msb_first: bool = True,
        iterations: int = 1,
    ) -> tuple[bytes, int]:
        """Code packed ``rows`` as libtiff does; return (coded strip, loop time in ns).

        ``yres`` (dpi) sets MR's K as libtiff does (4 above 150, else 2); ``fill_bits`` is
        T4Options bit 2; ``msb_first`` False means FillOrder 2. The loop of
        ``iterations`` writes a whole one-strip TIFF each time.
        """
        if len(rows) != (width + 7) // 8 * height:
            raise ValueError(f"{len(rows)} bytes is not {height} rows of width {width}")
        compression, t4options, fill_order = self._options(scheme, fill_bits, msb_first)
        cap = 8 * len(rows) + 4096  # no coding spends more than 8 bits on a pixel
        out = self._buffer(cap)
        out_len, elapsed = ctypes.c_int64(), ctypes.c_int64()
        status = self._lib.ltc_encode(
            rows, width, height, xres, yres, compression, t4options, fill_order, iterations,
            out, cap, ctypes.byref(out_len), ctypes.byref(elapsed),
        )  # fmt: skip
        if status:
            raise self._fail("encode")
        return ctypes.string_at(out, out_len.value), elapsed.value

    def decode(
        self,
        strip: bytes,
        width: int,
        height: int,
        scheme: str,
        *,
        xres: float = 204,
        yres: float = 196,
        fill_bits: bool = False,
        msb_first: bool = True,
        iterations: int = 1,
    ) -> tuple[bytes, int, int]:
        """Decode a coded strip as libtiff does; return (packed rows, warnings, loop ns).

        libtiff mends damaged rows and only warns: ``warnings`` counts those warnings
        (0 for clean data); :meth:`message` gives the last one.
        """
        compression, t4options, fill_order = self._options(scheme, fill_bits, msb_first)
        out = ctypes.create_string_buffer((width + 7) // 8 * height)
        warnings, elapsed = ctypes.c_int(), ctypes.c_int64()
        status = self._lib.ltc_decode(
            strip, len(strip), width, height, xres, yres, compression, t4options, fill_order,
            iterations, out, ctypes.byref(warnings), ctypes.byref(elapsed),
        )  # fmt: skip
        if status:
            raise self._fail("decode")
        return out.raw, warnings.value, elapsed.value

    def message(self) -> str:
        """The last error or warning libtiff reported on this thread."""
        return self._lib.ltc_message().decode()


@functools.lru_cache(maxsize=1)
def load() -> LibtiffCodec:
    """Build (if needed) and load the helper; raises :class:`PeerUnavailable` if it can't."""
    return LibtiffCodec(build())
