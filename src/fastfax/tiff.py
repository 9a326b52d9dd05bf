"""TIFF Class F: read and write multi-page fax TIFF files.

Writing (:func:`write`, :func:`dumps`) makes a little-endian TIFF with one IFD and one
strip per page (SpanDSP and efax read only single-strip pages) and every baseline tag
written out, including BitsPerSample, which SpanDSP requires. Compressions:

``"g4"``     T.6 MMR (Compression 4)
``"g3"``     T.4 one-dimensional MH with EOLs (Compression 3)
``"g3-2d"``  T.4 two-dimensional MR (Compression 3, T4Options bit 0), K from the resolution
``"rle"``    CCITT modified Huffman RLE, rows byte-aligned, no EOLs (Compression 2)

Reading (:func:`read`, :func:`loads`) accepts what libtiff, Pillow, fax2tiff and fax
software write: Compression 1 (bilevel), 2, 3 and 4; FillOrder 1 (most significant bit
first) and 2 (least significant bit first); Photometric MinIsWhite and MinIsBlack; several
strips per page; big- and little-endian byte order; resolution in inches or centimetres
(returned in dots per inch). Anything else (tiles, more than one bit per pixel, other
compressions, orientations other than top-left) raises :class:`fastfax.errors.TiffError`
rather than return a wrong image, as does any offset or count that points outside the
file.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from fractions import Fraction
from functools import lru_cache
from typing import BinaryIO, Literal

from .codec import CodedPage, Decoder, Scheme, encode, reverse_bits
from .errors import CodecError, TiffError
from .files import write_files
from .page import DEFAULT_MAX_ROWS, MAX_WIDTH, Page, stride_of

__all__ = ["Compression", "write", "dumps", "read", "loads", "MAX_PAGES", "MAX_PIXELS"]

Compression = Literal["g4", "g3", "g3-2d", "rle"]
#: Most pages (IFDs) read from or written to one file.
MAX_PAGES = 65535
#: Most pixels on one page read (32 MiB packed; ultrafine A3 is 4864 x 6480 = 31.5 M).
MAX_PIXELS = 1 << 28

# Tag numbers (TIFF 6.0 and the TIFF-F extension, RFC 2306).
_NEW_SUBFILE_TYPE = 254
_SUBFILE_TYPE = 255
_WIDTH = 256
_LENGTH = 257
_BITS = 258
_COMPRESSION = 259
_PHOTOMETRIC = 262
_FILL_ORDER = 266
_STRIP_OFFSETS = 273
_ORIENTATION = 274
_SAMPLES = 277
_ROWS_PER_STRIP = 278
_STRIP_BYTE_COUNTS = 279
_XRES = 282
_YRES = 283
_PLANAR = 284
_T4_OPTIONS = 292
_T6_OPTIONS = 293
_RES_UNIT = 296
_PAGE_NUMBER = 297
_SOFTWARE = 305
_TILE_TAGS = (322, 323, 324, 325)
_BAD_FAX_LINES = 326
_CLEAN_FAX_DATA = 327
_CONSECUTIVE_BAD = 328

# Field types: struct code and size in bytes.
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL = 1, 2, 3, 4, 5
_TYPES = dict(enumerate(("B", "c", "H", "I", "II", "b", "B", "h", "i", "ii", "f", "d", "I"), 1))
_SIZES = {ftype: struct.calcsize("<" + code) for ftype, code in _TYPES.items()}
_ELEMENT = {ftype: struct.calcsize("<" + code[0]) for ftype, code in _TYPES.items()}

_WRITE_COMPRESSION = {"rle": 2, "g3": 3, "g3-2d": 3, "g4": 4}
_SCHEME = {"rle": "rle", "g3": "mh", "g3-2d": "mr", "g4": "mmr"}
_INVERT = bytes(255 - i for i in range(256))
_CM_PER_INCH = Fraction(254, 100)

# ------------------------------------------------------------------------------------------
# Writing


def _rational(value: float) -> tuple[int, int]:
    """``value`` as a TIFF RATIONAL (two unsigned 32-bit integers), as exact as fits."""
    frac = Fraction(value).limit_denominator(1_000_000)
    while frac.numerator > 0xFFFFFFFF or frac.denominator > 0xFFFFFFFF:
        frac = frac.limit_denominator(max(1, frac.denominator // 16))
    return frac.numerator, frac.denominator


def _ifd_size(entries: list[tuple[int, int, tuple]]) -> int:
    """The size in bytes of the IFD :func:`_ifd` makes of ``entries`` (whatever the values
    of their offsets)."""
    size = 2 + 12 * len(entries) + 4
    for _, ftype, values in entries:
        raw = len(values[0]) if ftype == _ASCII else _ELEMENT[ftype] * len(values)
        if raw > 4:
            size += raw + (raw & 1)
    return size


def _ifd(entries: list[tuple[int, int, tuple]], offset: int, next_offset: int) -> bytes:
    """One little-endian IFD placed at ``offset``, its long values right after it."""
    entries.sort()
    head = bytearray(struct.pack("<H", len(entries)))
    extra = bytearray()
    extra_at = offset + 2 + 12 * len(entries) + 4
    for tag, ftype, values in entries:
        if ftype == _ASCII:
            raw, count = values[0], len(values[0])
        else:
            raw = struct.pack("<" + _TYPES[ftype][0] * len(values), *values)
            count = len(values) // (2 if ftype == _RATIONAL else 1)
        if len(raw) <= 4:
            head += struct.pack("<HHI", tag, ftype, count) + raw.ljust(4, b"\0")
        else:
            head += struct.pack("<HHII", tag, ftype, count, extra_at + len(extra))
            extra += raw + b"\0" * (len(raw) & 1)
    head += struct.pack("<I", next_offset)
    return bytes(head + extra)


@lru_cache(maxsize=64)
def _per_unit(dpi: float, cm: bool) -> tuple[int, int]:
    """``dpi`` as a RATIONAL per inch, or per centimetre when ``cm``."""
    if cm:
        return _rational(Fraction(dpi).limit_denominator(1_000_000) / _CM_PER_INCH)
    return _rational(dpi)


def _page_entries(
    page: Page | CodedPage,
    index: int,
    total: int,
    compression: str,
    *,
    fill_order: int,
    photometric: int,
    eol_align: bool,
    cm: bool,
    coded_len: int,
) -> list[tuple[int, int, tuple]]:
    xres, yres = _per_unit(page.xres, cm), _per_unit(page.yres, cm)
    entries: list[tuple[int, int, tuple]] = [
        (_NEW_SUBFILE_TYPE, _LONG, (2,)),  # a page of a multi-page document
        (_WIDTH, _LONG, (page.width,)),
        (_LENGTH, _LONG, (page.height,)),
        (_BITS, _SHORT, (1,)),
        (_COMPRESSION, _SHORT, (_WRITE_COMPRESSION[compression],)),
        (_PHOTOMETRIC, _SHORT, (photometric,)),
        (_FILL_ORDER, _SHORT, (fill_order,)),
        (_SAMPLES, _SHORT, (1,)),
        (_ROWS_PER_STRIP, _LONG, (page.height,)),
        (_STRIP_BYTE_COUNTS, _LONG, (coded_len,)),
        (_XRES, _RATIONAL, xres),
        (_YRES, _RATIONAL, yres),
        (_PLANAR, _SHORT, (1,)),
        (_RES_UNIT, _SHORT, (3 if cm else 2,)),
        (_PAGE_NUMBER, _SHORT, (index, total)),
        (_SOFTWARE, _ASCII, (b"fastfax\0",)),
        (_BAD_FAX_LINES, _LONG, (page.bad_rows,)),
        # The pixels of a Page are what the receiver kept: damaged rows, if any, were
        # already regenerated (CleanFaxData 1).
        (_CLEAN_FAX_DATA, _SHORT, (1 if page.bad_rows else 0,)),
        (_CONSECUTIVE_BAD, _LONG, (page.consecutive_bad_rows,)),
    ]
    if compression == "g3" or compression == "g3-2d":
        entries.append((_T4_OPTIONS, _LONG, ((compression == "g3-2d") | (eol_align << 2),)))
    elif compression == "g4":
        entries.append((_T6_OPTIONS, _LONG, (0,)))
    return entries


def dumps(
    pages: Page | CodedPage | Iterable[Page | CodedPage],
    compression: Compression = "g4",
    *,
    fill_order: Literal[1, 2] = 1,
    photometric: Literal["min-is-white", "min-is-black"] = "min-is-white",
    eol_align: bool = True,
    resolution_unit: Literal["inch", "cm"] = "inch",
) -> bytes:
    """The TIFF Class F file of ``pages`` as bytes; the options are those of :func:`write`."""
    return b"".join(_build(pages, compression, fill_order, photometric, eol_align, resolution_unit))


def write(
    target: str | os.PathLike[str] | BinaryIO,
    pages: Page | CodedPage | Iterable[Page | CodedPage],
    compression: Compression = "g4",
    *,
    fill_order: Literal[1, 2] = 1,
    photometric: Literal["min-is-white", "min-is-black"] = "min-is-white",
    eol_align: bool = True,
    resolution_unit: Literal["inch", "cm"] = "inch",
) -> None:
    """Write ``pages`` (one :class:`fastfax.Page` or several) as a TIFF Class F file.

    A page may also be a :class:`fastfax.codec.CodedPage`: with ``compression="g4"``
    and ``photometric="min-is-white"`` its T.6 data is stored as it is (bit-reversed
    for ``fill_order=2``), with no coding; otherwise it is decoded and coded again.

    ``target`` is a path, written atomically (to a temporary name in the same directory,
    renamed over ``target`` once complete), or a binary file object.

    ``compression``
        ``"g4"`` (MMR), ``"g3"`` (MH), ``"g3-2d"`` (MR) or ``"rle"`` (Compression 2).
    ``fill_order``
        1: the first pixel in the most significant bit of each byte (every reader
        handles this); 2: least significant bit first, as on the telephone line.
    ``photometric``
        ``"min-is-white"`` (0 = white, the fax convention) or ``"min-is-black"``.
    ``eol_align``
        G3 only: pad so every EOL ends on a byte boundary (T4Options "fill bits").
    ``resolution_unit``
        Store the pages' dpi as pixels per ``"inch"`` or per ``"cm"``.
    """
    parts = _build(pages, compression, fill_order, photometric, eol_align, resolution_unit)
    if hasattr(target, "write"):
        target.writelines(parts)  # type: ignore[union-attr]
        return
    write_files([(target, parts)])  # type: ignore[list-item]


def _build(
    pages: Page | CodedPage | Iterable[Page | CodedPage],
    compression: str,
    fill_order: int,
    photometric: str,
    eol_align: bool,
    resolution_unit: str,
) -> list[bytes]:
    if compression not in _WRITE_COMPRESSION:
        raise TiffError(
            f"unknown compression {compression!r}: use one of {', '.join(_WRITE_COMPRESSION)}"
        )
    if fill_order not in (1, 2):
        raise TiffError(f"fill_order must be 1 or 2, got {fill_order!r}")
    if photometric not in ("min-is-white", "min-is-black"):
        raise TiffError(
            f"photometric must be 'min-is-white' or 'min-is-black', got {photometric!r}"
        )
    if resolution_unit not in ("inch", "cm"):
        raise TiffError(f"resolution_unit must be 'inch' or 'cm', got {resolution_unit!r}")
    pages = [pages] if isinstance(pages, (Page, CodedPage)) else list(pages)
    if not pages:
        raise TiffError("no pages to write: a TIFF file needs at least one page")
    if len(pages) > MAX_PAGES:
        raise TiffError(f"{len(pages)} pages is more than a TIFF file holds here ({MAX_PAGES})")
    scheme = _SCHEME[compression]
    options: dict[str, object] = {"msb_first": fill_order == 1}
    if scheme in ("mh", "mr"):
        # End G3 pages with RTC, as a fax receiver stores them: efax reads codes until
        # RTC, and libtiff, Pillow and SpanDSP stop at the page height either way.
        options["eol_align"] = bool(eol_align)
        options["rtc"] = True
    as_is = scheme == "mmr" and photometric == "min-is-white"
    parts = [b"II*\0" + struct.pack("<I", 8)]
    offset = 8
    for index, page in enumerate(pages):
        if not isinstance(page, (Page, CodedPage)):
            raise TiffError(
                f"page {index} is a {type(page).__name__}, not a fastfax.Page or CodedPage"
            )
        if page.height == 0:
            raise TiffError(f"page {index} has no rows: TIFF readers reject empty images")
        if isinstance(page, CodedPage) and as_is:
            coded = page.g4 if fill_order == 1 else reverse_bits(page.g4)
        else:
            pixels = _pixels(page, index)
            if photometric == "min-is-black":  # code the inverted pixels: 0 bits are black
                pixels = Page(
                    pixels.data.translate(_INVERT), page.width, page.height, page.xres, page.yres
                )
            coded = encode(pixels, scheme, **options)
        layout = dict(
            fill_order=fill_order,
            photometric=0 if photometric == "min-is-white" else 1,
            eol_align=bool(eol_align),
            cm=resolution_unit == "cm",
            coded_len=len(coded),
        )
        # The IFD's size does not depend on its values: measure it, then place the strip
        # right after it.
        entries = _page_entries(page, index, len(pages), compression, **layout)
        entries.append((_STRIP_OFFSETS, _LONG, (0,)))
        strip_at = offset + _ifd_size(entries)
        entries[-1] = (_STRIP_OFFSETS, _LONG, (strip_at,))
        last = index + 1 == len(pages)
        pad = 0 if last else len(coded) & 1  # IFDs start on a word boundary
        end = strip_at + len(coded) + pad
        if end > 0xFFFFFFFF:
            raise TiffError("the pages do not fit in a 4 GiB TIFF file; write fewer per file")
        parts += [_ifd(entries, offset, 0 if last else end), coded, b"\0" * pad]
        offset = end
    return parts


def _pixels(page: Page | CodedPage, index: int) -> Page:
    if isinstance(page, Page):
        return page
    try:
        return page.to_page()
    except CodecError as exc:
        raise TiffError(f"page {index}: its G4 data does not decode: {exc}") from exc


# ------------------------------------------------------------------------------------------
# Reading


class _File:
    """The IFDs of a TIFF file held in memory; all offsets are checked against its size."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        if len(data) < 8:
            raise TiffError(f"not a TIFF file: {len(data)} bytes is too short for a header")
        order = data[:2]
        if order == b"II":
            self.e = "<"
        elif order == b"MM":
            self.e = ">"
        else:
            raise TiffError("not a TIFF file: it does not start with 'II' or 'MM'")
        magic, self.first = struct.unpack_from(self.e + "HI", data, 2)
        if magic == 43:
            raise TiffError(
                "BigTIFF files are not supported: fax TIFFs are classic TIFF; "
                "convert with 'tiffcp' (without -8)"
            )
        if magic != 42:
            raise TiffError(f"not a TIFF file: magic number {magic}, expected 42")

    def ifds(self) -> list[dict[int, tuple[int, int, int]]]:
        """Every IFD in order, as {tag: (type, count, offset of the value field)}."""
        out = []
        seen: set[int] = set()
        offset = self.first
        while offset:
            if offset in seen:
                raise TiffError(f"IFD {len(out)} at offset {offset} loops back to an earlier IFD")
            if len(out) >= MAX_PAGES:
                raise TiffError(f"more than {MAX_PAGES} IFDs (pages) in one file")
            seen.add(offset)
            if offset + 2 > len(self.data):
                raise TiffError(
                    f"IFD {len(out)} at offset {offset} lies past the end of the "
                    f"file ({len(self.data)} bytes): the file is truncated"
                )
            (n,) = struct.unpack_from(self.e + "H", self.data, offset)
            end = offset + 2 + 12 * n
            if end + 4 > len(self.data):
                raise TiffError(
                    f"IFD {len(out)} ({n} entries at offset {offset}) runs past the "
                    f"end of the file ({len(self.data)} bytes): it is truncated"
                )
            entries = {}
            fmt = self.e + "HHI"
            for pos in range(offset + 2, end, 12):
                tag, ftype, count = struct.unpack_from(fmt, self.data, pos)
                entries.setdefault(tag, (ftype, count, pos + 8))
            out.append(entries)
            (offset,) = struct.unpack_from(self.e + "I", self.data, end)
        return out

    def values(self, entry: tuple[int, int, int], name: str) -> tuple:
        """The values of an IFD entry (RATIONAL: flat numerator, denominator pairs)."""
        ftype, count, field = entry
        if ftype not in _SIZES:
            raise TiffError(f"{name} has unknown field type {ftype}")
        size = _SIZES[ftype] * count
        if size > 4:
            (at,) = struct.unpack_from(self.e + "I", self.data, field)
            if at + size > len(self.data):
                raise TiffError(
                    f"{name} ({count} values at offset {at}) lies past the end of "
                    f"the file ({len(self.data)} bytes): it is truncated or corrupt"
                )
        else:
            at = field
        return struct.unpack_from(
            f"{self.e}{count * len(_TYPES[ftype])}{_TYPES[ftype][0]}", self.data, at
        )

    def ints(self, ifd: dict, tag: int, name: str, default: int | None = None) -> tuple:
        entry = ifd.get(tag)
        if entry is None:
            if default is None:
                raise TiffError(f"required tag {name} ({tag}) is missing")
            return (default,)
        if entry[0] not in (_BYTE, _SHORT, _LONG):
            raise TiffError(f"{name} ({tag}) has field type {entry[0]}, expected an integer type")
        if entry[1] == 0:
            raise TiffError(f"{name} ({tag}) has no values")
        return self.values(entry, name)

    def rational(self, ifd: dict, tag: int, name: str) -> Fraction | None:
        entry = ifd.get(tag)
        if entry is None or entry[1] == 0:
            return None
        if entry[0] == _RATIONAL:
            num, den = self.values((entry[0], 1, entry[2]), name)
            return Fraction(num, den) if num and den else None
        if entry[0] in (_SHORT, _LONG):
            value = self.values((entry[0], 1, entry[2]), name)[0]
            return Fraction(value) if value else None
        raise TiffError(f"{name} ({tag}) has field type {entry[0]}, expected RATIONAL")


