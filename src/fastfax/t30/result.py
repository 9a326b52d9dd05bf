"""How a T.30 session ended: :class:`Cause` and :class:`Result` with its statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..errors import FaxError
from ..page import Page

__all__ = ["Cause", "Result", "SessionError"]


class SessionError(FaxError, ValueError):
    """A session was set up wrongly (bad option, page the fax cannot carry) or was fed
    an event it cannot take (e.g. after it ended)."""


class Cause(StrEnum):
    """Why a session ended. The names follow SpanDSP's ``T30_ERR_*`` completion codes
    (``T30_ERR_TX_PHBDEAD`` is ``TX_PHBDEAD``); the value is a sentence for people."""

    OK = "completed"
    T1_EXPIRED = "no T.30 frames from the far end (T1 expired)"
    CANNOT_TRAIN = "could not train at any common rate"
    INCOMPATIBLE = "the far end has no mode in common with us"
    RX_INCAPABLE = "the far end cannot receive"
    TX_INCAPABLE = "the far end has nothing to send"
    NORESSUPPORT = "the far end cannot receive the page's resolution"
    NOSIZESUPPORT = "the far end cannot receive the page's size"
    UNEXPECTED = "unexpected frame"
    TX_BADDCS = "bad response to DCS or training"
    TX_BADPG = "page rejected (RTN) too many times"
    TX_ECMPHD = "ECM block could not be delivered (EOR)"
    TX_GOTDCN = "DCN from the far end while sending"
    TX_INVALRSP = "invalid response after sending a page"
    TX_NODIS = "frames other than DIS while waiting for DIS"
    TX_PHBDEAD = "no response to DCS or training"
    TX_PHDDEAD = "no response after sending a page"
    TX_T5EXP = "the receiver stayed not ready (T5 expired)"
    RX_ECMPHD = "invalid ECM data from the sender"
    RX_INVALCMD = "unexpected command after a page"
    RX_NOCARRIER = "no page data carrier"
    RX_BADPAGE = "page data could not be decoded"
    RX_T2EXP = "no command from the sender (T2 expired)"
    RX_DCNWHY = "DCN while waiting for DCS"
    RX_DCNDATA = "DCN while waiting for page data"
    RX_DCNFAX = "DCN while waiting for a post-page command"
    RX_DCNNORTN = "DCN after a page was rejected (RTN)"
    RETRYDCN = "gave up after the permitted retries"
    CALLDROPPED = "the call dropped"
    CANCELLED = "cancelled locally"
    # Call set-up (phase A) and the modem, which T.30 has no codes for:
    NO_ANSWER = "the far end did not answer"
    BUSY = "the number was busy"
    NO_DIALTONE = "no dial tone"
    NO_CALL = "no call came in"
    BAD_ADDRESS = "the number does not exist or is incomplete"
    REFUSED = "the trunk or network refused the call (after our credentials, if asked)"
    NO_T38 = "the far end refused T.38"
    NOT_FAX = "answered, but not by a fax (a person, an answering machine, a data modem)"
    DELAYED = "the modem delays dialling this number for now (too many failed attempts)"
    BLACKLISTED = "the modem refuses to dial this number (blacklisted)"
    MODEM_ERROR = "the modem refused a command or stopped answering during the call"

    def __str__(self) -> str:
        return self.name


@dataclass
class Result:
    """The outcome of one session.

    ``ok`` is True only for :attr:`Cause.OK`. ``pages`` are the pages sent (confirmed by
    the receiver) or received; ``rate`` the last signalling rate in bit/s (0 before
    phase B completed); ``modem`` its modem ("v17", "v29", "v27ter"); ``resolution`` a
    key of :data:`fastfax.t30.dis.RESOLUTIONS`; ``coding`` "mh", "mr" or "mmr";
    ``retransmitted_frames`` ECM frames sent again (sender) or asked for again
    (receiver); ``bad_rows`` rows repaired on received non-ECM pages (summed);
    ``remote_id`` the far end's CSI or TSI; ``nsf_vendor`` the maker named by its NSF,
    when known.
    """

    cause: Cause = Cause.OK
    sending: bool = True
    calling: bool = True
    pages: list[Page] = field(default_factory=list)
    rate: int = 0
    modem: str = ""
    resolution: str = ""
    coding: str = ""
    ecm: bool = False
    retransmitted_frames: int = 0
    bad_rows: int = 0
    rtn_pages: int = 0
    fallbacks: int = 0
    remote_id: str = ""
    nsf_vendor: str | None = None
    remote_nsf: bytes = b""

    @property
    def ok(self) -> bool:
        return self.cause is Cause.OK

    def __repr__(self) -> str:
        role = ("send" if self.sending else "receive") + (" calling" if self.calling else "")
        return (
            f"Result({self.cause.name}, {role}, pages={len(self.pages)}, rate={self.rate}, "
            f"{self.resolution} {self.coding}{' ECM' if self.ecm else ''}, "
            f"remote_id={self.remote_id!r})"
        )
