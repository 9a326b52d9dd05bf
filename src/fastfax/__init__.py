"""fastfax: fax in Python with native hot paths.

The public names live in their modules (:mod:`fastfax.codec`, :mod:`fastfax.tiff`, ...);
the most used ones are re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import CodecError, ConvertError, FaxError, LimitError, PageError, TiffError

if TYPE_CHECKING:
    from .client import connect
    from .page import Page

__all__ = [
    "Page",
    "connect",
    "FaxError",
    "CodecError",
    "ConvertError",
    "LimitError",
    "PageError",
    "TiffError",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Loaded when first asked for, so that `import fastfax` (and the command's start) stays
    # quick: fastfax.connect pulls in the fax service (SQLite, HTTP, the T.30 engine) and
    # fastfax.Page numpy.
    if name == "connect":
        from .client import connect

        return connect
    if name == "Page":
        from .page import Page

        return Page
    raise AttributeError(f"module 'fastfax' has no attribute {name!r}")