def _resolution(f: _File, ifd: dict) -> tuple[float, float]:
    """(xres, yres) in dpi. Missing or zero values default to fax fine, 204 x 196; with
    ResolutionUnit 1 (no unit, an aspect ratio only) x is taken as 204 dpi and y as 98 or
    196, whichever the ratio is closer to."""
    unit = f.ints(ifd, _RES_UNIT, "ResolutionUnit", 2)[0]
    x, y = f.rational(ifd, _XRES, "XResolution"), f.rational(ifd, _YRES, "YResolution")
    if unit == 1:
        if x and y and y / x < Fraction(3, 4):
            return 204.0, 98.0
        return 204.0, 196.0
    if unit not in (2, 3):
        raise TiffError(f"ResolutionUnit {unit} is not defined (1 none, 2 inch, 3 centimetre)")
    scale = _CM_PER_INCH if unit == 3 else 1
    xres = float(x * scale) if x else 204.0
    yres = float(y * scale) if y else 196.0
    for name, value in (("XResolution", xres), ("YResolution", yres)):
        if not value < 1e6:
            raise TiffError(f"{name} of {value:g} dpi is absurd: the file is corrupt")
    return xres, yres


def _decode_strip(
    strip: memoryview,
    width: int,
    rows: int,
    compression: int,
    t_options: int,
    msb_first: bool,
    errors: Literal["strict", "repair"],
) -> tuple[bytes, int, int]:
    """The packed rows of one strip, its bad row count and longest run of bad rows."""
    if compression == 1:
        need = rows * stride_of(width)
        if len(strip) < need:
            raise CodecError(f"uncompressed strip holds {len(strip)} bytes, {need} needed")
        raw = bytes(strip[:need])
        return (raw if msb_first else reverse_bits(raw)), 0, 0
    if compression == 4:
        scheme: Scheme = "mmr"
    elif compression == 3:
        scheme = "mr" if t_options & 1 else "mh"
    else:
        scheme = "rle"
    mode: Literal["strict", "repair"] = errors if scheme in ("mh", "mr") else "strict"
    decoder = Decoder(width, scheme, height=rows, max_rows=rows, msb_first=msb_first, errors=mode)
    out = decoder.feed_packed(strip) + decoder.finish_packed()
    if decoder.rows < rows:
        raise CodecError(
            f"the coded data ends after row {decoder.rows} of {rows}", row=decoder.rows
        )
    return out, decoder.bad_rows, decoder.max_consecutive_bad_rows


