"""HDLC framing as T.30 uses it: flags, zero-bit insertion, FCS-16 or FCS-32, aborts.

Bit streams are packed in bytes **least significant bit first**: bit 0 of the first
byte is the first bit on the line (the order V.21 and the high-speed modems send).
A flag is ``01111110`` (0x7E in either order); five 1 bits in a row inside a frame are
followed by an inserted 0; seven or more 1 bits in a row are an abort. The FCS is sent
low octet first, each octet least significant bit first.

The :class:`Decoder` follows the same rules as SpanDSP's ``hdlc_rx``, so both count the
same frames, errors and aborts on any bit stream: a frame is the octets between two
flags; it is a *length error* when its bit count is not whole octets or it is shorter
than the FCS (plus ``min_len``); a 0 after seven or more 1 bits is an abort; after an
abort, or a frame longer than ``max_len`` (counted as ``too_long``), the decoder hunts
for ``flags_needed`` back-to-back flags before it collects frames again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FaxError
from . import _link

__all__ = [
    "fcs16",
    "fcs32",
    "Encoder",
    "Decoder",
    "Frame",
    "Counters",
    "HdlcError",
    "DEFAULT_MAX_LEN",
]

#: Default largest frame in octets, FCS excluded: a T.30 ECM frame (address, control,
#: FCF, frame number and 256 octets of data).
DEFAULT_MAX_LEN = 260

#: A received frame: ``data`` (bytes, FCS removed) and ``ok`` (the FCS verdict).
Frame = _link.Frame


class HdlcError(FaxError, ValueError):
    """An HDLC option or a frame to send is invalid (bad FCS size, frame too long...)."""


#: ``fcs16(data: bytes) -> int``: the FCS-16 of ``data`` (T.30 / V.42 16-bit FCS, i.e.
#: CRC-16/X.25), 0 to 0xFFFF. Sent low octet first after the frame.
fcs16 = _link.fcs16
#: ``fcs32(data: bytes) -> int``: the FCS-32 of ``data`` (V.42 32-bit FCS, equal to
#: :func:`zlib.crc32`). Sent low octet first after the frame.
fcs32 = _link.fcs32


def _fcs_bytes(fcs_bits: int) -> int:
    if fcs_bits not in (16, 32):
        raise HdlcError(f"fcs_bits must be 16 or 32, got {fcs_bits!r}")
    return fcs_bits // 8


def _count(name: str, value: int, low: int = 0) -> int:
    if not isinstance(value, int) or not low <= value <= 1 << 20:
        raise HdlcError(f"{name} must be an integer from {low} to {1 << 20}, got {value!r}")
    return value


class Encoder:
    """HDLC transmitter: frames in, a flagged and stuffed bit stream out.

    ``fcs_bits``
        16 (T.30) or 32.
    ``opening_flags`` / ``closing_flags``
        Flags sent before the first and after the last frame of each call.
    ``interframe_flags``
        Flags between frames sent in one :meth:`encode_frames` call.
    ``max_len``
        Largest frame accepted, in octets without the FCS.

    Each call returns whole bytes: when the stream does not end on a byte boundary the
    last byte is filled with the first bits of a flag, and the next call completes that
    flag (it counts as one of the opening flags), so the outputs of successive calls
    concatenate into one valid stream.
    """

    def __init__(
        self,
        fcs_bits: int = 16,
        *,
        opening_flags: int = 1,
        closing_flags: int = 1,
        interframe_flags: int = 1,
        max_len: int = DEFAULT_MAX_LEN,
    ) -> None:
        self.fcs_bits = fcs_bits
        self.max_len = _count("max_len", max_len, 1)
        self._tx = _link.HdlcTx(
            _fcs_bytes(fcs_bits),
            _count("opening_flags", opening_flags),
            _count("closing_flags", closing_flags, 1),
            _count("interframe_flags", interframe_flags, 1),
        )

    def encode(self, frame: bytes) -> bytes:
        """One frame with its FCS, between opening and closing flags."""
        return self.encode_frames([frame])

    def encode_frames(self, frames: Iterable[bytes]) -> bytes:
        """Several frames back to back (``interframe_flags`` between them)."""
        frames = frames if type(frames) is list else list(frames)
        try:
            out = self._tx.encode_frames(frames, self.max_len)
        except TypeError:  # not all bytes: bytearray, memoryview, ...
            frames = [bytes(memoryview(f)) for f in frames]
            out = self._tx.encode_frames(frames, self.max_len)
        if out is None:
            size = max(len(f) for f in frames)
            raise HdlcError(f"frame of {size} octets is over max_len={self.max_len}")
        return out

    def flags(self, count: int) -> bytes:
        """``count`` flags, e.g. the one-second preamble T.30 sends before its frames."""
        return self._tx.flags(_count("count", count))

    def abort(self) -> bytes:
        """One byte of 1 bits. Sent in place of the rest of a frame, it aborts that frame
        (the receiver counts the abort at the 0 that starts the next flag)."""
        return self._tx.abort()


@dataclass(frozen=True)
class Counters:
    """What a :class:`Decoder` has seen. ``octets`` counts the octets of good frames
    (FCS excluded); ``length_errors`` frames that were not whole octets or were too
    short; ``too_long`` frames dropped for passing ``max_len``."""

    good: int
    bad_fcs: int
    length_errors: int
    too_long: int
    aborts: int
    octets: int
    flags: int


class Decoder:
    """HDLC receiver: feed bit-stream bytes in any chunks, get the frames completed.

    ``fcs_bits``
        16 or 32.
    ``flags_needed``
        Flags in a row (back to back) needed at the start and after an abort before
        frames are collected (SpanDSP's framing-OK threshold).
    ``min_len`` / ``max_len``
        Frame length limits in octets, FCS excluded. A longer frame is dropped as soon
        as it passes ``max_len``, so memory stays bounded whatever comes in.
    ``report_bad``
        Hand out frames whose FCS is wrong (with ``ok=False``) as well as good ones.
    """

    def __init__(
        self,
        fcs_bits: int = 16,
        *,
        flags_needed: int = 1,
        min_len: int = 0,
        max_len: int = DEFAULT_MAX_LEN,
        report_bad: bool = True,
    ) -> None:
        _count("min_len", min_len)
        _count("max_len", max_len, max(min_len, 1))
        self.fcs_bits = fcs_bits
        self._rx = _link.HdlcRx(
            _fcs_bytes(fcs_bits),
            _count("flags_needed", flags_needed, 1),
            min_len,
            max_len,
            bool(report_bad),
        )

    def feed(self, data: bytes) -> list[Frame]:
        """Take the next bytes of the bit stream; return the frames they completed."""
        return self._rx.feed(data)

    @property
    def framing(self) -> bool:
        """True while the decoder is in frame sync (enough flags seen, no abort since)."""
        return self._rx.framing

    @property
    def counters(self) -> Counters:
        """A snapshot of the counts so far."""
        return Counters(**self._rx.counters())
