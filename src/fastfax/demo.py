"""The ``fastfax demo`` walk-through, and :func:`make_pdf`, which writes a real text PDF
(PDF base-14 fonts, vector text, drawn with PDFium) to have something to convert.

The demo makes a short multi-page letter as PDF, converts it to TIFF Class F (G4, fine,
with a cover page and a header line), reads the TIFF back, and turns it into a PDF and
PNG pages for viewing. Then it faxes the PDF through the embedded fax service
(``fastfax.connect()`` on a spool in the demo folder) over a loopback pair of lines
running the real T.30 engine; the answering line stores what it receives in a folder.
It reports each file it wrote.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from . import tiff
from .document.branding import DEFAULT_HEADER
from .document.convert import Options, convert
from .document.cover import CoverInfo
from .errors import ConvertError

__all__ = ["Line", "make_pdf", "demo_pages", "run_demo"]

A4_PT = (595.28, 841.89)


@dataclass(frozen=True)
class Line:
    """One line of a generated PDF page: ``text`` in a base-14 ``font`` of ``size``
    points, at ``x`` points from the left edge; ``gap`` is the distance from the line
    above's baseline in points (default 1.3 x size)."""

    text: str
    size: float = 11.0
    font: str = "Helvetica"
    x: float = 72.0
    gap: float | None = None


def make_pdf(
    path: str | os.PathLike[str],
    pages: Sequence[Sequence[Line]],
    *,
    size: tuple[float, float] = A4_PT,
    bars: Sequence[float] = (),
) -> None:
    """Write a PDF of ``pages``, each a list of :class:`Line` set from the top margin
    (72 pt) down, on paper ``size`` (width, height) in points. ``bars`` (0..1) draw a
    bar chart in grey at the foot of the last page."""
    import pypdfium2 as pdfium

    raw = pdfium.raw
    pdf = pdfium.PdfDocument.new()
    keep = []
    for lines in pages:
        page = pdf.new_page(*size)
        y = size[1] - 72
        for line in lines:
            y -= line.gap if line.gap is not None else line.size * 1.3
            obj = raw.FPDFPageObj_NewTextObj(pdf.raw, line.font.encode(), line.size)
            text = (line.text + "\0").encode("utf-16-le")
            buf = ctypes.create_string_buffer(text, len(text))
            keep.append(buf)
            raw.FPDFText_SetText(obj, ctypes.cast(buf, ctypes.POINTER(ctypes.c_ushort)))
            raw.FPDFPageObj_Transform(obj, 1, 0, 0, 1, line.x, y)
            raw.FPDFPage_InsertObject(page.raw, obj)
        if bars and lines is pages[-1]:
            width = (size[0] - 144) / len(bars)
            for n, value in enumerate(bars):
                rect = raw.FPDFPageObj_CreateNewRect(
                    72 + n * width + 4, 90, width - 8, 150 * max(0.0, min(1.0, value))
                )
                grey = 40 + (n * 50) % 180
                raw.FPDFPageObj_SetFillColor(rect, grey, grey, grey, 255)
                raw.FPDFPath_SetDrawMode(rect, raw.FPDF_FILLMODE_ALTERNATE, False)
                raw.FPDFPage_InsertObject(page.raw, rect)
        raw.FPDFPage_GenerateContent(page.raw)
        page.close()
    pdf.save(os.fspath(path))
    pdf.close()


_LETTER = (
    "Thank you for your order of the twelfth. We are glad to confirm that the parts will "
    "leave our warehouse on Monday morning and should reach your office by the end of the "
    "week. The invoice is attached on the following pages together with the delivery "
    "note and the updated price list for the coming quarter. Please check the quantities "
    "against your purchase order and let us know at once if anything is missing or "
    "damaged. Our service desk answers the telephone from eight in the morning until six "
    "in the evening, and faxes sent at any hour are read first thing the next day."
)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def demo_pages() -> list[list[Line]]:
    """A four-page business letter with a table and a bar chart."""
    letter = [Line("ACME Components Ltd", 20, "Helvetica-Bold")]
    letter += [Line("12 Harbour Road, Southampton SO14 2AQ", 10), Line("", 10)]
    letter += [Line("Order 4711: delivery and invoice", 14, "Helvetica-Bold", gap=36)]
    letter += [Line("Dear Ms Jane Doe,", 11, "Times-Roman", gap=28)]
    letter += [Line(t, 11, "Times-Roman", gap=15) for t in _wrap(_LETTER, 88)]
    letter += [Line("Yours sincerely,", 11, "Times-Roman", gap=28), Line("John Smith", 11)]
    invoice = [Line("Invoice 2024-0815", 16, "Helvetica-Bold")]
    invoice += [Line(f"{'Item':<28}{'Qty':>6}{'Price':>12}{'Total':>12}", 10, "Courier", gap=30)]
    total = 0.0
    for n in range(1, 31):
        qty, price = (n * 7) % 13 + 1, 2.5 + (n * 37 % 100) / 4
        total += qty * price
        invoice.append(
            Line(
                f"{'Bearing type ' + str(100 + n):<28}{qty:>6}{price:>12.2f}{qty * price:>12.2f}",
                10,
                "Courier",
                gap=14,
            )
        )
    invoice.append(Line(f"{'Total':<46}{total:>12.2f}", 10, "Courier-Bold", gap=20))
    notes = [Line("Delivery note", 16, "Helvetica-Bold")]
    notes += [Line(t, 11, "Helvetica", gap=15) for t in _wrap(_LETTER * 3, 84)]
    chart = [Line("Deliveries per month", 16, "Helvetica-Bold")]
    chart += [Line("January to June, in pallets.", 11, "Helvetica", gap=20)]
    return [letter, invoice, notes, chart]