def _page(
    f: _File, ifd: dict, index: int, errors: Literal["strict", "repair"] | None, max_rows: int
) -> Page | None:
    """The page of one IFD, or None for a reduced-resolution image (a thumbnail)."""
    if f.ints(ifd, _NEW_SUBFILE_TYPE, "NewSubfileType", 0)[0] & 1:
        return None
    if f.ints(ifd, _SUBFILE_TYPE, "SubfileType", 1)[0] == 2:
        return None
    width = f.ints(ifd, _WIDTH, "ImageWidth")[0]
    height = f.ints(ifd, _LENGTH, "ImageLength")[0]
    bits = f.ints(ifd, _BITS, "BitsPerSample", 1)
    samples = f.ints(ifd, _SAMPLES, "SamplesPerPixel", 1)[0]
    compression = f.ints(ifd, _COMPRESSION, "Compression", 1)[0]
    if any(tag in ifd for tag in _TILE_TAGS):
        raise TiffError(
            "the image is tiled: fax TIFFs use strips; convert it with "
            "'tiffcp -s' or use fastfax.document.convert / Pillow"
        )
    if samples != 1 or set(bits) != {1}:
        raise TiffError(
            f"{samples} sample(s) of {'/'.join(map(str, bits))} bits per pixel: "
            "fastfax.tiff reads bilevel (1-bit) fax images only; use "
            "fastfax.document.convert / Pillow for general images"
        )
    if compression not in (1, 2, 3, 4):
        raise TiffError(
            f"Compression {compression} is not a fax compression (1, 2, 3 or 4): "
            "use fastfax.document.convert / Pillow for general images"
        )
    if not 1 <= width <= MAX_WIDTH:
        raise TiffError(f"ImageWidth {width} is out of range (1 to {MAX_WIDTH} pixels)")
    if height == 0:
        raise TiffError("ImageLength is 0: an image with no rows (libtiff rejects it too)")
    if width * height > MAX_PIXELS:
        raise TiffError(f"a {width} x {height} page is over the limit of {MAX_PIXELS} pixels")
    if height > max_rows:
        raise TiffError(
            f"ImageLength {height} is over the row limit {max_rows}: pass a larger "
            "max_rows if the file is trusted"
        )
    photometric = f.ints(ifd, _PHOTOMETRIC, "PhotometricInterpretation", 0)[0]
    if photometric not in (0, 1):
        raise TiffError(
            f"PhotometricInterpretation {photometric} is not bilevel (0 MinIsWhite "
            "or 1 MinIsBlack): use fastfax.document.convert / Pillow for general images"
        )
    fill_order = f.ints(ifd, _FILL_ORDER, "FillOrder", 1)[0]
    if fill_order not in (1, 2):
        raise TiffError(f"FillOrder {fill_order} is not defined (1 or 2)")
    orientation = f.ints(ifd, _ORIENTATION, "Orientation", 1)[0]
    if orientation != 1:
        raise TiffError(
            f"Orientation {orientation} is not supported (only 1, top-left): "
            "rotate the image with Pillow or 'tiffcp' first"
        )
    if compression == 3:
        t_options = f.ints(ifd, _T4_OPTIONS, "T4Options", 0)[0]
    else:
        t_options = f.ints(ifd, _T6_OPTIONS, "T6Options", 0)[0] if compression == 4 else 0
    if t_options & 2:
        raise TiffError(
            "the fax data uses T.4/T.6 uncompressed mode (T4Options/T6Options "
            "bit 1), which fastfax does not decode; re-encode it with tiffcp"
        )
    clean = f.ints(ifd, _CLEAN_FAX_DATA, "CleanFaxData", 0)[0]
    if errors is None:
        errors = "repair" if clean == 2 else "strict"
    xres, yres = _resolution(f, ifd)
    rows_per_strip = f.ints(ifd, _ROWS_PER_STRIP, "RowsPerStrip", 0xFFFFFFFF)[0] or height
    nstrips = -(-height // rows_per_strip) if height else 0
    offsets = f.ints(ifd, _STRIP_OFFSETS, "StripOffsets")[:nstrips] if nstrips else ()
    if _STRIP_BYTE_COUNTS in ifd or nstrips != 1:
        counts = f.ints(ifd, _STRIP_BYTE_COUNTS, "StripByteCounts")[:nstrips] if nstrips else ()
    else:
        counts = (len(f.data) - offsets[0],)  # one strip, no count: it runs to the end
    if len(offsets) < nstrips or len(counts) < nstrips:
        raise TiffError(
            f"{nstrips} strips of {rows_per_strip} rows are needed for "
            f"{height} rows, but StripOffsets has {len(offsets)} and "
            f"StripByteCounts {len(counts)}"
        )
    parts = []
    bad = run = 0
    view = memoryview(f.data)
    for i, (at, size) in enumerate(zip(offsets, counts, strict=False)):
        if at + size > len(f.data):
            raise TiffError(
                f"page {index} strip {i} ({size} bytes at offset {at}) lies past the "
                f"end of the file ({len(f.data)} bytes): the file is truncated"
            )
        rows = min(rows_per_strip, height - i * rows_per_strip)
        try:
            out, b, r = _decode_strip(
                view[at : at + size], width, rows, compression, t_options, fill_order == 1, errors
            )
        except CodecError as exc:
            raise TiffError(f"page {index} strip {i}: {exc}") from exc
        parts.append(out)
        bad += b
        run = max(run, r)
    data = b"".join(parts)
    if photometric == 1:
        data = data.translate(_INVERT)
    bad = max(bad, f.ints(ifd, _BAD_FAX_LINES, "BadFaxLines", 0)[0])
    run = max(run, f.ints(ifd, _CONSECUTIVE_BAD, "ConsecutiveBadFaxLines", 0)[0])
    return Page(data, width, height, xres, yres, bad_rows=bad, consecutive_bad_rows=run)


def loads(
    data: bytes | bytearray | memoryview,
    *,
    errors: Literal["strict", "repair"] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[Page]:
    """The pages of a TIFF file held in memory; see :func:`read`."""
    if errors not in (None, "strict", "repair"):
        raise TiffError(f"errors must be None, 'strict' or 'repair', got {errors!r}")
    f = _File(bytes(data))
    pages = []
    for index, ifd in enumerate(f.ifds()):
        page = _page(f, ifd, index, errors, max_rows)
        if page is not None:
            pages.append(page)
    return pages


def read(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    errors: Literal["strict", "repair"] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[Page]:
    """The pages of a TIFF file (a path or a binary file object), in IFD order.

    Resolutions come back in dots per inch. Reduced-resolution images (NewSubfileType
    bit 0, thumbnails) are skipped.

    ``errors``
        How damaged G3 (MH / MR) data is decoded. ``None`` (the default) follows the
        file: ``"repair"`` when its CleanFaxData tag is 2 ("lines with errors that were
        not regenerated"), else ``"strict"``, so a file that claims to be clean never
        yields a silently patched image. ``"repair"`` replaces each damaged row by the
        one above it, as a fax receiver does. Damaged MMR or RLE data always raises.
        A page's ``bad_rows`` / ``consecutive_bad_rows`` are the larger of the file's
        BadFaxLines / ConsecutiveBadFaxLines and what the repair found.
    ``max_rows``
        Pages taller than this raise (a guard against decompression bombs).

    Raises :class:`fastfax.errors.TiffError` for a malformed file or a structure fastfax
    does not read.
    """
    if hasattr(source, "read"):
        raw = source.read()  # type: ignore[union-attr]
    else:
        with open(source, "rb") as fh:  # type: ignore[arg-type]
            raw = fh.read()
    return loads(raw, errors=errors, max_rows=max_rows)
