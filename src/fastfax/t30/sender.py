"""The sending half of the T.30 engine (the calling station): phase B (DCS, TCF,
fallback), phase C (non-ECM pages or ECM blocks) and phase D (MPS/EOM/EOP, PPS, PPR,
CTC, RNR/RR). See :mod:`fastfax.t30.engine` for the event/action vocabulary."""

from __future__ import annotations

import dataclasses

from .. import codec
from ..page import Page
from .dis import RATE_ORDER, RESOLUTIONS, Dcs, Dis, Length, Rate, Width, choose_dcs
from .ecm import EcmError, EcmSender
from .engine import Engine
from .events import (
    CarrierDown,
    Event,
    FrameReceived,
    Negotiated,
    PageSent,
    SendEcmFrames,
    SendPageData,
    SendTcf,
    Silence,
)
from .frames import FCF, Frame, T30FrameError
from .result import Cause, SessionError
from .timers import MAX_RTN, MAX_TRIES, SIGNAL_GAP_MS

__all__ = ["Sender", "page_mode"]

# Pels across an A4, B4 and A3 line at each horizontal resolution (dots per inch).
_WIDTHS = {
    204: (1728, 2048, 2432),
    200: (1728, 2048, 2432),
    300: (2592, 3072, 3648),
    408: (3456, 4096, 4864),
    400: (3456, 4096, 4864),
}


def page_mode(page: Page) -> tuple[str, Width, Length]:
    """The T.30 resolution name, width and length code that carry ``page``; raise
    :class:`SessionError` if no fax resolution or width fits it."""
    best = None
    for name, (x, y) in RESOLUTIONS.items():
        if abs(page.xres - x) <= 0.02 * x and abs(page.yres - y) <= 0.02 * y:
            best = name
            break
    if best is None:
        raise SessionError(
            f"a page of {page.xres:g} x {page.yres:g} dpi matches no fax resolution "
            "(standard is 204 x 98, fine 204 x 196)"
        )
    widths = _WIDTHS.get(RESOLUTIONS[best][0])
    if widths is None or page.width not in widths:
        raise SessionError(
            f"a {best} page must be {' or '.join(map(str, widths or ()))} pels wide, "
            f"not {page.width}"
        )
    inches = page.height / page.yres
    length = Length.A4 if inches <= 11.7 else Length.B4 if inches <= 14.4 else Length.UNLIMITED
    return best, Width(widths.index(page.width)), length


