"""Cover pages: the fields of a fax cover sheet rendered from a template to a fax page.

A template is JSON: ``{"items": [...]}``, each item one of

``{"text": T, "at": [x, y], "size": pt, "bold": b, "align": "left" | "right"}``
    text whose top-left (top-right for ``"right"``) corner is at ``(x, y)`` mm from the
    page's top-left corner; lines are split on ``\\n`` and lines left empty by empty
    fields are dropped.
``{"text": T, "box": [x0, y0, x1, y1], "size": pt, "bold": b}``
    text word-wrapped inside a box (mm), cut with an ellipsis if it does not fit.
``{"rule": [x0, y0, x1, y1], "weight": pt}``
    a straight line.

``T`` is a :meth:`str.format` template over the fields of :class:`CoverInfo` (those of
the Windows fax service's FAX_COVERPAGE_INFO). The default template ships in
``fastfax/data/cover.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from PIL import ImageDraw, ImageFont

from ..errors import ConvertError
from ..page import Page
from .layout import Layout
from .render import Canvas, font

__all__ = ["CoverInfo", "load_template", "render_cover", "DEFAULT_TEMPLATE"]

#: Name of the template shipped with the package (in ``fastfax/data``).
DEFAULT_TEMPLATE = "cover.json"


@dataclass
class CoverInfo:
    """What a cover page says: the fields of FAX_COVERPAGE_INFO (``sender_phone`` is
    kept as the sender's phone of older templates). ``pages`` is the page count of the
    whole fax, the cover included; ``time_sent`` defaults to now."""

    recipient_name: str = ""
    recipient_fax: str = ""
    recipient_company: str = ""
    recipient_address: str = ""
    recipient_city: str = ""
    recipient_state: str = ""
    recipient_zip: str = ""
    recipient_country: str = ""
    recipient_title: str = ""
    recipient_department: str = ""
    recipient_office_location: str = ""
    recipient_home_phone: str = ""
    recipient_office_phone: str = ""
    sender_name: str = ""
    sender_fax: str = ""
    sender_company: str = ""
    sender_address: str = ""
    sender_phone: str = ""
    sender_title: str = ""
    sender_department: str = ""
    sender_office_location: str = ""
    sender_home_phone: str = ""
    sender_office_phone: str = ""
    subject: str = ""
    note: str = ""
    pages: int = 0
    time_sent: _dt.datetime = field(default_factory=_dt.datetime.now)

    def fields(self) -> dict[str, str]:
        """The fields as the strings a template sees."""
        values = {k: str(v) for k, v in asdict(self).items()}
        values["time_sent"] = self.time_sent.strftime("%Y-%m-%d %H:%M")
        values["pages"] = str(self.pages) if self.pages else ""
        return values


def load_template(source: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A cover template: the shipped default when ``source`` is None, else a JSON file."""
    try:
        if source is None:
            text = resources.files("fastfax").joinpath("data", DEFAULT_TEMPLATE).read_text("utf-8")
        else:
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        template = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConvertError(f"cannot read the cover template: {exc}", path=_name(source)) from None
    if not isinstance(template, dict) or not isinstance(template.get("items"), list):
        raise ConvertError(
            "a cover template is a JSON object with an 'items' list", path=_name(source)
        )
    return template


def _name(source: str | os.PathLike[str] | None) -> str:
    return DEFAULT_TEMPLATE if source is None else os.fspath(source)


def render_cover(info: CoverInfo, layout: Layout, template: dict[str, Any] | None = None) -> Page:
    """The cover page for ``info`` on ``layout`` (the default template if none given)."""
    template = load_template() if template is None else template
    values = info.fields()
    canvas = Canvas.new(layout)
    draw = canvas.draw()
    for number, item in enumerate(template.get("items", [])):
        try:
            _draw_item(canvas, draw, item, values)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ConvertError(
                f"cover template item {number}: {exc!r} in {json.dumps(item)[:120]}"
            ) from None
    return canvas.to_page()


def _draw_item(canvas: Canvas, draw: ImageDraw.ImageDraw, item: dict, values: dict) -> None:
    if "rule" in item:
        x0, y0, x1, y1 = (canvas.px(float(v)) for v in item["rule"])
        draw.line((x0, y0, x1, y1), fill=0, width=canvas.pt(float(item.get("weight", 0.5))))
        return
    face = font(canvas.pt(float(item.get("size", 12))), bold=bool(item.get("bold")))
    raw_lines = str(item["text"]).split("\n")
    lines = [line.format(**values) for line in raw_lines]
    lines = [t for t, raw in zip(lines, raw_lines, strict=True) if t.strip() or "{" not in raw]
    if "box" in item:
        x0, y0, x1, y1 = (canvas.px(float(v)) for v in item["box"])
        _draw_wrapped(draw, face, "\n".join(lines), (x0, y0, x1, y1))
        return
    x, y = (canvas.px(float(v)) for v in item["at"])
    anchor = "ra" if item.get("align") == "right" else "la"
    step = round(face.size * 1.25)
    for n, line in enumerate(lines):
        draw.text((x, y + n * step), line, fill=0, font=face, anchor=anchor)


def _draw_wrapped(
    draw: ImageDraw.ImageDraw, face: ImageFont.FreeTypeFont, text: str, box: tuple
) -> None:
    x0, y0, x1, y1 = box
    step = round(face.size * 1.25)
    capacity = max(0, (y1 - y0) // step)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            while face.getlength(word) > x1 - x0 and len(word) > 1:  # split an overlong word
                cut = len(word) - 1
                while cut > 1 and face.getlength(word[:cut]) > x1 - x0:
                    cut -= 1
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cut])
                word = word[cut:]
            trial = f"{line} {word}" if line else word
            if face.getlength(trial) <= x1 - x0:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    if len(lines) > capacity:
        lines = lines[:capacity]
        if lines:
            lines[-1] = lines[-1].rstrip() + " …"
    for n, line in enumerate(lines):
        draw.text((x0, y0 + n * step), line, fill=0, font=face)
