"""Document inputs rendered to fax pages: PDF, raster images, plain text.

:func:`open_source` sniffs a file's first bytes and returns a :class:`Source`: its page
count and :meth:`Source.render`, which makes one bilevel :class:`fastfax.Page` laid out
on a :class:`fastfax.document.layout.Layout`: a landscape page is turned a quarter clockwise,
scaled to fit keeping its aspect ratio and centred, then binarised by
:mod:`fastfax.document._raster` ("text": area-average and threshold; "photo": error diffusion;
"auto": chosen per page).

- PDF: rendered by PDFium (pypdfium2's C bindings) straight at the fax resolution, in 8-bit grey;
  paths and images anti-aliased (each pixel the ink coverage of its area), text drawn
  as hinted bilevel glyphs except in photo mode. In text mode a page is drawn and
  thresholded a band of rows at a time, so the grey stays in the CPU's cache (the
  bands are pixel for pixel the whole page's). PDFium is not
  thread-safe: use one process per concurrent renderer (:mod:`fastfax.document.convert` does).
- Images (PNG, JPEG, GIF, BMP, WebP, PBM/PGM, multi-page TIFF of any compression), by
  Pillow: EXIF orientation applied, transparency flattened on white, sized from the
  image's dpi.
- Plain text (UTF-8, else Latin-1): monospaced 10 pt, 20 mm margins, lines wrapped at
  the margin, tabs every 8 columns, a form feed starts a new page.

numpy and Pillow are imported by the functions that use them, not with this module: a
PDF converts in text mode without either (the ``fastfax convert`` command's start-up).
"""

from __future__ import annotations

import ctypes
import os
import warnings
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConvertError
from ..page import Page
from . import _raster
from .layout import Layout, Placement, layout_for

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

__all__ = ["Mode", "MODES", "Source", "open_source", "font", "Canvas", "binarize"]

Mode = Literal["text", "photo", "auto"]
MODES: dict[str, int] = {
    "text": _raster.MODE_TEXT,
    "photo": _raster.MODE_PHOTO,
    "auto": _raster.MODE_AUTO,
}
#: Grey level (0 black .. 255 white) below which "text" mode makes a pixel black.
DEFAULT_THRESHOLD = 160
#: Largest raster image accepted, in pixels (a guard against decompression bombs).
MAX_IMAGE_PIXELS = 1 << 28
#: Largest plain-text file accepted, in bytes (about 20 000 pages).
MAX_TEXT_BYTES = 64 << 20
_SNIFF = 8192


def binarize(
    grey: np.ndarray,
    layout: Layout,
    x: int,
    y: int,
    width: int,
    height: int,
    mode: str = "text",
    threshold: int = DEFAULT_THRESHOLD,
) -> tuple[Page, str]:
    """Area-average 8-bit ``grey`` (rows, columns; 0 = black) into the ``width`` x
    ``height`` rectangle at pixel ``(x, y)`` of a white ``layout`` page and binarise it.
    Returns the page and the mode used ("text" or "photo")."""
    import numpy as np

    if mode not in MODES:
        raise ConvertError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    grey = np.asarray(grey, dtype=np.uint8)
    if grey.ndim != 2 or (grey.size and grey.strides[1] != 1):
        grey = np.ascontiguousarray(grey).reshape(grey.shape[0], -1)
    data, used = _raster.binarize(
        grey, layout.width, layout.height, x, y, width, height, MODES[mode], threshold
    )
    page = Page(data, layout.width, layout.height, layout.xres, layout.yres)
    return page, "photo" if used == _raster.MODE_PHOTO else "text"


@lru_cache(maxsize=32)
def font(size_px: int, *, mono: bool = False, bold: bool = False) -> ImageFont.ImageFont:
    """A TrueType font ``size_px`` pixels high: DejaVu Sans (Mono) from the system font
    directories, else Pillow's built-in font (proportional)."""
    from PIL import ImageFont

    name = "DejaVuSans" + ("Mono" if mono else "") + ("-Bold" if bold else "") + ".ttf"
    try:
        return ImageFont.truetype(name, size_px)
    except OSError:
        return ImageFont.load_default(size_px)  # type: ignore[return-value]


