"""The spool directory's files: faxes to send (``out/``), faxes received (``in/``),
uploads (``tmp/``); the database names them relative to the spool."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

from ..page import Page
from .documents import write_pages

__all__ = ["Spool"]


class Spool:
    """The files under ``root`` (an absolute path)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, relative: str) -> str:
        """The absolute path of a file the database names."""
        return os.path.join(self.root, relative)

    def write(self, folder: str, pages: Sequence[Page]) -> str:
        """Store ``pages`` as a new TIFF-F file in ``folder`` (``"in"`` or ``"out"``);
        its path relative to the spool."""
        path = write_pages(os.path.join(self.root, folder), list(pages))
        return os.path.relpath(path, self.root)

    def remove(self, relative: str) -> None:
        """Delete a file the database named (gone already is fine)."""
        if relative:
            try:
                os.unlink(os.path.join(self.root, relative))
            except FileNotFoundError:
                pass

    def archive(self, relative: str, folder: str, name: str) -> None:
        """Copy a spool file to ``folder``/``name``."""
        os.makedirs(folder, exist_ok=True)
        shutil.copyfile(os.path.join(self.root, relative), os.path.join(folder, name))
