"""The page type shared by the whole stack: one bilevel (1-bit) fax page.

Pixels are stored as packed rows: ``stride = (width + 7) // 8`` bytes per row, the most
significant bit of each byte is the leftmost pixel, 1 = black, 0 = white. The unused low
bits of the last byte of each row are always 0. Resolutions are in dots per inch
(fax "fine" is 204 x 196, "standard" 204 x 98).

numpy is imported only by :meth:`Page.from_array` and :meth:`Page.to_array`, so that
programs that only move pages (the ``fastfax`` command's start) do not load it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import PageError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

#: Widest page accepted anywhere in fastfax, in pixels (T.4 ultrafine A3 is 4864).
MAX_WIDTH = 65535
#: Tallest page accepted by default, in rows (a guard against decompression bombs).
DEFAULT_MAX_ROWS = 65535
#: Most pixels one page may hold (256 MiB packed): a guard against absurd geometry.
MAX_PIXELS = 1 << 31


def stride_of(width: int) -> int:
    """Bytes per packed row for ``width`` pixels."""
    return (width + 7) >> 3


def _check_geometry(width: int, height: int, xres: float, yres: float) -> None:
    if not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise PageError(f"page width must be an integer from 1 to {MAX_WIDTH}, got {width!r}")
    if not isinstance(height, int) or height < 0:
        raise PageError(f"page height must be a non-negative integer, got {height!r}")
    if width * height > MAX_PIXELS:
        raise PageError(
            f"a {width} x {height} page has more than {MAX_PIXELS} pixels: not a fax page"
        )
    for name, value in (("xres", xres), ("yres", yres)):
        if not isinstance(value, (int, float)) or not 0 < value < 1e6:
            raise PageError(f"{name} must be a positive number of dots per inch, got {value!r}")


def _tail_mask(width: int) -> int:
    """Mask of the valid bits in the last byte of a row (0xFF when width % 8 == 0)."""
    return (0xFF << (-width & 7)) & 0xFF


class Page:
    """One bilevel page: ``width`` x ``height`` pixels at ``xres`` x ``yres`` dpi.

    ``data`` holds the packed rows (see the module docstring). ``bad_rows`` and
    ``consecutive_bad_rows`` carry what a T.4 receiver repaired while decoding (the
    TIFF BadFaxLines / ConsecutiveBadFaxLines tags); both are 0 for a clean page.
    """

    __slots__ = ("width", "height", "xres", "yres", "data", "bad_rows", "consecutive_bad_rows")

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        width: int,
        height: int,
        xres: float = 204,
        yres: float = 196,
        *,
        bad_rows: int = 0,
        consecutive_bad_rows: int = 0,
    ) -> None:
        _check_geometry(width, height, xres, yres)
        stride = stride_of(width)
        data = bytes(data)
        if len(data) != stride * height:
            raise PageError(
                f"packed data is {len(data)} bytes, expected {stride * height} "
                f"({height} rows of {stride} bytes for width {width})"
            )
        mask = _tail_mask(width)
        if mask != 0xFF and height:
            last = data[stride - 1 :: stride]  # each row's last byte
            kept = last.translate(_MASKED[mask])
            if kept != last:
                fixed = bytearray(data)
                fixed[stride - 1 :: stride] = kept
                data = bytes(fixed)
        self.data = data
        self.width = width
        self.height = height
        self.xres = xres
        self.yres = yres
        self.bad_rows = bad_rows
        self.consecutive_bad_rows = consecutive_bad_rows

    # -- construction -------------------------------------------------------------
    @classmethod
    def blank(
        cls, width: int = 1728, height: int = 2200, xres: float = 204, yres: float = 196
    ) -> Page:
        """An all-white page."""
        _check_geometry(width, height, xres, yres)
        return cls(bytes(stride_of(width) * height), width, height, xres, yres)

    @classmethod
    def from_array(cls, array: np.ndarray, xres: float = 204, yres: float = 196) -> Page:
        """A page from a 2-D array, shape (height, width): bool, or integers 0/1; True/1 = black."""
        import numpy as np

        arr = np.asarray(array)
        if arr.ndim != 2:
            raise PageError(f"expected a 2-D array (height, width), got shape {arr.shape}")
        if arr.dtype != np.bool_:
            if not np.issubdtype(arr.dtype, np.integer):
                raise PageError(f"expected a bool or 0/1 integer array, got dtype {arr.dtype}")
            if arr.size and (arr.min() < 0 or arr.max() > 1):
                raise PageError("integer page arrays must hold only 0 (white) and 1 (black)")
            arr = arr.astype(np.bool_)
        height, width = arr.shape
        _check_geometry(width, height, xres, yres)
        packed = np.packbits(arr, axis=1, bitorder="big") if height else b""
        return cls(bytes(packed), width, height, xres, yres)

    @classmethod
    def from_image(
        cls, image: Image.Image, xres: float | None = None, yres: float | None = None
    ) -> Page:
        """A page from a Pillow mode "1" image (other modes are thresholded at 50 %).

        The resolution defaults to the image's ``dpi`` info, else 204 x 196.
        """
        if image.mode != "1":
            image = image.convert("L").point(lambda v: 255 if v >= 128 else 0).convert("1")
        dpi = image.info.get("dpi")
        if xres is None:
            xres = float(dpi[0]) if dpi and dpi[0] else 204
        if yres is None:
            yres = float(dpi[1]) if dpi and dpi[1] else 196
        width, height = image.size
        return cls(image.tobytes("raw", "1;I"), width, height, xres, yres)

    @classmethod
    def from_pbm(
        cls, source: bytes | str | os.PathLike[str], xres: float = 204, yres: float = 196
    ) -> Page:
        """A page from binary PBM (P4) bytes or a PBM file path. PBM's 1 = black matches ours."""
        if isinstance(source, (bytes, bytearray)):
            raw = bytes(source)
        else:
            with open(source, "rb") as fh:
                raw = fh.read()
        match = _PBM_HEADER.match(raw)
        if not match:
            raise PageError("not a binary PBM (P4) image: bad header")
        width, height = int(match.group(1)), int(match.group(2))
        _check_geometry(width, height, xres, yres)
        body = raw[match.end() : match.end() + stride_of(width) * height]
        if len(body) != stride_of(width) * height:
            raise PageError(
                f"PBM is truncated: {len(body)} of {stride_of(width) * height} pixel bytes"
            )
        return cls(body, width, height, xres, yres)

    # -- conversion ---------------------------------------------------------------
    @property
    def stride(self) -> int:
        """Bytes per packed row."""
        return stride_of(self.width)

    def to_array(self) -> np.ndarray:
        """The pixels as a bool array of shape (height, width), True = black."""
        import numpy as np

        packed = np.frombuffer(self.data, dtype=np.uint8).reshape(self.height, self.stride)
        return np.unpackbits(packed, axis=1, count=self.width, bitorder="big").astype(np.bool_)

    def to_image(self) -> Image.Image:
        """A Pillow mode "1" image of the page, with its resolution in ``info["dpi"]``."""
        from PIL import Image

        image = Image.frombytes("1", (self.width, self.height), self.data, "raw", "1;I")
        image.info["dpi"] = (self.xres, self.yres)
        return image

    def to_pbm(self) -> bytes:
        """The page as binary PBM (P4) bytes."""
        return b"P4\n%d %d\n" % (self.width, self.height) + self.data

    def row(self, index: int) -> bytes:
        """Packed row ``index`` (0 = top)."""
        if not 0 <= index < self.height:
            raise IndexError(f"row {index} out of range for a page of {self.height} rows")
        s = self.stride
        return self.data[index * s : (index + 1) * s]

    def rows(self) -> Iterator[bytes]:
        """The packed rows, top to bottom."""
        s = self.stride
        for i in range(0, len(self.data), s):
            yield self.data[i : i + s]

    def black_pixels(self) -> int:
        """The number of black pixels on the page."""
        return int.from_bytes(self.data, "big").bit_count()

    # -- value semantics ------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Page):
            return NotImplemented
        return (
            self.width == other.width
            and self.height == other.height
            and self.xres == other.xres
            and self.yres == other.yres
            and self.data == other.data
        )

    def __hash__(self) -> int:
        return hash((self.width, self.height, self.xres, self.yres, self.data))

    def __repr__(self) -> str:
        return f"Page({self.width}x{self.height} at {self.xres:g}x{self.yres:g} dpi)"


#: For each tail mask (see :func:`_tail_mask`), a ``bytes.translate`` table that clears
#: the bits outside it.
_MASKED = {(0xFF << n) & 0xFF: bytes(b & (0xFF << n) for b in range(256)) for n in range(1, 8)}
_PBM_HEADER = re.compile(rb"P4(?:\s|#[^\n]*\n)+(\d+)(?:\s|#[^\n]*\n)+(\d+)\s")