@dataclass
class Canvas:
    """A white grey canvas covering a whole ``layout`` page at a square resolution
    ``dpi`` (the larger of the page's two), to draw text on with Pillow before it is
    resampled to the page's pixels."""

    layout: Layout
    image: Image.Image
    dpi: int

    @classmethod
    def new(cls, layout: Layout, height_px: int | None = None) -> Canvas:
        """A canvas for the page, or for its top ``height_px`` page rows."""
        from PIL import Image

        dpi = max(layout.xres, layout.yres)
        rows = layout.height if height_px is None else height_px
        size = (round(layout.width / layout.xres * dpi), round(rows / layout.yres * dpi))
        return cls(layout, Image.new("L", size, 255), dpi)

    def px(self, mm: float) -> int:
        """Millimetres to canvas pixels."""
        return round(mm / 25.4 * self.dpi)

    def pt(self, points: float) -> int:
        """Typographic points to canvas pixels."""
        return max(1, round(points / 72 * self.dpi))

    def draw(self) -> ImageDraw.ImageDraw:
        from PIL import ImageDraw

        return ImageDraw.Draw(self.image)

    def grey_rows(self, rows: int) -> tuple[np.ndarray, int]:
        """The canvas as grey pixels, and how many page rows it covers (``rows`` at most)."""
        import numpy as np

        grey = np.asarray(self.image)
        return grey, min(rows, round(self.image.height / self.dpi * self.layout.yres))

    def to_page(self) -> Page:
        """The canvas binarised (text mode) onto its fax page."""
        grey, rows = self.grey_rows(self.layout.height)
        return binarize(grey, self.layout, 0, 0, self.layout.width, rows)[0]


class Source:
    """An open input document: ``path``, ``kind`` and ``pages`` (the page count)."""

    kind = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pages = 0

    def render(
        self, index: int, layout: Layout, mode: str = "text", threshold: int = DEFAULT_THRESHOLD
    ) -> Page:
        """Page ``index`` (0-based) as a fax page on ``layout``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the document."""

    def _error(self, message: str, index: int | None = None) -> ConvertError:
        return ConvertError(message, path=self.path, page=None if index is None else index + 1)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.pages:
            raise self._error(f"no page {index + 1}: the document has {self.pages}")


@lru_cache(maxsize=1)
def _pdfium() -> Any:
    """PDFium's C API, initialised: the ctypes bindings pypdfium2 ships
    (``pypdfium2_raw``), without pypdfium2's Python layer, whose import alone takes longer
    than the rest of a conversion's start-up. PDFium ignores a second initialisation, so
    pypdfium2 imported in the same process before or after works on."""
    import pypdfium2_raw as raw

    raw.FPDF_InitLibraryWithConfig(raw.FPDF_LIBRARY_CONFIG(version=2))
    return raw


#: What ``FPDF_GetLastError`` says when a document does not open (4, the password, aside).
_PDFIUM_ERRORS = {
    2: "the file cannot be read",
    3: "not a PDF, or a damaged one",
    5: "its security scheme is not supported",
    6: "a page is missing or damaged",
}
_PDFIUM_PASSWORD_ERROR = 4


