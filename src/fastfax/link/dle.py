"""DLE framing of data between a host and a Class 1 modem (T.31), and bit reversal.

Towards the modem (``AT+FTM`` / ``AT+FTH`` data) every DLE (0x10) is doubled and the
stream ends with DLE ETX (0x10 0x03). From the modem (``AT+FRM`` / ``AT+FRH`` data):

- DLE DLE is one DLE;
- DLE SUB (0x10 0x1A) is two DLEs (T.31 8.3.2);
- DLE ETX ends the stream; the bytes after it (the modem's result code) are handed back
  untouched;
- any other DLE pair is kept out of the data and reported with its position, never
  dropped in silence.

A Class 1 modem sends the least significant bit of each byte first, while T.4 data in
files is often held most significant bit first (TIFF FillOrder 1): :func:`reverse_bits`
(the same function as :func:`fastfax.codec.reverse_bits`) flips the bit order of every
byte of a buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..codec import reverse_bits
from . import _link

__all__ = ["DLE", "ETX", "SUB", "escape", "Unescaper", "Unescaped", "reverse_bits"]

DLE = 0x10
ETX = 0x03
SUB = 0x1A


def escape(data: bytes, end: bool = True) -> bytes:
    """``data`` with every DLE doubled, followed by DLE ETX when ``end`` is true."""
    return _link.dle_escape(data, bool(end))


@dataclass
class Unescaped:
    """What one :meth:`Unescaper.feed` call produced.

    ``data``
        The data bytes, DLE pairs undone.
    ``codes``
        ``(offset, byte)`` for each DLE pair that is not DLE DLE, DLE SUB or DLE ETX:
        ``byte`` followed a DLE at position ``offset`` of ``data``.
    ``end``
        True when DLE ETX came in this chunk.
    ``rest``
        The bytes after DLE ETX (not unescaped).
    """

    data: bytes
    codes: list[tuple[int, int]] = field(default_factory=list)
    end: bool = False
    rest: bytes = b""


class Unescaper:
    """Streaming DLE unescaper: feed what the modem sends in any chunks.

    A DLE at the end of one chunk is held and paired with the first byte of the next.
    After DLE ETX, :attr:`ended` is true and further input is returned as ``rest``
    until :meth:`reset`.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._pending = False
        self.ended = False

    @property
    def pending(self) -> bool:
        """True when the last chunk ended with a DLE still waiting for its pair."""
        return self._pending

    def feed(self, data: bytes) -> Unescaped:
        """Unescape the next chunk."""
        if self.ended:
            return Unescaped(b"", end=False, rest=bytes(data))
        data = memoryview(data).cast("B")
        out, codes, used, self._pending, end = _link.dle_unescape(data, self._pending)
        # A call stops early after 256 undefined pairs: go on with the rest.
        while used < len(data) and not end:
            data = data[used:]
            more, extra, used, self._pending, end = _link.dle_unescape(data, self._pending)
            codes += [(off + len(out), c) for off, c in extra]
            out += more
        self.ended = end
        return Unescaped(out, codes, end, bytes(data[used:]) if end else b"")
