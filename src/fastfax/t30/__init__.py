"""T.30: frames (:mod:`.frames`), DIS/DTC/DCS fields (:mod:`.dis`) and, in later modules,
the session engine."""

from .dis import Dcs, Dis, choose_dcs
from .frames import FCF, Frame, T30FrameError

__all__ = ["FCF", "Frame", "T30FrameError", "Dis", "Dcs", "choose_dcs"]
