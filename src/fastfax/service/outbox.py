"""What a node could not record while its store was unreachable, kept on the node's own
disk (the spool's ``outbox/`` folder) until it is recorded.

A node cut off from its database (a network partition, the server down) goes on with
the calls it has on its lines. Two things it learns meanwhile must not be lost: a fax
one of its lines received (its pages, and the job row that will name them), and the
outcome of a call of a job it had claimed (the state change and the fencing token of
its claim). Each is kept here as one JSON entry, the received pages beside it as a
TIFF-F file, both synced to disk before the entry counts, so they survive a kill and a
power cut; the scheduler records them, oldest first, once the store answers again
(:meth:`fastfax.service.scheduler.Scheduler.flush_outbox`).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from typing import Any

from ..files import sync_folder, write_synced

__all__ = ["Outbox", "FOLDER"]

#: The outbox's folder in the spool (its files' names relative to the spool start so).
FOLDER = "outbox"


class Outbox:
    """The entries kept under ``<root>/outbox/`` (``root``: the spool's absolute path),
    read from disk when made (a node that was killed finds what it kept). An entry is a
    JSON object: ``{"kind": "received", "row": ..., "line": ...}`` or ``{"kind":
    "outcome", "job": id, "fence": token, "values": {...}, "arrived": {"row": ...,
    "line": ...} or null}``; thread-safe."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.folder = os.path.join(root, FOLDER)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if os.path.isdir(self.folder):
            for name in sorted(os.listdir(self.folder)):
                if name.endswith(".json"):
                    with open(os.path.join(self.folder, name), "rb") as fh:
                        self._entries[name] = json.loads(fh.read())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def jobs(self) -> set[int]:
        """The send jobs whose call's outcome waits here."""
        with self._lock:
            return {e["job"] for e in self._entries.values() if e["kind"] == "outcome"}

    def keep_pages(self, data: bytes) -> str:
        """Keep a received fax's TIFF-F ``data``; its path relative to the spool (what a
        job row kept here names until the fax is moved into the spool's ``in/``)."""
        os.makedirs(self.folder, exist_ok=True)
        relative = os.path.join(FOLDER, f"{secrets.token_hex(8)}.tif")
        write_synced(os.path.join(self.root, relative), data)
        return relative

    def keep(self, entry: dict[str, Any]) -> None:
        """Keep ``entry`` (JSON-able) until :meth:`done`."""
        os.makedirs(self.folder, exist_ok=True)
        name = f"{time.time():017.6f}-{secrets.token_hex(4)}.json"
        write_synced(os.path.join(self.folder, name), json.dumps(entry).encode(), replace=True)
        with self._lock:
            self._entries[name] = entry

    def entries(self) -> list[tuple[str, dict[str, Any]]]:
        """The entries kept, oldest first, with their names."""
        with self._lock:
            return sorted(self._entries.items())

    def update(self, name: str, entry: dict[str, Any]) -> None:
        """Write entry ``name`` again (a step of its recording done: it says so now)."""
        write_synced(os.path.join(self.folder, name), json.dumps(entry).encode(), replace=True)
        with self._lock:
            self._entries[name] = entry

    def done(self, name: str) -> None:
        """Entry ``name`` is recorded in the store: forget it (durably)."""
        self._drop(name, None)

    def set_aside(self, name: str) -> None:
        """Entry ``name`` cannot be recorded (not for want of the store): kept as
        ``<name>.bad`` for an operator, no longer tried."""
        self._drop(name, name + ".bad")

    def _drop(self, name: str, keep_as: str | None) -> None:
        with self._lock:
            self._entries.pop(name, None)
        path = os.path.join(self.folder, name)
        try:
            if keep_as is None:
                os.unlink(path)
            else:
                os.replace(path, os.path.join(self.folder, keep_as))
        except FileNotFoundError:
            return
        sync_folder(self.folder)

    def remove_pages(self, relative: str) -> None:
        """Delete kept pages (``relative`` to the spool) once the spool holds them."""
        if relative.startswith(FOLDER + os.sep):
            try:
                os.unlink(os.path.join(self.root, relative))
            except FileNotFoundError:
                pass