def run_demo(folder: str | os.PathLike[str], *, jobs: int | None = None) -> list[str]:
    """Run the demo in ``folder`` (created if missing); return the report lines."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    report: list[str] = []
    pdf = os.path.join(folder, "letter.pdf")
    make_pdf(pdf, demo_pages(), bars=(0.4, 0.55, 0.5, 0.8, 0.7, 0.95))
    report.append(_line(pdf, "4 pages (generated PDF, vector text)"))
    options = Options(
        resolution="fine",
        header=DEFAULT_HEADER,
        sender="ACME Components",
        sender_fax="+44 23 8000 0000",
        cover=CoverInfo(
            recipient_name="Jane Doe",
            recipient_company="Example Trading GmbH",
            recipient_fax="+49 30 1234567",
            sender_name="John Smith",
            sender_company="ACME Components Ltd",
            sender_fax="+44 23 8000 0000",
            subject="Order 4711: delivery and invoice",
            note="Please find our letter, the invoice and the delivery note attached.",
        ),
        when=_dt.datetime.now().replace(second=0, microsecond=0),
    )
    fax = os.path.join(folder, "letter.tif")
    start = time.perf_counter()
    (result,) = convert([(pdf, fax)], options, processes=jobs)
    seconds = time.perf_counter() - start
    if result.error:
        raise result.error
    pages = tiff.read(fax)
    if len(pages) != result.pages:
        raise ConvertError(f"read back {len(pages)} pages, wrote {result.pages}", path=fax)
    first = pages[0]
    report.append(
        _line(
            fax,
            f"{len(pages)} pages {first.width}x{first.height} at "
            f"{first.xres:g}x{first.yres:g} dpi, G4, cover + header; "
            f"{len(pages) / seconds:.0f} pages/s",
        )
    )
    view = os.path.join(folder, "letter-view.pdf")
    png = os.path.join(folder, "letter.png")
    results = convert([(fax, view), (fax, png)], processes=1)
    for res in results:
        if res.error:
            raise res.error
    report.append(_line(view, f"{results[0].pages} pages, G4 images, from the TIFF"))
    for path in results[1].outputs:
        report.append(_line(path, "one page, from the TIFF"))
    report += _fax_through_the_service(folder, pdf)
    return report


_DEMO_SPOOL_TOML = """\
# The demo's fax service: two virtual lines joined in memory; 200 stores what it receives.
[[devices]]
kind = "loopback-pair"
name = "demo"
numbers = ["100", "200"]
store = {inbox!r}
"""


def _fax_through_the_service(folder: str, pdf: str, timeout: float = 120.0) -> list[str]:
    """Send ``pdf`` to line 200 through the embedded service and wait until the fax it
    receives is stored; return the report lines."""
    from .client import connect

    spool = os.path.join(folder, "spool")
    inbox = os.path.abspath(os.path.join(folder, "received"))
    os.makedirs(spool, exist_ok=True)
    with open(os.path.join(spool, "fastfax.toml"), "w") as fh:
        fh.write(_DEMO_SPOOL_TOML.format(inbox=inbox))
    start = time.perf_counter()
    with connect(spool=spool) as server:
        known = {job.id for job in server.jobs()}
        job = server.send(
            pdf,
            to="200",
            cover={"subject": "Order 4711: delivery and invoice"},
            recipient_name="Jane Doe",
            sender_name="John Smith",
        )
        sent = job.wait(timeout)
        if sent.state.value != "completed":
            raise ConvertError(f"the demo fax was not sent: {sent.cause}", path=pdf)
        deadline = time.monotonic() + timeout
        while True:
            received = [j for j in server.jobs() if j.type.value == "receive" and j.id not in known]
            if received and received[0].state.final:
                break
            if time.monotonic() > deadline:
                raise ConvertError("the demo fax was sent but not stored in time", path=pdf)
            time.sleep(0.05)
    seconds = time.perf_counter() - start
    stored = received[0].routing.get("store")
    if not stored:
        raise ConvertError(f"the received fax was not stored: {received[0].cause}", path=pdf)
    return [
        f"faxed {sent.pages} pages to line 200 through the embedded service "
        f"(spool {spool}) in {seconds:.1f} s, at {sent.rate} bit/s",
        _line(stored, f"{len(tiff.read(stored))} pages, received on line 200 and stored"),
    ]


def _line(path: str, what: str) -> str:
    return f"{path:<40} {os.path.getsize(path):>9,} bytes  {what}"
