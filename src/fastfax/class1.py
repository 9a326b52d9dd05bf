"""Send and receive faxes through a Class 1 fax modem: the public calls.

``url`` is anything pyserial opens: a device path (``/dev/ttyUSB0``), a pseudo-terminal,
``socket://host:port`` or ``rfc2217://host:port``. The modem must do ``AT+FCLASS=1``
(ITU-T T.31); the T.30 procedure runs in :mod:`fastfax.t30.engine`.

Both calls return a :class:`fastfax.t30.result.Result` whatever the far end did:
``.ok``, ``.cause`` (a :class:`~fastfax.t30.result.Cause`, also when the call never
reached T.30: busy, no answer, no dial tone, no call, or a modem that failed mid-call),
``.pages``, ``.rate``, ``.ecm``, ``.remote_id``. A dial that failed returns a
:class:`~fastfax.transport.class1.CallResult` whose ``.dial`` is the modem's own word
(a :class:`~fastfax.transport.at.Code`): ``DELAYED`` or ``BLACKLISTED`` (the modem
refuses the number for now or for good; causes ``DELAYED``, ``BLACKLISTED``), ``VOICE``
or ``NO CARRIER`` (answered, but not by a fax; cause ``NOT_FAX``), ``BUSY``, ...

A port that cannot be opened, or a modem that is not a Class 1 fax modem, raises
:class:`~fastfax.transport.at.ModemError`; bad pages or options raise
:class:`~fastfax.t30.result.SessionError` (both :class:`fastfax.FaxError`) before the
modem is touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .page import Page
from .t30.events import Note
from .t30.result import Cause, Result, SessionError
from .t30.station import create, load_pages
from .transport.at import Code, ModemError, ModemTimeout
from .transport.class1 import CallResult, answer_call, open_modem, send_call

__all__ = ["send_fax", "receive_fax", "CallResult", "Cause", "Code", "ModemError",
           "ModemTimeout", "Result"]  # fmt: skip


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
    20 printable characters). ``dial_timeout``: seconds the far end has to answer as
    a fax (the modem's S7, at most 255). ``baudrate``/``rtscts``: the serial line
    (ignored by sockets and ptys).
    ``init``: extra AT commands for set-up (e.g. ``["AT&F"]``). ``on_event``: called
    with each progress note (``Negotiated``, ``PageSent``, ``FrameNote``). Other
    ``options`` go to :func:`fastfax.t30.station.create`: ``max_rate`` (bit/s),
    ``modems``, ``codings``, ``resolutions``, ``nsf``, ``timers`` ({"T1": ms, ...}),
    ``ecm_frame_size``.
    """
    page_list = load_pages(pages)
    create(calling=True, pages=page_list, ecm=ecm, ident=ident, **options)  # check options
    modem, caps = open_modem(url, baudrate=baudrate, rtscts=rtscts, init=init)
    try:
        return send_call(
            modem, caps, number, page_list, ecm=ecm, ident=ident, dial_timeout=dial_timeout,
            on_event=on_event, **options,
        )  # fmt: skip
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
    modem, caps = open_modem(url, baudrate=baudrate, rtscts=rtscts, init=init)
    try:
        modem.rings = 0
        return answer_call(
            modem, caps, rings=rings, ring_timeout=ring_timeout, ecm=ecm, ident=ident,
            on_event=on_event, **options,
        )  # fmt: skip
    finally:
        modem.close()
