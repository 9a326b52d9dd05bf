"""Fax page geometry: resolutions, paper sizes, scan-line widths, and fitting a source page.

Units: resolutions in dots per inch (x = along a row, y = between rows), paper sizes in
millimetres, page sizes in pixels. Fax resolutions are nominal dpi as TIFF Class F stores
them: "fine" is 204 x 196 although T.4 defines 8 pels/mm x 7.7 lines/mm.

The scan-line width comes from the paper size and the horizontal resolution as T.4 and
T.30 define it: 1728 / 2048 / 2432 pixels for A4 / B4 / A3 at 8 pels/mm (204 dpi), twice
that at 16 pels/mm (408 dpi), and 2592 / 3072 / 3648 at 300 dpi, 3456 / 4096 / 4864 at
400 dpi. Letter and Legal use the A4 width, as fax machines do. The page height is the
paper length at the vertical resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LayoutError

__all__ = [
    "RESOLUTIONS",
    "PAPER_SIZES",
    "FAX_WIDTHS",
    "Layout",
    "Placement",
    "layout_for",
]


#: Resolution names and their (x, y) dots per inch.
RESOLUTIONS: dict[str, tuple[int, int]] = {
    "standard": (204, 98),
    "fine": (204, 196),
    "superfine": (204, 391),
    "ultrafine": (408, 391),
    "300": (300, 300),
    "400": (400, 400),
}

#: Paper sizes: (width, height) in millimetres, portrait.
PAPER_SIZES: dict[str, tuple[float, float]] = {
    "a4": (210.0, 297.0),
    "letter": (215.9, 279.4),
    "legal": (215.9, 355.6),
    "b4": (250.0, 353.0),
    "a3": (297.0, 420.0),
}

# The fax width class each paper size scans at (T.30: A4, B4 or A3 width).
_WIDTH_CLASS = {"a4": 0, "letter": 0, "legal": 0, "b4": 1, "a3": 2}

#: Scan-line widths in pixels for the A4, B4 and A3 classes, by horizontal dpi.
FAX_WIDTHS: dict[int, tuple[int, int, int]] = {
    204: (1728, 2048, 2432),
    408: (3456, 4096, 4864),
    300: (2592, 3072, 3648),
    400: (3456, 4096, 4864),
}


@dataclass(frozen=True)
class Placement:
    """Where a source page goes on a fax page: a ``width`` x ``height`` pixel rectangle
    at ``(x, y)`` (top-left, pixels), the source turned by ``rotate`` degrees clockwise
    (0 or 90) first."""

    x: int
    y: int
    width: int
    height: int
    rotate: int


@dataclass(frozen=True)
class Layout:
    """A fax page: ``width`` x ``height`` pixels at ``xres`` x ``yres`` dpi."""

    width: int
    height: int
    xres: int
    yres: int

    def fit(self, src_width_in: float, src_height_in: float, *, rotate: bool = True) -> Placement:
        """Place a source page ``src_width_in`` x ``src_height_in`` inches: turned a
        quarter if it is landscape (and ``rotate``), scaled to fit inside the page
        keeping its aspect ratio, centred."""
        if not (src_width_in > 0 and src_height_in > 0):
            raise LayoutError(
                f"source page size must be positive, got {src_width_in} x {src_height_in} in"
            )
        turn = 90 if rotate and src_width_in > src_height_in else 0
        if turn:
            src_width_in, src_height_in = src_height_in, src_width_in
        page_w_in = self.width / self.xres
        page_h_in = self.height / self.yres
        scale = min(page_w_in / src_width_in, page_h_in / src_height_in)
        width = max(1, min(self.width, round(src_width_in * scale * self.xres)))
        height = max(1, min(self.height, round(src_height_in * scale * self.yres)))
        return Placement(
            (self.width - width) // 2, (self.height - height) // 2, width, height, turn
        )

    def fit_pixels(
        self, src_width: int, src_height: int, xdpi: float, ydpi: float, *, rotate: bool = True
    ) -> Placement:
        """:meth:`fit` for a raster source of ``src_width`` x ``src_height`` pixels at
        ``xdpi`` x ``ydpi``."""
        return self.fit(src_width / xdpi, src_height / ydpi, rotate=rotate)


def _resolution(resolution: str | int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(resolution, tuple):
        if resolution in RESOLUTIONS.values():
            return resolution
    elif str(resolution).lower() in RESOLUTIONS:
        return RESOLUTIONS[str(resolution).lower()]
    raise LayoutError(f"unknown resolution {resolution!r}: use one of {', '.join(RESOLUTIONS)}")


def layout_for(
    page_size: str = "a4",
    resolution: str | int | tuple[int, int] = "fine",
    width: int | None = None,
) -> Layout:
    """The fax page for a paper size (``"a4"``, ``"letter"``, ``"legal"``, ``"b4"``,
    ``"a3"``) at a resolution (a name of :data:`RESOLUTIONS` or its (x, y) dpi).

    ``width`` overrides the scan-line width in pixels; it must be one of the fax widths
    at that horizontal resolution (see :data:`FAX_WIDTHS`).
    """
    key = str(page_size).lower()
    if key not in PAPER_SIZES:
        raise LayoutError(f"unknown page size {page_size!r}: use one of {', '.join(PAPER_SIZES)}")
    xres, yres = _resolution(resolution)
    widths = FAX_WIDTHS[xres]
    if width is None:
        width = widths[_WIDTH_CLASS[key]]
    elif width not in widths:
        raise LayoutError(
            f"width {width!r} is not a fax width at {xres} dpi: use one of "
            f"{', '.join(map(str, widths))}"
        )
    height = round(PAPER_SIZES[key][1] / 25.4 * yres)
    return Layout(width, height, xres, yres)
