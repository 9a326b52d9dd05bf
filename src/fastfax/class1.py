"""Send and receive faxes through a Class 1 fax modem: the public calls.

``url`` is anything pyserial opens: a device path (``/dev/ttyUSB0``), a pseudo-terminal,
``socket://host:port`` or ``rfc2217://host:port``. The modem must do ``AT+FCLASS=1``
(ITU-T T.31); the T.30 procedure runs in :mod:`fastfax.t30.session`.

Both calls return a :class:`fastfax.t30.result.Result` whatever the far end did:
``.ok``, ``.cause`` (a :class:`~fastfax.t30.result.Cause`, or a
:class:`~fastfax.t30.result.Cause` when the call never reached T.30: busy,
no answer, no dial tone, no call, or a modem that failed mid-call), ``.pages``,
``.rate``, ``.ecm``, ``.remote_id``. A port that cannot be opened, or a modem that is
not a Class 1 fax modem, raises :class:`~fastfax.transport.modem.ModemError`; bad pages
or options raise :class:`~fastfax.t30.result.SessionError` (both
:class:`fastfax.FaxError`) before the modem is touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .page import Page
from .t30.events import Note
from .t30.result import Cause, Result, SessionError
from .t30.session import create, load_pages
from .transport.class1 import Class1Call, modems_of, place_call, take_call
from .transport.modem import Modem, ModemError, ModemTimeout

__all__ = ["send_fax", "receive_fax", "Cause", "ModemError", "ModemTimeout", "Result"]

_ALL_MODEMS = ("v17", "v29", "v27ter")


def _open(url: str, baudrate: int, rtscts: bool, init: Iterable[str]) -> tuple[Modem, dict]:
    """Open and set up the modem; the session options its capabilities allow."""
    modem = Modem.open(url, baudrate=baudrate, rtscts=rtscts)
    try:
        modems, max_rate = modems_of(modem.setup(init))
    except BaseException:
        modem.close()
        raise
    if not modems:
        modem.close()
        raise ModemError(f"the modem on {url!r} lists no fax modulation it can send and receive")
    return modem, {"modems": modems, "max_rate": max_rate}


def _limit(options: dict[str, Any], caps: dict[str, Any]) -> dict[str, Any]:
    """Session options narrowed to what the modem can do."""
    wanted = set(options.pop("modems", _ALL_MODEMS))
    modems = [m for m in caps["modems"] if m in wanted]
    if not modems:
        raise SessionError(f"the modem can do {caps['modems']}, none of {sorted(wanted)}")
    rate = min(int(options.pop("max_rate", 14400)), caps["max_rate"])
    return {**options, "modems": modems, "max_rate": rate}


def send_fax(
    url: str,
    number: str,
    pages: Sequence[Page] | str | os.PathLike[str],
    *,
    ecm: bool = True,
    ident: str = "",
    dial_timeout: float = 60.0,
    baudrate: int = 115200,
    rtscts: bool = False,
    init: Iterable[str] = (),
    on_event: Callable[[Note], object] | None = None,
    **options: Any,
) -> Result:
    """Dial ``number`` on the modem at ``url`` and send ``pages`` (a list of
    :class:`fastfax.Page`, or a TIFF-F path); return the :class:`Result`.

    ``ecm``: use error correction when the far end offers it. ``ident``: our TSI (up to
    20 printable characters). ``dial_timeout``: seconds to wait for the far end to
    answer. ``baudrate``/``rtscts``: the serial line (ignored by sockets and ptys).
    ``init``: extra AT commands for set-up (e.g. ``["AT&F"]``). ``on_event``: called
    with each progress note (``Negotiated``, ``PageSent``, ``FrameNote``). Other
    ``options`` go to :func:`fastfax.t30.session.create`: ``max_rate`` (bit/s),
    ``modems``, ``codings``, ``resolutions``, ``nsf``, ``timers`` ({"T1": ms, ...}),
    ``ecm_frame_size``.
    """
    page_list = load_pages(pages)
    create(calling=True, pages=page_list, ecm=ecm, ident=ident, **options)  # check options
    modem, caps = _open(url, baudrate, rtscts, init)
    try:
        session = create(
            calling=True, pages=page_list, ecm=ecm, ident=ident, **_limit(dict(options), caps)
        )
        failed = place_call(modem, number, dial_timeout)
        if failed is not None:
            return failed
        return Class1Call(modem, session, on_event=on_event).run()
    except BaseException:
        modem.hangup()
        raise
    finally:
        modem.close()


def receive_fax(
    url: str,
    *,
    rings: int = 1,
    ring_timeout: float | None = None,
    ecm: bool = True,
    ident: str = "",
    baudrate: int = 115200,
    rtscts: bool = False,
    init: Iterable[str] = (),
    on_event: Callable[[Note], object] | None = None,
    **options: Any,
) -> Result:
    """Wait for a call on the modem at ``url``, answer after ``rings`` rings and receive
    a fax; return the :class:`Result` (its ``pages`` are the pages received).

    ``ring_timeout``: seconds to wait for the rings (None: as long as it takes; then
    the cause is ``Cause.NO_CALL``). ``ecm``: offer error correction. ``ident``: our
    CSI. ``on_event``: called with each progress note (``PageReceived`` carries each
    page as it is accepted). Other ``options`` as for :func:`send_fax`, plus
    ``rnr_count``.
    """
    if not isinstance(rings, int) or not 1 <= rings <= 100:
        raise SessionError(f"rings must be 1 to 100, got {rings!r}")
    create(calling=False, ecm=ecm, ident=ident, **options)  # check options
    modem, caps = _open(url, baudrate, rtscts, init)
    try:
        session = create(calling=False, ecm=ecm, ident=ident, **_limit(dict(options), caps))
        modem.rings = 0
        failed = take_call(modem, rings, ring_timeout)
        if failed is not None:
            return failed
        return Class1Call(modem, session, on_event=on_event).run()
    except BaseException:
        modem.hangup()
        raise
    finally:
        modem.close()
