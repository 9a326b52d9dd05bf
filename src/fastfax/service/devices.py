"""The registry of device kinds: the service finds each kind only through the
``fastfax.devices`` entry point group (the entry point's name is the kind), as the
Windows fax service finds its registered service providers. What a kind implements is
:mod:`fastfax.devices.contract`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..devices.contract import Call, Device, Hooks, Line, Outcome
from ..errors import ConfigError

__all__ = ["Call", "Device", "Hooks", "Line", "Outcome", "device_factory"]


def device_factory(kind: str) -> Callable[[str, dict[str, Any]], Device]:
    """The factory of device kind ``kind``, from the ``fastfax.devices`` entry points.
    Raises :class:`ConfigError` naming the kinds installed when there is none."""
    found = entry_points(group="fastfax.devices")
    for ep in found:
        if ep.name == kind:
            return ep.load()
    known = sorted(ep.name for ep in found)
    raise ConfigError(f"unknown device kind {kind!r}; known: {known}")