class PdfSource(Source):
    """A PDF rendered by PDFium (see the module docstring)."""

    kind = "pdf"

    def __init__(self, path: str, password: str | None = None) -> None:
        super().__init__(path)
        raw = self._raw = _pdfium()
        secret = password.encode("utf-8") if password is not None else None
        self._doc = raw.FPDF_LoadDocument(os.fsencode(path), secret)
        if not self._doc:
            code = raw.FPDF_GetLastError()
            if code == _PDFIUM_PASSWORD_ERROR:
                text = "the PDF is encrypted: give its password" + (
                    " (the one given is wrong)" if password else ""
                )
            else:
                text = _PDFIUM_ERRORS.get(code, f"PDFium error {code}")
            raise self._error(f"cannot open the PDF: {text}")
        self.pages = raw.FPDF_GetPageCount(self._doc)
        self._grey = bytearray()
        self._grey_at = (ctypes.c_char * 0).from_buffer(self._grey)  # pins it: no resizing
        if self.pages == 0:
            self.close()
            raise self._error("the PDF has no pages")

    #: Bytes of grey PDFium draws at a time in text mode: a band this size stays in one
    #: core's cache while it is drawn and thresholded.
    BAND_BYTES = 512 << 10

    def render(
        self, index: int, layout: Layout, mode: str = "text", threshold: int = DEFAULT_THRESHOLD
    ) -> Page:
        if mode != "text":  # error diffusion and the choice of mode see the whole page
            with closing(self.bands(index, layout, mode, whole=True)) as bands:
                grey, place, _ = next(bands)
                return binarize(
                    grey, layout, place.x, place.y, place.width, place.height, mode, threshold
                )[0]
        built = _raster.TextPage(layout.width, layout.height)
        for grey, place, top in self.bands(index, layout, mode):
            built.threshold(grey, place.x, place.y + top, threshold)
        return Page(built.take(), layout.width, layout.height, layout.xres, layout.yres)

    def bands(
        self, index: int, layout: Layout, mode: str = "text", *, whole: bool = False
    ) -> Iterator[tuple[memoryview, Placement, int]]:
        """Page ``index`` drawn by PDFium in 8-bit grey (0 = black) at the size it takes
        on ``layout``, a band of rows at a time from the top (one band with ``whole``):
        each band's grey rows (a C-contiguous memoryview of shape (rows, placement
        width)), the page's placement on ``layout`` and the band's first row. A band is a
        view of a buffer the next one is drawn over."""
        self._check_index(index)
        raw = self._raw
        page = raw.FPDF_LoadPage(self._doc, index)
        if not page:
            raise self._error("PDFium cannot load the page", index)
        try:
            width_pt = raw.FPDF_GetPageWidthF(page)
            height_pt = raw.FPDF_GetPageHeightF(page)
            if not (width_pt > 0 and height_pt > 0):
                raise self._error(f"the page is {width_pt} x {height_pt} points", index)
            place = layout.fit(width_pt / 72, height_pt / 72)
            stride = place.width  # rows unpadded: the band is one contiguous array
            step = place.height if whole else max(16, self.BAND_BYTES // stride)
            flags = self._flags(mode)
            for top in range(0, place.height, step):
                rows = min(step, place.height - top)
                address = self._buffer(rows * stride)
                ctypes.memset(address, 255, rows * stride)
                bitmap = raw.FPDFBitmap_CreateEx(
                    place.width, rows, raw.FPDFBitmap_Gray, address, stride
                )
                if not bitmap:
                    raise self._error("PDFium cannot allocate the page bitmap", index)
                try:
                    # The whole page moved up by ``top`` rows: PDFium draws what falls
                    # inside the band.
                    raw.FPDF_RenderPageBitmap(
                        bitmap,
                        page,
                        0,
                        -top,
                        place.width,
                        place.height,
                        place.rotate // 90,
                        flags,
                    )
                finally:
                    raw.FPDFBitmap_Destroy(bitmap)
                band = memoryview(self._grey)[: rows * stride]
                yield band.cast("B", (rows, stride)), place, top
        finally:
            raw.FPDF_ClosePage(page)

    def _flags(self, mode: str) -> int:
        """PDFium render flags: grey, annotations drawn; text not anti-aliased unless
        for photo mode (hinted bilevel glyphs read better after thresholding, and OCR
        agrees)."""
        raw = self._raw
        flags = raw.FPDF_ANNOT | raw.FPDF_GRAYSCALE
        return flags if mode == "photo" else flags | raw.FPDF_RENDER_NO_SMOOTHTEXT

    def _buffer(self, size: int) -> int:
        """The address of a reused grey buffer of at least ``size`` bytes (fresh memory
        costs page faults)."""
        if len(self._grey) < size:
            self._grey = bytearray(size)
            self._grey_at = (ctypes.c_char * size).from_buffer(self._grey)
        return ctypes.addressof(self._grey_at)

    def close(self) -> None:
        if self._doc:
            self._raw.FPDF_CloseDocument(self._doc)
            self._doc = None


class ImageSource(Source):
    """A raster image (multi-frame for TIFF, GIF, WebP) read by Pillow; with ``decode``
    False only its header is read until a page is rendered."""

    kind = "image"

    def __init__(self, path: str, *, decode: bool = True) -> None:
        super().__init__(path)
        from PIL import Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                self._image = Image.open(path)
                if decode:
                    self._image.load()
        except Exception as exc:  # Pillow raises many types for corrupt files
            raise self._error(f"cannot read the image: {exc}") from None
        self.pages = getattr(self._image, "n_frames", 1)

    def render(
        self, index: int, layout: Layout, mode: str = "text", threshold: int = DEFAULT_THRESHOLD
    ) -> Page:
        import numpy as np
        from PIL import Image, ImageOps

        self._check_index(index)
        try:
            self._image.seek(index)
            frame = self._image
            if frame.width * frame.height > MAX_IMAGE_PIXELS:
                raise self._error(
                    f"{frame.width} x {frame.height} pixels is over the limit {MAX_IMAGE_PIXELS}",
                    index,
                )
            dpi = frame.info.get("dpi") or (0, 0)
            frame = ImageOps.exif_transpose(frame)
            grey = _flatten(frame)
        except ConvertError:
            raise
        except Exception as exc:
            raise self._error(f"cannot decode the image: {exc}", index) from None
        xdpi, ydpi = (float(d) for d in dpi)
        if not (xdpi > 0 and ydpi > 0):
            xdpi = ydpi = 1.0  # no physical size: fit the page
        place = layout.fit_pixels(grey.width, grey.height, xdpi, ydpi)
        if place.rotate:
            grey = grey.transpose(Image.Transpose.ROTATE_270)
        return binarize(
            np.asarray(grey),
            layout,
            place.x,
            place.y,
            place.width,
            place.height,
            mode,
            threshold,
        )[0]

    def close(self) -> None:
        self._image.close()


def _flatten(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit grey, transparent parts white."""
    import numpy as np
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = arr.max() or 1.0
        return Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8))
    return image.convert("L")


class TextSource(Source):
    """Plain text laid out in a monospaced font (see the module docstring)."""

    kind = "text"
    FONT_PT = 10.0
    LEADING_PT = 12.0
    MARGIN_MM = 20.0
    TAB = 8

    def __init__(self, path: str, text: str, layout: Layout) -> None:
        super().__init__(path)
        self._text = text
        self._layout: Layout | None = None
        self._pages: list[list[str]] = []
        self._paginate(layout)

    def _paginate(self, layout: Layout) -> None:
        if self._layout == layout:
            return
        canvas = Canvas.new(layout, 1)
        face = font(canvas.pt(self.FONT_PT), mono=True)
        advance = face.getlength("M") or 1
        columns = max(1, int((canvas.image.width - 2 * canvas.px(self.MARGIN_MM)) // advance))
        page_h_mm = layout.height / layout.yres * 25.4
        rows = max(1, int((page_h_mm - 2 * self.MARGIN_MM) / 25.4 * 72 // self.LEADING_PT))
        pages: list[list[str]] = []
        for block in self._text.split("\f"):
            lines: list[str] = []
            for line in block.splitlines():
                line = line.expandtabs(self.TAB).rstrip()
                lines += [line[i : i + columns] for i in range(0, len(line), columns)] or [""]
            pages += [lines[i : i + rows] for i in range(0, len(lines), rows)] or [[]]
        if len(pages) > 1 and not any(pages[-1]):
            pages.pop()  # a trailing form feed does not make an empty page
        self._pages = pages
        self._layout = layout
        self.pages = len(pages)

    def render(
        self, index: int, layout: Layout, mode: str = "text", threshold: int = DEFAULT_THRESHOLD
    ) -> Page:
        self._paginate(layout)
        self._check_index(index)
        canvas = Canvas.new(layout)
        face = font(canvas.pt(self.FONT_PT), mono=True)
        draw = canvas.draw()
        left = top = canvas.px(self.MARGIN_MM)
        step = canvas.pt(self.LEADING_PT)
        for n, line in enumerate(self._pages[index]):
            if line:
                draw.text((left, top + n * step), line, fill=0, font=face)
        grey, rows = canvas.grey_rows(layout.height)
        return binarize(grey, layout, 0, 0, layout.width, rows, "text", threshold)[0]


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return controls * 50 <= len(head)


def open_source(
    path: str | os.PathLike[str],
    layout: Layout | None = None,
    *,
    password: str | None = None,
    decode: bool = True,
) -> Source:
    """Open a document for rendering; the kind is sniffed from its first bytes.

    ``layout`` is the page plain text is laid out on to count its pages (A4 fine when
    not given; rendering on another layout lays the text out again). ``decode`` False
    reads only an image's header (enough to count its pages): damaged pixel data then
    raises when a page is rendered instead of here.

    Raises :class:`fastfax.errors.ConvertError` naming the file when it is missing,
    empty, corrupt, encrypted without its ``password``, or of no kind read here.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF)
    except OSError as exc:
        raise ConvertError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    if not head:
        raise ConvertError("the file is empty", path=path)
    if b"%PDF-" in head[:1024]:
        return PdfSource(path, password)
    from PIL import Image

    try:
        Image.open(path).close()
    except Exception:
        pass
    else:
        return ImageSource(path, decode=decode)
    if _looks_like_text(head):
        if os.path.getsize(path) > MAX_TEXT_BYTES:
            raise ConvertError(f"a text file over {MAX_TEXT_BYTES} bytes is too long", path=path)
        with open(path, "rb") as fh:
            raw = fh.read()
        if _looks_like_text(raw):
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            return TextSource(path, text, layout or layout_for("a4", "fine"))
    raise ConvertError(
        "unknown file type: expected a PDF, an image (PNG, JPEG, GIF, BMP, WebP, TIFF, PBM) "
        "or plain text",
        path=path,
    )
