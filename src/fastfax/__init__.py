"""fastfax: fax in Python with native hot paths.

The public names live in their modules (:mod:`fastfax.codec`, :mod:`fastfax.tiff`, ...);
the most used ones are re-exported here.
"""

from .errors import CodecError, ConvertError, FaxError, LimitError, PageError, TiffError
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
    # fastfax.connect pulls in the fax service (SQLite, HTTP, the T.30 engine): load it
    # only when asked for, so that importing fastfax for the codec stays quick.
    if name == "connect":
        from .client import connect

        return connect
    raise AttributeError(f"module 'fastfax' has no attribute {name!r}")
