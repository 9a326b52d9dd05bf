"""The exceptions fastfax raises: every error a user can cause is a :class:`FaxError`."""

from __future__ import annotations


class FaxError(Exception):
    """Base of every error fastfax raises for bad input, bad state or a failed peer."""


class PageError(FaxError, ValueError):
    """A page's geometry or pixel data is invalid (bad width, height, resolution, shape)."""


class CodecError(FaxError, ValueError):
    """Coded T.4 / T.6 data could not be encoded or decoded.

    ``row`` is the 0-based row at which decoding failed (``None`` when the error is not
    tied to a row) and ``offset`` the bit offset into the data where it was noticed.
    """

    def __init__(self, message: str, *, row: int | None = None, offset: int | None = None):
        super().__init__(message)
        self.row = row
        self.offset = offset


class LimitError(CodecError):
    """Decoding would exceed a configured limit (rows, width): a guard against bombs."""


class TiffError(FaxError, ValueError):
    """A TIFF file is malformed, or uses a structure or tag value fastfax does not support."""


class ConvertError(FaxError, ValueError):
    """A document could not be converted to or from fax pages.

    ``path`` is the file concerned (or ``None``) and ``page`` the 1-based page number in
    it (or ``None`` when the error is not tied to a page); both are part of the message.
    """

    def __init__(self, message: str, *, path: str | None = None, page: int | None = None):
        where = ", ".join(part for part in (path, None if page is None else f"page {page}") if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.page = page
        self.reason = message


class LayoutError(ConvertError):
    """An unknown resolution or paper size, or a width that is not a fax width."""


class ConfigError(FaxError, ValueError):
    """A configuration value, port setting or routing setting is invalid; nothing applied."""


class T38Error(FaxError, ValueError):
    """A T.38 IFP packet, UDPTL datagram or T.38 SDP description is malformed or unsupported."""