class Sender(Engine):
    """The calling station, sending ``pages``."""

    def __init__(
        self,
        pages: list[Page],
        local: Dis,
        *,
        max_rate: int,
        frame_size: int | None,
        **common,
    ) -> None:
        super().__init__(calling=True, sending=True, **common)
        self.pages = pages
        self._modes = [page_mode(p) for p in pages]
        if frame_size not in (None, 64, 256):
            raise SessionError(f"ecm_frame_size must be 64 or 256, got {frame_size!r}")
        self._frame_size = frame_size
        self._local = local
        self._cap: Rate | None = next((r for r in RATE_ORDER if r.bps <= max_rate), None)
        if self._cap is None:
            raise SessionError(f"max_rate {max_rate} is below 2400 bit/s")
        self._remote: Dis | None = None
        self._dcs: Dcs | None = None
        self._index = 0
        self._tries = 0
        self._rtn = 0
        self._resend = self._send_dcs
        self._dead = Cause.TX_PHBDEAD
        self._ecm: EcmSender | None = None
        self._block = 0
        self._pending: list[bytes] = []
        self._cache: dict[tuple, bytes] = {}

    # -- events -----------------------------------------------------------------------
    def _on_connected(self) -> None:
        self._start("T1")
        self._listen("wait_dis")

    def _on_timer(self, name: str) -> None:
        if name == "T1" and self.state == "wait_dis":
            self._end(Cause.T1_EXPIRED, dcn=True)
        elif name == "T4":
            self._no_response()
        elif name == "T5":
            self._end(Cause.TX_T5EXP, dcn=True)

    def _on_line_dropped(self) -> None:
        self._end(self.result.cause if self.state == "closing" else Cause.CALLDROPPED)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, FrameReceived):
            burst = self._take_frame(event)
            if burst:
                self._on_burst(burst)
        elif isinstance(event, CarrierDown) and self.state != "wait_dis" and self._garbled():
            self._stop("T4")
            self._no_response()

    def _on_burst(self, burst: list[Frame]) -> None:
        fcf = burst[-1].fcf
        state = self.state
        if fcf == FCF.DCN:
            self._end(Cause.TX_GOTDCN if state in ("wait_dis", "wait_cfr") else Cause.TX_BADPG)
        elif state == "wait_dis":
            if fcf == FCF.DIS:
                try:
                    self._remote = Dis.parse(burst[-1].fif)
                except T30FrameError:
                    return  # wait for the DIS to come again (within T1)
                self._stop("T1")
                self._note_identity(burst)
                self._phase_b()
        elif fcf == FCF.CRP:
            self._stop("T4")
            self._retry()
        elif state == "wait_cfr":
            self._on_training_answer(fcf, burst)
        elif state == "wait_page_resp":
            self._on_page_answer(fcf)
        elif state == "wait_pps_resp":
            self._on_pps_answer(fcf, burst[-1])
        elif state == "wait_ctr" and fcf == FCF.CTR:
            self._stop("T4")
            assert self._ecm is not None
            self._ecm.continue_to_correct(self._block)
            self._send_pending()
        elif state == "wait_err" and fcf == FCF.ERR:
            self._stop("T4")
            self._end(Cause.TX_ECMPHD, dcn=True)

    # -- phase B ----------------------------------------------------------------------
    def _phase_b(self) -> None:
        remote = self._remote
        assert remote is not None
        resolution, width, length = self._modes[self._index]
        try:
            dcs = choose_dcs(
                remote,
                self._local,
                resolution=resolution,
                width=width,
                length=length,
                max_rate=self._cap,
            )
        except T30FrameError:
            if not remote.can_receive:
                cause = Cause.RX_INCAPABLE
            elif resolution not in remote.resolutions:
                cause = Cause.NORESSUPPORT
            else:
                cause = Cause.NOSIZESUPPORT
            self._end(cause, dcn=True)
            return
        if dcs.ecm and self._frame_size:
            dcs = dataclasses.replace(dcs, frame_64=self._frame_size == 64)
        self._dcs = dcs
        self._tries = 0
        self._send_dcs()

    def _send_dcs(self) -> None:
        dcs = self._dcs
        assert dcs is not None
        self._resend, self._dead = self._send_dcs, Cause.TX_PHBDEAD
        frames = self._ident_frames(FCF.TSI, FCF.NSS) + [Frame(FCF.DCS, dcs.encode())]
        tcf = SendTcf(dcs.rate)
        self._frames(frames, lambda: self._gap_then(tcf, self._await("wait_cfr")))

    def _await(self, state: str):
        def go() -> None:
            self._listen(state)
            self._start("T4")

        return go

    def _lower(self) -> bool:
        """Fall back one rate; False when already at the slowest."""
        dcs = self._dcs
        assert dcs is not None and self._remote is not None
        at = RATE_ORDER.index(dcs.rate)
        if at + 1 >= len(RATE_ORDER):
            return False
        self._cap = RATE_ORDER[at + 1]
        lower = choose_dcs(
            self._remote,
            self._local,
            resolution=dcs.resolution,
            width=dcs.width,
            length=dcs.length,
            max_rate=self._cap,
        )
        if lower.rate == dcs.rate:
            return False
        self._dcs = dataclasses.replace(dcs, rate=lower.rate)
        self.result.fallbacks += 1
        return True

    def _on_training_answer(self, fcf: FCF, burst: list[Frame]) -> None:
        if fcf == FCF.CFR:
            self._stop("T4")
            self._phase_c()
        elif fcf == FCF.FTT:
            self._stop("T4")
            if not self._lower():
                self._end(Cause.CANNOT_TRAIN, dcn=True)
                return
            self._tries = 0
            self._send_dcs()
        elif fcf == FCF.DIS:
            # The receiver did not hear our DCS and repeats its DIS.
            self._stop("T4")
            self._no_response()

    def _no_response(self) -> None:
        self._tries += 1
        if self._tries >= MAX_TRIES:
            self._end(self._dead, dcn=True)
            return
        if self.state == "wait_cfr":
            # No answer to DCS and TCF: try again, one rate lower.
            self._lower()
        self._retry()

    def _retry(self) -> None:
        self._resend()

    # -- phase C ----------------------------------------------------------------------
    def _phase_c(self) -> None:
        dcs = self._dcs
        assert dcs is not None
        coding = dcs.coding
        self._apply_mode(dcs.rate, dcs.resolution, coding, dcs.ecm)
        self._emit(Negotiated(dcs.rate, dcs.resolution, coding, dcs.ecm, self.result.remote_id))
        self._send_page()

    def _command(self) -> FCF:
        i = self._index
        if i == len(self.pages) - 1:
            return FCF.EOP
        return FCF.EOM if self._modes[i + 1][:2] != self._modes[i][:2] else FCF.MPS

    def _page_data(self) -> bytes:
        dcs = self._dcs
        assert dcs is not None
        coding = dcs.coding
        min_bits = 0 if dcs.ecm else dcs.scan_time.ms * dcs.rate.bps // 1000
        key = (self._index, coding, min_bits)
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = codec.encode(
                self.pages[self._index],
                coding,
                msb_first=False,
                rtc=True,  # RTC (MH/MR) or EOFB (MMR) ends the page on the line
                min_row_bits=min_bits,
            )
        return self._cache[key]

    def _send_page(self) -> None:
        dcs = self._dcs
        assert dcs is not None
        data = self._page_data()
        short = dcs.rate.modem == "v17"
        if dcs.ecm:
            self._ecm = EcmSender(
                data, frame_size=dcs.frame_size, page=self._index, command=self._command(), x=True
            )
            self._block = 0
            self._send_block(short)
            return
        self._gap_then(SendPageData(dcs.rate, data, short), self._after_page)

    def _after_page(self) -> None:
        self._tries = 0
        self._transmit(Silence(SIGNAL_GAP_MS), self._send_post_page)

    def _send_post_page(self) -> None:
        self._resend, self._dead = self._send_post_page, Cause.TX_PHDDEAD
        self._frames([Frame(self._command())], self._await("wait_page_resp"))

    # -- phase D ----------------------------------------------------------------------
    def _on_page_answer(self, fcf: FCF) -> None:
        if fcf in (FCF.MCF, FCF.RTP, FCF.PIP):
            self._stop("T4")
            self._page_done(fcf)
        elif fcf in (FCF.RTN, FCF.PIN):
            self._stop("T4")
            self._rtn += 1
            self.result.rtn_pages += 1
            if self._rtn > MAX_RTN:
                self._end(Cause.TX_BADPG, dcn=True)
                return
            # Retrain (one rate lower when possible) and send the page again.
            self._lower()
            self._tries = 0
            self._send_dcs()

    def _page_done(self, fcf: FCF) -> None:
        command = self._command()
        self.result.pages.append(self.pages[self._index])
        self._emit(PageSent(self._index + 1, fcf.name))
        self._index += 1
        self._rtn = 0
        self._tries = 0
        if command == FCF.EOP:
            self._end(Cause.OK, dcn=True)
        elif command == FCF.EOM:
            self._start("T1")
            self._listen("wait_dis")
        elif fcf == FCF.RTP:
            self._send_dcs()
        else:
            self._send_page()

    # -- ECM --------------------------------------------------------------------------
    def _send_block(self, short: bool = True) -> None:
        assert self._ecm is not None and self._dcs is not None
        frames = tuple(self._ecm.block_frames(self._block))
        self._tries = 0
        self._gap_then(SendEcmFrames(self._dcs.rate, frames, short), self._after_block)

    def _after_block(self) -> None:
        self._transmit(Silence(SIGNAL_GAP_MS), self._send_pps)

    def _send_pps(self) -> None:
        assert self._ecm is not None
        self._resend, self._dead = self._send_pps, Cause.TX_PHDDEAD
        pps = Frame.parse(self._ecm.pps(self._block))
        self._frames([pps], self._await("wait_pps_resp"))

    def _send_rr(self) -> None:
        self._resend = self._send_rr
        self._frames([Frame(FCF.RR)], self._await("wait_pps_resp"))

    def _on_pps_answer(self, fcf: FCF, frame: Frame) -> None:
        ecm = self._ecm
        assert ecm is not None
        if fcf == FCF.RNR:
            self._stop("T4")
            if "T5" not in self._running:
                self._start("T5")
            self._tries = 0
            self._send_rr()
            return
        if fcf not in (FCF.MCF, FCF.PPR):
            return
        self._stop("T4", "T5")
        if fcf == FCF.MCF:
            if self._block + 1 < len(ecm.blocks):
                self._block += 1
                self._send_block()
            else:
                self._page_done(FCF.MCF)
            return
        try:
            self._pending = ecm.answer_ppr(self._block, frame.fif)
        except (T30FrameError, EcmError):
            return
        if not ecm.must_ctc_or_eor(self._block):
            self._send_pending()
        elif self._lower():
            self._send_ctc()
        else:
            self._send_eor()

    def _send_pending(self) -> None:
        """Send the frames the last PPR asked for, then the PPS again."""
        dcs = self._dcs
        assert dcs is not None
        self.result.retransmitted_frames += sum(1 for f in self._pending if f[2] == FCF.FCD)
        self._tries = 0
        self._gap_then(SendEcmFrames(dcs.rate, tuple(self._pending), True), self._after_block)

    def _send_ctc(self) -> None:
        dcs = self._dcs
        assert dcs is not None
        self._resend, self._dead = self._send_ctc, Cause.TX_PHDDEAD
        self._apply_mode(dcs.rate, dcs.resolution, dcs.coding, True)
        fif = bytes([0, dcs.encode()[1]])
        self._frames([Frame(FCF.CTC, fif)], self._await("wait_ctr"))

    def _send_eor(self) -> None:
        assert self._ecm is not None
        self._resend, self._dead = self._send_eor, Cause.TX_ECMPHD
        last = self._block == len(self._ecm.blocks) - 1
        cmd = (self._command().value | 1) if last else 0
        self._frames([Frame(FCF.EOR, bytes([cmd]))], self._await("wait_err"))
