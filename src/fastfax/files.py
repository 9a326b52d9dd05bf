"""Writing files whole or not at all: each is written under a temporary name in its
own folder and renamed over its target once every one of them is complete."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

__all__ = ["write_files"]


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
