"""The spool directory's files: faxes to send (``out/``), faxes received (``in/``),
submitted documents until their jobs are prepared (``src/``); the database names them
relative to the spool.

On a store several nodes share, every file is kept in the store as well (its
``files`` table), and a node that needs a file another node wrote (it prepares, sends
or shows that node's job) fetches it into its own spool first: any node can work on
any job."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from collections.abc import Sequence

from .. import tiff
from ..files import sync_folder, write_files, write_synced
from ..page import Page
from .store import Store

__all__ = ["Spool", "SWEEP_AGE"]

#: The name :func:`fastfax.files.write_files` gives a file it is writing.
_TEMP = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")
#: Seconds a temporary file in a store folder must be old before a start removes it.
SWEEP_AGE = 600.0


class Spool:
    """The files under ``root`` (an absolute path); ``store``: a shared store to keep
    them in as well (None: this spool only)."""

    def __init__(self, root: str, store: Store | None = None) -> None:
        self.root = root
        self._store = store if store is not None and store.shared else None
        self._folders: set[str] = set()  # folders known to exist

    def path(self, relative: str) -> str:
        """The absolute path of a file the database names (fetched from the shared
        store first when this spool lacks it). Raises :class:`FileNotFoundError` when
        neither has it."""
        path = os.path.join(self.root, relative)
        if self._store is not None and relative and not os.path.exists(path):
            data = self._store.file_data(relative)
            if data is None:
                raise FileNotFoundError(f"no spool file {relative!r} here or in the store")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_files([(path, [data])])
        return path

    def _share(self, relative: str, data: bytes | None = None) -> None:
        if self._store is not None:
            if data is None:
                with open(os.path.join(self.root, relative), "rb") as fh:
                    data = fh.read()
            self._store.put_file(relative, data)

    def _folder(self, folder: str) -> None:
        if folder not in self._folders:
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
            self._folders.add(folder)

    def _create(self, folder: str, ext: str, data: bytes) -> str:
        """A new file of ``data`` under a fresh name in ``folder``, durable (the file,
        then its folder) before this returns; its relative path. It is written in place:
        until a job names it (after this returns) nothing reads it, and a file a kill
        cut short is named by no job."""
        self._folder(folder)
        relative = os.path.join(folder, f"{secrets.token_hex(8)}{ext}")
        write_synced(os.path.join(self.root, relative), data)
        self._shared(relative, data)
        return relative

    def _shared(self, relative: str, data: bytes | None = None) -> None:
        """Keep new file ``relative`` in the shared store; if that fails (the store
        cannot be reached) the file is removed again and the error raised: a file the
        store lacks is a file no job may name."""
        try:
            self._share(relative, data)
        except BaseException:
            os.unlink(os.path.join(self.root, relative))
            raise

    def _sync_folder(self, folder: str) -> None:
        sync_folder(os.path.join(self.root, folder))

    def write(self, folder: str, pages: Sequence[Page]) -> str:
        """Store ``pages`` as a new TIFF-F (MMR) file in ``folder`` (``"in"`` or
        ``"out"``), durably (as :meth:`keep` and :meth:`copy`); its path relative to the
        spool."""
        return self._create(folder, ".tif", tiff.dumps(list(pages), "g4"))

    def copy(self, relative: str, folder: str) -> str:
        """A copy of a spool file under a fresh name in ``folder`` (a hard link where the
        file system has them: spool files are never changed, only replaced or removed);
        its relative path."""
        self._folder(folder)
        target = os.path.join(folder, f"{secrets.token_hex(8)}{os.path.splitext(relative)[1]}")
        source, copy = self.path(relative), os.path.join(self.root, target)
        try:
            os.link(source, copy)  # (the data is durable: only the new name needs it)
        except OSError:
            with open(source, "rb") as fh:
                return self._create(folder, os.path.splitext(relative)[1], fh.read())
        self._sync_folder(folder)
        try:
            copied = self._store is None or self._store.copy_file(relative, target)
        except BaseException:
            os.unlink(copy)
            raise
        if not copied:
            self._shared(target)
        return target

    def keep(self, document: bytes | str, ext: str) -> str:
        """Keep a submitted document (its bytes, or the path of a file to copy) in
        ``src/`` until its jobs are prepared; its relative path."""
        if isinstance(document, str):
            with open(document, "rb") as fh:
                document = fh.read()
        return self._create("src", ext, document)

    def sweep(self, folders: list[str] = (), age: float = SWEEP_AGE) -> list[str]:
        """Remove the temporary files a write killed midway left (hidden
        ``.<name>.<hex>.tmp`` files, see :mod:`fastfax.files`): every one in the spool
        (this node's alone), and those older than ``age`` seconds in ``folders`` (store
        folders another process may be writing to now). Returns what was removed."""
        gone = []
        places = [(self.root, 0.0)] + [(f, age) for f in folders]
        now = time.time()
        for top, min_age in places:
            for folder, _, names in os.walk(top):
                for name in names:
                    path = os.path.join(folder, name)
                    if not _TEMP.match(name):
                        continue
                    try:
                        if now - os.path.getmtime(path) >= min_age:
                            os.unlink(path)
                            gone.append(path)
                    except FileNotFoundError:
                        pass
        return gone

    def remove(self, relative: str) -> None:
        """Delete a file the database named (gone already is fine)."""
        if relative:
            try:
                os.unlink(os.path.join(self.root, relative))
            except FileNotFoundError:
                pass
            if self._store is not None:
                self._store.delete_file(relative)

    def archive(self, relative: str, folder: str, name: str) -> None:
        """Copy a spool file to ``folder``/``name``."""
        os.makedirs(folder, exist_ok=True)
        shutil.copyfile(self.path(relative), os.path.join(folder, name))
