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
