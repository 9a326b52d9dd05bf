"""T.30: frames (:mod:`.frames`), DIS/DTC/DCS fields (:mod:`.dis`), and the sans-I/O
session engine (:mod:`.session`, with its events in :mod:`.events` and its outcome in
:mod:`.result`)."""

from .dis import Dcs, Dis, choose_dcs
from .frames import FCF, Frame, T30FrameError
from .result import Cause, Result, SessionError
from .session import Session, create

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
    "Session",
    "create",
]
