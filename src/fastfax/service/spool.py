"""The spool directory's files: faxes to send (``out/``), faxes received (``in/``),
submitted documents until their jobs are prepared (``src/``); the database names them
relative to the spool."""

from __future__ import annotations

import os
import secrets
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

    def copy(self, relative: str, folder: str) -> str:
        """A copy of a spool file under a fresh name in ``folder`` (a hard link where the
        file system has them: spool files are never changed, only replaced or removed);
        its relative path."""
        os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        target = os.path.join(folder, f"{secrets.token_hex(8)}{os.path.splitext(relative)[1]}")
        source, copy = os.path.join(self.root, relative), os.path.join(self.root, target)
        try:
            os.link(source, copy)
        except OSError:
            shutil.copyfile(source, copy)
        return target

    def keep(self, document: bytes | str, ext: str) -> str:
        """Keep a submitted document (its bytes, or the path of a file to copy) in
        ``src/`` until its jobs are prepared; its relative path."""
        folder = os.path.join(self.root, "src")
        os.makedirs(folder, exist_ok=True)
        relative = os.path.join("src", f"{secrets.token_hex(8)}{ext}")
        if isinstance(document, str):
            shutil.copyfile(document, os.path.join(self.root, relative))
        else:
            with open(os.path.join(self.root, relative), "xb") as fh:
                fh.write(document)
        return relative

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
