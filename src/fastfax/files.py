"""Writing files whole or not at all (each written under a temporary name in its own
folder and renamed over its target once every one of them is complete), and writing a
file durably (it and its folder synced to disk before the call returns)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

__all__ = ["write_files", "write_synced", "sync_folder"]


def _temp_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder or ".", f".{name}.{os.urandom(6).hex()}.tmp")


def write_files(files: Sequence[tuple[str | os.PathLike[str], Iterable[bytes]]]) -> None:
    """Write each (path, chunks) under a temporary name, then rename them all; on any
    error no temporary file is left and no target is touched that was not yet renamed."""
    done: list[tuple[str, str]] = []
    try:
        for path, chunks in files:
            tmp = _temp_name(os.fspath(path))
            done.append((tmp, os.fspath(path)))
            with open(tmp, "xb") as fh:
                fh.writelines(chunks)
        for tmp, path in done:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in done:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def write_synced(path: str, data: bytes, replace: bool = False) -> None:
    """Write ``data`` as file ``path`` and sync the file, then its folder, to disk before
    returning (a power cut after this keeps it). ``replace`` False: ``path`` is a new
    name (an existing file is an error), written in place; True: written under a
    temporary name and renamed over ``path``, so readers see the old file or the new
    one whole."""
    target = _temp_name(path) if replace else path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if replace:
        os.replace(target, path)
    sync_folder(os.path.dirname(path) or ".")


def sync_folder(folder: str) -> None:
    """Sync folder ``folder`` (its entries: names created, renamed or removed)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
