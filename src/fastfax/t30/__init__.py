"""T.30: frames (:mod:`.frames`), DIS/DTC/DCS fields (:mod:`.dis`), the sans-I/O engine
(:mod:`.engine`, with its events and actions in :mod:`.events`, its timers in
:mod:`.timers` and its outcome in :mod:`.result`), ECM (:mod:`.ecm`), and
:func:`create` (:mod:`.station`), which sets up the engine of a calling or an answering
station."""

from .dis import Dcs, Dis, choose_dcs
from .engine import Engine
from .frames import FCF, Frame, T30FrameError
from .result import Cause, Result, SessionError
from .station import create

__all__ = [
    "FCF",
    "Frame",
    "T30FrameError",
    "Dis",
    "Dcs",
    "choose_dcs",
    "Cause",
    "Result",
    "SessionError",
    "Engine",
    "create",
]
