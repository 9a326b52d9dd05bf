"""PDF output: one fax page per PDF page, each an image holding the page's T.6 (G4)
data as is, decoded by the viewer's CCITTFaxDecode filter (``/K -1``), no re-coding.

The PDF page has the fax page's physical size: ``width / xres`` by ``height / yres``
inches, so a fine-mode A4 fax prints at A4 size. Pages that already are G4 coded can be
passed with their data (:class:`fastfax.codec.CodedPage`) to skip encoding.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..codec import CodedPage
from ..errors import ConvertError
from ..page import Page

__all__ = ["CodedPage", "dumps"]


def _num(value: float) -> bytes:
    return (b"%.4f" % value).rstrip(b"0").rstrip(b".")


def dumps(pages: Iterable[Page | CodedPage], *, title: str = "") -> bytes:
    """The PDF file of ``pages`` as bytes."""
    coded = [p if isinstance(p, CodedPage) else CodedPage.of(p) for p in pages]
    if not coded:
        raise ConvertError("no pages to write: a PDF needs at least one page")
    # Objects: 1 catalog, 2 page tree, 3 info, then per page: page, content, image.
    objects: list[bytes] = []
    kids = b" ".join(b"%d 0 R" % (4 + 3 * i) for i in range(len(coded)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(coded)))
    info_title = title.encode("latin-1", "replace").replace(b"\\", b"\\\\")
    info_title = info_title.replace(b"(", b"\\(").replace(b")", b"\\)")
    objects.append(b"<< /Producer (fastfax) /Title (%s) >>" % info_title)
    for i, page in enumerate(coded):
        first = 4 + 3 * i
        w_pt = page.width / page.xres * 72
        h_pt = page.height / page.yres * 72
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Contents %d 0 R "
            b"/Resources << /XObject << /Im0 %d 0 R >> >> >>"
            % (_num(w_pt), _num(h_pt), first + 1, first + 2)
        )
        content = b"q %s 0 0 %s 0 0 cm /Im0 Do Q" % (_num(w_pt), _num(h_pt))
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        objects.append(
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
            b"/BitsPerComponent 1 /Filter /CCITTFaxDecode /DecodeParms << /K -1 /Columns %d "
            b"/Rows %d /EndOfBlock true >> /Length %d >>\nstream\n"
            % (page.width, page.height, page.width, page.height, len(page.g4))
            + page.g4
            + b"\nendstream"
        )
    out = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"]
    offsets = []
    pos = len(out[0])
    for number, body in enumerate(objects, 1):
        chunk = b"%d 0 obj\n%s\nendobj\n" % (number, body)
        offsets.append(pos)
        out.append(chunk)
        pos += len(chunk)
    xref = [b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)]
    xref += [b"%010d 00000 n \n" % off for off in offsets]
    out += xref
    out.append(
        b"trailer\n<< /Size %d /Root 1 0 R /Info 3 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, pos)
    )
    return b"".join(out)
