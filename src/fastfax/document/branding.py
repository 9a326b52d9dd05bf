"""The header line printed across the top of every sent page (Windows fax "branding",
HylaFAX "TagLine"): sender identity, date and time, page n of m.

A header template is a :meth:`str.format` string with the fields ``date``
(YYYY-MM-DD), ``time`` (HH:MM), ``sender``, ``fax`` (the sender's number),
``recipient``, ``page`` and ``pages``. Text after a tab is aligned to the right margin.
"""

from __future__ import annotations

import datetime as _dt

from ..errors import ConvertError
from ..page import Page
from .layout import Layout
from .render import Canvas, font

__all__ = ["DEFAULT_HEADER", "HEADER_MM", "header_text", "apply_header"]

#: The header used when only a sender identity is given.
DEFAULT_HEADER = "{date} {time}   {sender}  {fax}\tPage {page} of {pages}"
#: Height of the header band at the top of the page, in millimetres.
HEADER_MM = 4.5
_FONT_PT = 8.5
_MARGIN_MM = 6.0


def header_text(
    template: str,
    *,
    page: int,
    pages: int,
    when: _dt.datetime,
    sender: str = "",
    fax: str = "",
    recipient: str = "",
) -> str:
    """The header for page ``page`` (1-based) of ``pages``, sent at ``when``."""
    try:
        text = template.format(
            date=when.strftime("%Y-%m-%d"),
            time=when.strftime("%H:%M"),
            sender=sender,
            fax=fax,
            recipient=recipient,
            page=page,
            pages=pages,
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise ConvertError(
            f"bad header template {template!r}: {exc!r}; fields are date, time, sender, "
            "fax, recipient, page, pages"
        ) from None
    return text.replace("\n", " ")


def apply_header(page: Page, text: str) -> Page:
    """``page`` with its top :data:`HEADER_MM` cleared and ``text`` printed there."""
    layout = Layout(page.width, page.height, round(page.xres), round(page.yres))
    rows = min(page.height, round(HEADER_MM / 25.4 * page.yres))
    if rows == 0:
        return page
    band = Layout(page.width, rows, layout.xres, layout.yres)
    canvas = Canvas.new(band)
    face = font(canvas.pt(_FONT_PT))
    draw = canvas.draw()
    left, _, right = text.partition("\t")
    margin = canvas.px(_MARGIN_MM)
    middle = canvas.image.height // 2
    draw.text((margin, middle), left.strip(), fill=0, font=face, anchor="lm")
    if right.strip():
        draw.text(
            (canvas.image.width - margin, middle), right.strip(), fill=0, font=face, anchor="rm"
        )
    strip = canvas.to_page()
    return Page(
        strip.data + page.data[rows * page.stride :],
        page.width,
        page.height,
        page.xres,
        page.yres,
    )
