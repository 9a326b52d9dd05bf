"""A fax page held as its T.6 (G4, MMR) coded data instead of its pixels.

Coding a page once where it is rendered (a worker process, say) and handing on the
coded bytes, about 20 times smaller than the packed pixels, lets the TIFF and PDF
writers (:mod:`fastfax.tiff`, :mod:`fastfax.pdfout`) store it without coding it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import codec
from .errors import PageError
from .page import MAX_WIDTH, Page

__all__ = ["CodedPage"]


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
            codec.encode(page, "mmr"),
            page.width,
            page.height,
            page.xres,
            page.yres,
            page.bad_rows,
            page.consecutive_bad_rows,
        )

    def to_page(self) -> Page:
        """The pixels back, as a :class:`fastfax.Page`."""
        page = codec.decode(
            self.g4, self.width, "mmr", height=self.height, xres=self.xres, yres=self.yres
        )
        page.bad_rows = self.bad_rows
        page.consecutive_bad_rows = self.consecutive_bad_rows
        return page
