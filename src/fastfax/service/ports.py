"""The service's port table: its lines and their devices, each line's live status,
which lines are in a call, and their stored settings (FAX_PORT_INFO).

The table owns the service's lock: whoever changes a job's state or a line's status
holds it, and :attr:`PortTable.changed` (a condition on it) wakes those who wait for a
change. The scheduler and the service both work through this table and nothing else of
each other.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..devices.contract import Device, DeviceState, Line
from .errors import PortNotFound
from .model import PortStatus
from .store import Store

__all__ = ["PortTable", "SETTINGS"]

#: A port's stored settings (FAX_PORT_INFO).
SETTINGS = ("send", "receive", "rings", "priority", "tsid", "csid")


class PortTable:
    """Lines by port id (a line's :attr:`~fastfax.devices.contract.Line.id`)."""

    def __init__(self, store: Store, node: str = "") -> None:
        self.node = node  #: the node's name its ports are stored under ('': one node)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._store = store
        self._lines: dict[str, tuple[Line, Device]] = {}
        self._status: dict[str, PortStatus] = {}
        self._busy: set[str] = set()
        self._receives: dict[str, threading.Event] = {}  # port -> stops its receive
        self._settings: dict[str, dict[str, Any]] = {}  # port -> its stored settings
        self._routing: dict[str, dict[str, tuple[bool, dict]]] = {}  # port -> its routing

    def add(self, line: Line, device: Device) -> None:
        self._lines[line.id] = (line, device)
        self._status[line.id] = PortStatus(line.id)

    def __contains__(self, port: object) -> bool:
        return port in self._lines

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._lines))

    def __len__(self) -> int:
        return len(self._lines)

    def line(self, port: Any) -> Line:
        """The line of ``port``; :class:`PortNotFound` naming the ports there are."""
        if not isinstance(port, str) or port not in self._lines:
            raise PortNotFound(f"no port {port!r}; ports: {sorted(self._lines)}")
        return self._lines[port][0]

    def device(self, port: str) -> Device:
        return self._lines[port][1]

    def settings(self, port: str) -> dict[str, Any]:
        """The port's stored settings: send, receive (bools), rings, priority, tsid, csid
        (read from the store once, then kept: only :meth:`save` changes them)."""
        cached = self._settings.get(port)
        if cached is None:
            row = self._store.port(port, self.node)
            if row is None:
                raise PortNotFound(f"port {port!r} has no stored settings")
            cached = {k: (bool(row[k]) if k in ("send", "receive") else row[k])
                      for k in SETTINGS}  # fmt: skip
            self._settings[port] = cached
        return dict(cached)

    def stored(self, port: str) -> bool:
        """Whether the store has settings for ``port``."""
        return port in self._settings or self._store.port(port, self.node) is not None

    def save(self, port: str, values: dict[str, Any]) -> None:
        """Store a port's settings (``values``: every setting, booleans as 0/1) with its
        line's name, kind and number, under this node."""
        line = self.line(port)
        self._store.save_port(
            port, {**values, "name": line.name, "kind": line.kind, "number": line.number},
            self.node,
        )  # fmt: skip
        with self.lock:
            self._settings.pop(port, None)

    def routing(self, port: str) -> dict[str, tuple[bool, dict]]:
        """The port's routing methods: name -> (enabled, data) (read from the store
        once, then kept: only :meth:`set_routing` changes them)."""
        cached = self._routing.get(port)
        if cached is None:
            cached = self._routing[port] = self._store.routing(port, self.node)
        return {name: (enabled, dict(data)) for name, (enabled, data) in cached.items()}

    def set_routing(self, port: str, method: str, enabled: bool, data: dict) -> None:
        self._store.set_routing(port, method, enabled, data, self.node)
        with self.lock:
            self._routing.pop(port, None)

    def find(self, number: str, kind: str) -> str | None:
        """The port of device kind ``kind`` whose line has ``number``."""
        for line, _ in self._lines.values():
            if line.kind == kind and line.number == number:
                return line.id
        return None

    def find_number(self, number: str) -> str | None:
        """The port whose line has ``number`` (of any device kind), if any."""
        for line, _ in self._lines.values():
            if line.number and line.number == number:
                return line.id
        return None

    # -- busy lines -----------------------------------------------------------------
    def claim(self, port: str) -> bool:
        """Mark ``port`` in a call; False if it already is."""
        with self.lock:
            if port in self._busy:
                return False
            self._busy.add(port)
            return True

    def release(self, port: str) -> None:
        """``port``'s call is over: idle again, its status counters cleared."""
        with self.lock:
            self._busy.discard(port)
            self._receives.pop(port, None)
            self._status[port] = PortStatus(port)

    def receiving(self, port: str, abort: threading.Event) -> None:
        """``port`` receives a call that ``abort`` stops."""
        with self.lock:
            self._receives[port] = abort

    def abort_receive(self, port: str) -> bool:
        """Stop the call ``port`` is receiving; False if it receives none."""
        with self.lock:
            abort = self._receives.get(port)
            if abort is None:
                return False
            abort.set()
            return True

    def is_busy(self, port: str) -> bool:
        return port in self._busy

    def senders(self) -> list[str]:
        """The ports set to send."""
        return [p for p in self._lines if self.settings(p)["send"]]

    def free_senders(self, senders: list[str]) -> list[str]:
        """Those of ``senders`` not in a call, lowest priority number first."""
        with self.lock:
            free = [p for p in senders if p not in self._busy]
        return sorted(free, key=lambda p: (self.settings(p)["priority"], p))

    # -- live status ----------------------------------------------------------------
    def status(self, port: str) -> PortStatus:
        """The live status object of ``port`` (change it only under :attr:`lock`)."""
        return self._status[port]

    def snapshot(self, port: str) -> PortStatus:
        """A copy of ``port``'s status, with ``elapsed`` filled in."""
        with self.lock:
            status = dataclasses.replace(self._status[port])
        if status.started is not None:
            status.elapsed = time.time() - status.started
        return status

    def report(self, port: str, state: DeviceState, **fields: Any) -> tuple[PortStatus, bool]:
        """Set ``port``'s state and ``fields``; the status and whether the state or the
        current page changed."""
        with self.lock:
            status = self._status[port]
            before = (status.state, status.current_page)
            status.state = state
            for key, value in fields.items():
                setattr(status, key, value)
            if status.started is None:
                status.started = time.time()
            return status, before != (status.state, status.current_page)

    def devices(self) -> list[Device]:
        """Each device once, in the order its first line was added."""
        seen: list[Device] = []
        for _, device in self._lines.values():
            if not any(device is d for d in seen):
                seen.append(device)
        return seen
