"""ITU-T T.4 and T.6 image coding: MH, MR and MMR, one-shot and streaming.

Schemes:

``"mh"``
    T.4 one-dimensional Modified Huffman, an EOL before every row (TIFF Compression 3).
``"mr"``
    T.4 two-dimensional Modified READ: EOL plus a tag bit before every row, one 1-D row
    then ``k - 1`` 2-D rows (TIFF Compression 3 with T4Options bit 0).
``"mmr"``
    T.6 Modified Modified READ: every row 2-D, no EOLs (TIFF Compression 4).
``"rle"``
    TIFF Compression 2 ("CCITT RLE"): MH rows with no EOL, each starting on a byte.

By default the coded bytes are what libtiff puts in a strip of the matching
compression: most significant bit first (TIFF FillOrder 1), EOFB after the last MMR row
and no RTC after the last MH/MR row (as libtiff 4.x writes them), the last byte padded
with zero bits. Fax data on the telephone line is least significant bit first and ends
with RTC: pass ``msb_first=False, rtc=True``.

Pages go in and come out as :class:`fastfax.Page`; the streaming :class:`Encoder` and
:class:`Decoder` work on packed rows (see :mod:`fastfax.page` for the row layout).
The hot loops run in :mod:`fastfax._codec` without the GIL, so threads coding
different pages run in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import _codec
from .errors import CodecError, LimitError, PageError
from .page import DEFAULT_MAX_ROWS, MAX_WIDTH, Page, stride_of

__all__ = [
    "CodedPage",
    "Scheme",
    "SCHEMES",
    "Encoder",
    "Decoder",
    "encode",
    "decode",
    "reverse_bits",
    "default_k",
    "DEFAULT_MAX_ROWS",
]

Scheme = Literal["mh", "mr", "mmr", "rle"]
#: Scheme names and their ids in the Cython core.
SCHEMES: dict[str, int] = {"rle": 0, "mh": 1, "mr": 2, "mmr": 3}
#: Largest accepted ``min_row_bits`` (T.30's longest minimum scan line time, 40 ms, at
#: 14400 bit/s is 576 bits; this leaves room for any modem).
MAX_MIN_ROW_BITS = 1 << 16

reverse_bits = _codec.reverse_bits


def _scheme_id(scheme: str) -> int:
    try:
        return SCHEMES[scheme]
    except (KeyError, TypeError):
        raise CodecError(f"unknown scheme {scheme!r}: use one of {', '.join(SCHEMES)}") from None


def _check_width(width: int) -> None:
    if not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise CodecError(f"width must be an integer from 1 to {MAX_WIDTH} pixels, got {width!r}")


def default_k(yres: float) -> int:
    """The MR K parameter T.4 and libtiff use: 2 up to 150 lines per inch (standard), else 4."""
    return 4 if yres > 150 else 2


class Encoder:
    """Streaming encoder: feed packed rows, get coded bytes.

    ``width``
        Pixels per row (1 to 65535).
    ``scheme``
        ``"mh"``, ``"mr"``, ``"mmr"`` or ``"rle"``.
    ``k``
        MR only: one 1-D row then ``k - 1`` 2-D rows (default 4; :func:`default_k`
        gives T.4's choice for a resolution).
    ``eol``
        MH only: write an EOL before each row (default True; MR always has them).
    ``eol_align``
        Pad with zero fill bits so every EOL ends on a byte boundary (TIFF T4Options
        bit 2, "fill bits"); MH/MR only.
    ``rtc``
        End the page with RTC (6 EOLs, MH/MR) or EOFB (2 EOLs, MMR) in :meth:`finish`.
        The default, None, does what libtiff does: EOFB for MMR, no RTC for MH/MR.
    ``min_row_bits``
        MH/MR only: the least number of bits from the start of one row's EOL to the
        start of the next; shorter rows are padded with zero fill bits before the next
        EOL (the T.30 minimum scan line time times the bit rate).
    ``msb_first``
        Bit order of the coded bytes: True for TIFF FillOrder 1, False for the line.
    """

    def __init__(
        self,
        width: int,
        scheme: Scheme = "mmr",
        *,
        k: int = 4,
        eol: bool = True,
        eol_align: bool = False,
        rtc: bool | None = None,
        min_row_bits: int = 0,
        msb_first: bool = True,
    ) -> None:
        _check_width(width)
        sid = _scheme_id(scheme)
        if not isinstance(k, int) or not 1 <= k <= 1 << 16:
            raise CodecError(f"k must be an integer from 1 to 65536, got {k!r}")
        if not isinstance(min_row_bits, int) or not 0 <= min_row_bits <= MAX_MIN_ROW_BITS:
            raise CodecError(
                f"min_row_bits must be an integer from 0 to {MAX_MIN_ROW_BITS}, "
                f"got {min_row_bits!r}"
            )
        if scheme in ("mmr", "rle") and (eol_align or min_row_bits):
            raise CodecError(f"eol_align and min_row_bits apply to mh and mr, not {scheme}")
        if scheme == "mh" and (min_row_bits or eol_align) and not eol:
            raise CodecError("min_row_bits and eol_align are fill before an EOL: use eol=True")
        if scheme == "mr" and not eol:
            raise CodecError("MR rows always start with an EOL and tag bit: eol must be True")
        self.width = width
        self.scheme = scheme
        self._core = _codec._Encoder(
            width,
            sid,
            k,
            eol and scheme in ("mh", "mr"),
            eol_align,
            scheme == "mmr" if rtc is None else rtc,
            min_row_bits,
            msb_first,
        )

    @property
    def rows(self) -> int:
        """Rows coded so far."""
        return self._core.rows

    def encode(self, rows: bytes | bytearray | memoryview) -> bytes:
        """Code one or more whole packed rows; return the coded bytes completed so far."""
        return self._core.encode(rows)

    def finish(self) -> bytes:
        """End the page (RTC / EOFB if asked for) and return the last coded bytes."""
        return self._core.finish()


class Decoder:
    """Streaming decoder: feed coded bytes as they arrive, get rows as they complete.

    ``height``
        Rows on the page, if known: decoding stops there. Otherwise the page ends at
        RTC / EOFB, or at the end of the data (:meth:`finish`).
    ``max_rows``
        A guard against decompression bombs (a few bytes of MMR can claim millions of
        rows): more rows raise :class:`fastfax.errors.LimitError`.
    ``errors``
        ``"strict"`` raises :class:`fastfax.errors.CodecError` naming the row at the first
        damaged row. ``"repair"`` (MH and MR only) does what a T.4 receiver does: replaces
        a damaged row by the previous one, resynchronises on the next EOL and counts
        :attr:`bad_rows` and :attr:`max_consecutive_bad_rows`. MMR has no EOL to resync
        on, so damaged MMR always raises.
    ``msb_first``
        Bit order of the coded bytes (True: TIFF FillOrder 1; False: as on the line).
    """

    def __init__(
        self,
        width: int,
        scheme: Scheme = "mmr",
        *,
        height: int | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        errors: Literal["strict", "repair"] = "strict",
        msb_first: bool = True,
    ) -> None:
        _check_width(width)
        sid = _scheme_id(scheme)
        if errors not in ("strict", "repair"):
            raise CodecError(f"errors must be 'strict' or 'repair', got {errors!r}")
        if not isinstance(max_rows, int) or max_rows < 0:
            raise CodecError(f"max_rows must be a non-negative integer, got {max_rows!r}")
        if height is not None:
            if not isinstance(height, int) or height < 0:
                raise CodecError(f"height must be a non-negative integer, got {height!r}")
            if height > max_rows:
                raise LimitError(f"height {height} is over the row limit {max_rows}", row=0)
        self.width = width
        self.scheme = scheme
        self.stride = stride_of(width)
        self._core = _codec._Decoder(
            width, sid, msb_first, errors == "repair", -1 if height is None else height, max_rows
        )

    @property
    def rows(self) -> int:
        """Rows decoded so far (repaired ones included)."""
        return self._core.rows

    @property
    def bad_rows(self) -> int:
        """Damaged rows replaced by the previous row (``errors="repair"``)."""
        return self._core.bad_rows

    @property
    def max_consecutive_bad_rows(self) -> int:
        """The longest run of consecutive damaged rows."""
        return self._core.max_bad_run

    def page(self, rows: bytes, xres: float = 204, yres: float = 196) -> Page:
        """A :class:`Page` of the packed ``rows`` this decoder returned (any beyond
        :attr:`rows` are dropped), at ``xres`` x ``yres`` dpi, with its repair counts."""
        size = self.rows * self.stride
        return Page(
            rows if len(rows) == size else rows[:size],
            self.width,
            self.rows,
            xres,
            yres,
            bad_rows=self.bad_rows,
            consecutive_bad_rows=self.max_consecutive_bad_rows,
        )

    @property
    def done(self) -> bool:
        """True once the page ended (RTC, EOFB, ``height`` rows, or :meth:`finish`)."""
        return self._core.done

    def feed_packed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Add coded bytes; return the rows they completed, packed end to end."""
        return self._core.feed(data)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add coded bytes; return the rows they completed, one packed row per item."""
        return self._split(self._core.feed(data))

    def finish_packed(self) -> bytes:
        """Signal the end of the data; return the remaining rows packed end to end."""
        return self._core.finish()

    def finish(self) -> list[bytes]:
        """Signal the end of the data; return the remaining rows. Raises on a truncated row
        (``errors="strict"``)."""
        return self._split(self._core.finish())

    def _split(self, packed: bytes) -> list[bytes]:
        s = self.stride
        return [packed[i : i + s] for i in range(0, len(packed), s)]


def encode(page: Page, scheme: Scheme = "mmr", **options: object) -> bytes:
    """Code ``page`` with ``scheme``; options as for :class:`Encoder`.

    MR's ``k`` defaults to T.4's choice for the page's vertical resolution.
    """
    if not isinstance(page, Page):
        raise CodecError(f"expected a fastfax.Page, got {type(page).__name__}")
    if scheme == "mr":
        options.setdefault("k", default_k(page.yres))
    encoder = Encoder(page.width, scheme, **options)  # type: ignore[arg-type]
    return encoder.encode(page.data) + encoder.finish()


def decode(
    data: bytes | bytearray | memoryview,
    width: int,
    scheme: Scheme = "mmr",
    *,
    height: int | None = None,
    xres: float = 204,
    yres: float = 196,
    **options: object,
) -> Page:
    """Decode one page of coded ``data``; options as for :class:`Decoder`.

    The page's ``bad_rows`` and ``consecutive_bad_rows`` report what ``errors="repair"``
    mended.
    """
    decoder = Decoder(width, scheme, height=height, **options)  # type: ignore[arg-type]
    rows = decoder.feed_packed(data) + decoder.finish_packed()
    if height is not None and decoder.rows < height:
        raise CodecError(f"data ends after row {decoder.rows} of {height}", row=decoder.rows)
    return decoder.page(rows, xres, yres)


@dataclass(frozen=True)
class CodedPage:
    """A page as T.6 data: ``g4`` coded most significant bit first (TIFF FillOrder 1),
    1 = black, ending with EOFB and padded with zero bits to a whole byte;
    ``width`` x ``height`` pixels at ``xres`` x ``yres`` dots per inch.

    ``bad_rows`` and ``consecutive_bad_rows`` carry a received page's repair counts as
    :class:`fastfax.Page` does. The geometry is checked (:class:`fastfax.errors.PageError`)
    but the coded data is trusted: :meth:`of` is the way to make one.
    """

    g4: bytes
    width: int
    height: int
    xres: float
    yres: float
    bad_rows: int = 0
    consecutive_bad_rows: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.g4, bytes):
            raise PageError(f"coded data must be bytes, got {type(self.g4).__name__}")
        for name, low, high in (("width", 1, MAX_WIDTH), ("height", 0, None)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low or (high and value > high):
                raise PageError(f"page {name} out of range: {value!r}")
        for name in ("xres", "yres"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < 1e6:
                raise PageError(f"{name} must be a positive number of dots per inch, got {value!r}")

    @classmethod
    def of(cls, page: Page) -> CodedPage:
        """Code ``page`` with T.6."""
        return cls(
            encode(page, "mmr"),
            page.width,
            page.height,
            page.xres,
            page.yres,
            page.bad_rows,
            page.consecutive_bad_rows,
        )

    def to_page(self) -> Page:
        """The pixels back, as a :class:`fastfax.Page`."""
        page = decode(
            self.g4, self.width, "mmr", height=self.height, xres=self.xres, yres=self.yres
        )
        page.bad_rows = self.bad_rows
        page.consecutive_bad_rows = self.consecutive_bad_rows
        return page
