"""fastfax: fax in Python with native hot paths.

The public names live in their modules (:mod:`fastfax.codec`, :mod:`fastfax.tiff`, ...);
the most used ones are re-exported here.
"""

from .errors import CodecError, FaxError, LimitError, PageError, TiffError
from .layout import ConvertError
from .page import Page

__all__ = ["Page", "FaxError", "CodecError", "ConvertError", "LimitError", "PageError", "TiffError"]
__version__ = "0.1.0"
