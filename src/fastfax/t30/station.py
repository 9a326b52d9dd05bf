"""Setting up a T.30 station: our capabilities (:func:`local_dis`), the pages to send
(:func:`load_pages`), and :func:`create`, which checks every option and returns the
engine (:class:`fastfax.t30.engine.Engine`) of a calling or an answering station."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from ..errors import CodecError
from ..page import Page
from .dis import Dis
from .engine import Engine
from .frames import T30FrameError
from .receiver import Receiver
from .result import SessionError
from .sender import Sender

__all__ = ["create", "local_dis", "load_pages"]

_MODEMS = {"v17", "v29", "v27ter"}
_CODINGS = {"mh", "mr", "mmr"}
_RESOLUTIONS = (
    "R8x3.85",
    "R8x7.7",
    "R8x15.4",
    "R16x15.4",
    "200x100",
    "200x200",
    "300x300",
    "400x400",
)


def local_dis(
    *,
    receive: bool,
    ecm: bool = True,
    modems: Iterable[str] = ("v17", "v29", "v27ter"),
    max_rate: int = 14400,
    codings: Iterable[str] = ("mh", "mr", "mmr"),
    resolutions: Iterable[str] = _RESOLUTIONS,
) -> Dis:
    """Our DIS (or, for a sender, the capabilities :func:`choose_dcs` compares with)."""
    from .dis import Length, Rates, ScanTime, Width

    mods = set(modems)
    if not mods or mods - _MODEMS:
        raise SessionError(f"modems must be a non-empty subset of {sorted(_MODEMS)}, got {mods}")
    if max_rate < 9600:
        mods -= {"v17", "v29"}
    elif max_rate < 14400:
        mods -= {"v17"}
    cods = set(codings)
    if "mh" not in cods or cods - _CODINGS:
        raise SessionError(f"codings must include 'mh' and be among {sorted(_CODINGS)}")
    res = set(resolutions)
    if res - set(_RESOLUTIONS):
        raise SessionError(f"resolutions must be among {_RESOLUTIONS}, got {sorted(res)}")
    if "v17" in mods:
        rates = Rates.V27TER_V29_V17
    elif "v29" in mods:
        rates = Rates.V27TER_V29 if "v27ter" in mods else Rates.V29
    else:
        rates = Rates.V27TER
    return Dis(
        can_receive=receive,
        rate=rates,
        width=Width.A3,
        length=Length.UNLIMITED,
        scan_time=ScanTime.MS0,
        fine=bool(res & {"R8x7.7", "200x200"}),
        superfine="R8x15.4" in res,
        r16=bool(res & {"R16x15.4", "400x400"}),
        r300="300x300" in res,
        two_d="mr" in cods,
        t6=ecm and "mmr" in cods,
        ecm=ecm,
    )


def load_pages(pages: Sequence[Page] | str | os.PathLike[str]) -> list[Page]:
    """Pages to send: a sequence of :class:`fastfax.Page`, or a TIFF-F path."""
    if isinstance(pages, (str, os.PathLike)):
        from ..tiff import read

        pages = read(pages)
    out = list(pages)
    if not out:
        raise SessionError("nothing to send: no pages")
    for i, p in enumerate(out):
        if not isinstance(p, Page):
            raise SessionError(f"page {i + 1} is a {type(p).__name__}, not a fastfax.Page")
    return out


def create(
    *,
    calling: bool,
    pages: Sequence[Page] | str | os.PathLike[str] | None = None,
    ident: str = "",
    ecm: bool = True,
    max_rate: int = 14400,
    modems: Iterable[str] = ("v17", "v29", "v27ter"),
    codings: Iterable[str] = ("mh", "mr", "mmr"),
    resolutions: Iterable[str] = _RESOLUTIONS,
    nsf: bytes | None = None,
    timers: dict[str, int] | None = None,
    rnr_count: int = 0,
    ecm_frame_size: int | None = None,
) -> Engine:
    """A new T.30 session. ``calling=True``: the calling station, which sends ``pages`` (a
    sequence of :class:`fastfax.Page` or a TIFF-F path). ``calling=False``: the
    answering station, which receives.

    ``ident`` is our TSI/CSI (up to 20 printable characters); ``ecm`` offers/uses error
    correction; ``max_rate`` caps the signalling rate (bit/s); ``modems``, ``codings``
    and ``resolutions`` limit what we offer (names as in :mod:`fastfax.t30.dis`);
    ``nsf`` is an NSF/NSS FIF to send; ``timers`` overrides T1-T5 (ms). Receiver only:
    ``rnr_count`` answers the first N ECM PPS/RR with RNR (receiver not ready).
    Sender only: ``ecm_frame_size`` forces 64- or 256-octet ECM frames.
    """
    common = dict(ident=ident, nsf=nsf, timers=timers)
    caps = dict(ecm=ecm, modems=modems, max_rate=max_rate, codings=codings, resolutions=resolutions)
    try:
        if calling:
            if pages is None:
                raise SessionError("polling is not implemented: a calling session sends pages")
            return Sender(
                load_pages(pages),
                local_dis(receive=False, **caps),
                max_rate=max_rate,
                frame_size=ecm_frame_size,
                **common,
            )
        if pages is not None:
            raise SessionError("polling is not implemented: an answering session receives")
        return Receiver(local_dis(receive=True, **caps), rnr_count=rnr_count, **common)
    except (T30FrameError, CodecError) as exc:
        raise SessionError(str(exc)) from exc
