"""Turning what a user submits into the fax pages of a job (FaxCompleteJobParams and
FaxPrintCoverPage): server defaults filled in, cover page and header line rendered,
pages kept in the spool as TIFF-F (MMR).
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

from .. import tiff
from ..document.branding import DEFAULT_HEADER
from ..document.convert import Options, render_document
from ..document.cover import CoverInfo
from ..document.layout import FAX_WIDTHS
from ..page import Page
from .config import Configuration
from .errors import BadNumber, ConfigError, RequestError

__all__ = ["JobParams", "check_number", "complete_params", "render", "write_pages"]

_DIAL = re.compile(r"^\+?[0-9*#,]{1,40}$")
_COVER_FIELDS = {f.name for f in dataclasses.fields(CoverInfo)} - {"pages", "time_sent"}
_RENDER_FIELDS = ("page_size", "resolution", "mode")
_FAX_WIDTHS = {w for widths in FAX_WIDTHS.values() for w in widths}


def check_number(number: Any) -> str:
    """A dial string: digits, ``*``, ``#``, ``,`` (pause), an optional leading ``+``;
    spaces, dots, dashes and brackets are dropped. Raises :class:`BadNumber`."""
    if not isinstance(number, str):
        raise BadNumber(f"a fax number must be a string, got {type(number).__name__}")
    cleaned = re.sub(r"[\s.()\-/]", "", number)
    if not _DIAL.match(cleaned):
        raise BadNumber(
            f"{number!r} is not a fax number: use digits, optionally + first, and * # ,"
        )
    return cleaned


@dataclass
class JobParams:
    """A send request with every default filled (FAX_JOB_PARAM + FAX_COVERPAGE_INFO)."""

    number: str
    recipient_name: str = ""
    sender_name: str = ""
    sender_fax: str = ""
    sender_company: str = ""
    cover: dict[str, str] | None = None
    render: dict[str, str] | None = None


def complete_params(
    config: Configuration,
    to: Any,
    *,
    cover: Any = None,
    recipient_name: str = "",
    sender_name: str = "",
    sender_fax: str = "",
    sender_company: str = "",
    render: dict[str, str] | None = None,
) -> JobParams:
    """Check a request and fill what it leaves empty from the server's configuration."""
    number = check_number(to)
    if cover is True:
        cover = {}
    if cover is not None:
        if isinstance(cover, CoverInfo):
            cover = {k: v for k, v in dataclasses.asdict(cover).items() if k in _COVER_FIELDS}
        if not isinstance(cover, dict) or set(cover) - _COVER_FIELDS:
            raise RequestError(
                f"cover must be True, a CoverInfo or a dict of {sorted(_COVER_FIELDS)}"
            )
    render = dict(render or {})
    if set(render) - set(_RENDER_FIELDS):
        raise RequestError(f"render options are {_RENDER_FIELDS}, got {sorted(render)}")
    return JobParams(
        number=number,
        recipient_name=str(recipient_name),
        sender_name=str(sender_name or config.sender_name),
        sender_fax=str(sender_fax or config.sender_fax),
        sender_company=str(sender_company or config.sender_company),
        cover=None if cover is None else {k: str(v) for k, v in cover.items()},
        render=render,
    )


def render(path: str, params: JobParams, config: Configuration) -> list[Page]:
    """The fax pages of the document at ``path`` for ``params``: the cover first when
    asked, the header line on every page when branding is on."""
    cover = None
    if params.cover is not None:
        fields = {
            "recipient_name": params.recipient_name,
            "recipient_fax": params.number,
            "sender_name": params.sender_name,
            "sender_fax": params.sender_fax,
            "sender_company": params.sender_company,
            **{k: v for k, v in params.cover.items() if v},
        }
        cover = CoverInfo(**fields)
    try:
        options = Options(
            header=DEFAULT_HEADER if config.branding else None,
            sender=params.sender_name or params.sender_company,
            sender_fax=params.sender_fax,
            recipient=params.recipient_name,
            cover=cover,
            **(params.render or {}),
        )
    except TypeError as exc:
        raise ConfigError(f"bad render options: {exc}") from None
    if cover is None and options.header is None and not params.render:
        pages = render_document(path, options, as_is=True)  # a fax TIFF goes out unchanged
        if all(p.width in _FAX_WIDTHS for p in pages):
            return pages
    return render_document(path, options)


def write_pages(folder: str, pages: list[Page]) -> str:
    """Write ``pages`` as a TIFF-F (MMR) file under a fresh name in ``folder``; its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{secrets.token_hex(8)}.tif")
    tiff.write(path, pages, "g4")
    return path
