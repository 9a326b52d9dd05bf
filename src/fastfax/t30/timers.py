"""T.30 timers and retry limits, in milliseconds (T.30 section 5.4.3 and Annex A).

The engine never reads a clock: it asks its transport to start and stop these timers
(:class:`fastfax.t30.events.StartTimer`) and is told when one expires.
"""

from __future__ import annotations

from types import MappingProxyType

from .result import SessionError

__all__ = ["TIMERS", "MAX_TRIES", "MAX_RTN", "SIGNAL_GAP_MS", "timer_values"]

#: T1 (35 s): time to identify the far end (DIS or DCS); T2 (6 s): a receiver waiting
#: for a command or for page data; T3 (10 s): operator alert for procedure interrupts
#: (not used: the engine answers PIP/PIN as MCF/RTN); T4 (3 s): a sender waiting for a
#: response; T5 (60 s): an ECM sender waiting for the receiver to become ready.
TIMERS = MappingProxyType({"T1": 35_000, "T2": 6_000, "T3": 10_000, "T4": 3_000, "T5": 60_000})
#: Times a command is sent without a valid response before giving up (T.30: 3).
MAX_TRIES = 3
#: Times one page is sent again after RTN before giving up.
MAX_RTN = 2
#: Silence between signals of different modulations (T.30: 75 +/- 20 ms).
SIGNAL_GAP_MS = 75


def timer_values(overrides: dict[str, int] | None = None) -> dict[str, int]:
    """The timer table with ``overrides`` (name -> ms) applied; unknown names raise."""
    values = dict(TIMERS)
    for name, ms in (overrides or {}).items():
        if name not in values:
            raise SessionError(f"unknown T.30 timer {name!r}: use one of {', '.join(values)}")
        if not isinstance(ms, int) or not 0 < ms <= 600_000:
            raise SessionError(f"timer {name} must be 1 to 600000 ms, got {ms!r}")
        values[name] = ms
    return values
