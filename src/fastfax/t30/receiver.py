"""The receiving half of the T.30 engine (the answering station): DIS, DCS and the
training check, non-ECM pages with a copy-quality check, ECM blocks (PPS, PPR, RNR, CTC,
EOR) and the post-page answers. See :mod:`fastfax.t30.engine` for the vocabulary."""

from __future__ import annotations

import dataclasses

from .. import codec
from ..errors import CodecError
from ..page import Page
from .dis import RESOLUTIONS, Dcs, Dis, Rate
from .ecm import EcmError, EcmReceiver
from .engine import Engine
from .events import (
    CarrierDown,
    CarrierUp,
    DataReceived,
    Event,
    FrameReceived,
    Negotiated,
    PageReceived,
    ReceiveEcmFrames,
    ReceivePageData,
    ReceiveTcf,
    WrongCarrier,
)
from .frames import FCF, Frame, Pps, T30FrameError
from .result import Cause, SessionError

__all__ = ["Receiver", "tcf_ok", "COPY_BAD_PERCENT", "COPY_MAX_RUN_MM"]

#: A page is answered RTN when more than this share of its rows were damaged...
COPY_BAD_PERCENT = 10
#: ... or when a run of damaged rows is taller than this (millimetres of paper).
COPY_MAX_RUN_MM = 4
#: Non-zero octets accepted after the page's RTC before the page counts as cut short.
MAX_AFTER_END = 32
_SLICE = 512
_A4_PELS = (1728, 2048, 2432)
_POST_PAGE = {FCF.MPS, FCF.EOM, FCF.EOP, FCF.PRI_MPS, FCF.PRI_EOM, FCF.PRI_EOP}


def tcf_ok(data: bytes, rate: Rate) -> bool:
    """The training check verdict: True when the TCF bytes hold an unbroken run of zero
    bits lasting at least one second at ``rate`` (of the 1.5 s sent)."""
    need = rate.bps
    run = best = 0
    for byte in data:
        if byte == 0:
            run += 8
            continue
        low = (byte & -byte).bit_length() - 1  # zeros before the first 1 (LSB first)
        best = max(best, run + low)
        run = 8 - byte.bit_length()  # zeros after the last 1
    return max(best, run) >= need


def _width_pels(dcs: Dcs) -> int:
    xres = RESOLUTIONS[dcs.resolution][0]
    scale = {204: 1, 200: 1, 300: 1.5, 408: 2, 400: 2}[xres]
    return int(_A4_PELS[dcs.width] * scale)


class Receiver(Engine):
    """The answering station, receiving a fax."""

    def __init__(self, local: Dis, *, rnr_count: int = 0, **common) -> None:
        super().__init__(calling=False, sending=False, **common)
        if not isinstance(rnr_count, int) or rnr_count < 0:
            raise SessionError(f"rnr_count must be a non-negative integer, got {rnr_count!r}")
        self._local = local
        self._rnr_left = rnr_count
        self._dcs: Dcs | None = None
        self._tcf = bytearray()
        self._decoder: codec.Decoder | None = None
        self._rx_failed = False
        self._got_data = False
        self._after_end = 0
        self._ecm: EcmReceiver | None = None
        self._acked: tuple[int, int] | None = None
        self._last_answer: list[Frame] = []
        self._page_no = 0
        self._rows = b""
        self._after_command: FCF | None = None
        self._last_pps: Pps | None = None

    # -- events -----------------------------------------------------------------------
    def _on_connected(self) -> None:
        self._start("T1")
        self._send_dis()

    def _send_dis(self) -> None:
        frames = self._ident_frames(FCF.CSI, FCF.NSF) + [Frame(FCF.DIS, self._local.encode())]

        def wait() -> None:
            self._listen("wait_dcs")
            self._start("T4")

        self._frames(frames, wait)

    def _on_timer(self, name: str) -> None:
        if name == "T1":
            self._end(Cause.T1_EXPIRED, dcn=True)
        elif name == "T4" and self.state == "wait_dcs" and "T1" in self._running:
            self._send_dis()
        elif name == "T4" and self.state == "wait_dcs":
            self._frames([Frame(FCF.CRP)], lambda: self._wait_command("wait_dcs"))
        elif name == "T2":
            if self.state == "wait_dcn":
                self._end(Cause.OK)
            elif self.state in ("page", "ecm"):
                self._end(Cause.RX_NOCARRIER, dcn=True)
            else:
                self._end(Cause.RX_T2EXP, dcn=True)

    def _on_line_dropped(self) -> None:
        if self.state == "closing":
            self._end(self.result.cause)
        else:
            self._end(Cause.OK if self.state == "wait_dcn" else Cause.CALLDROPPED)

    def _answer(self, frames: list[Frame], then) -> None:
        self._last_answer = frames
        self._frames(frames, then)

    def _wait_command(self, state: str = "wait_cmd") -> None:
        self._listen(state)
        self._start("T2")

    def _dispatch(self, event: Event) -> None:
        state = self.state
        if isinstance(event, CarrierUp):
            if state in ("tcf", "page", "ecm"):
                self._stop("T2")
            return
        if state == "tcf":
            self._on_tcf_event(event)
        elif state == "page":
            self._on_page_event(event)
        elif state == "ecm":
            self._on_ecm_event(event)
        elif isinstance(event, FrameReceived):
            self._stop("T4")  # the sender is talking: no DIS repeat over it
            burst = self._take_frame(event)
            if burst:
                self._on_burst(burst)
        elif isinstance(event, CarrierDown) and state == "wait_dcs":
            # A DCS may have been lost or garbled; its TCF would follow. Answer once the
            # line has been quiet for T4: DIS again (within T1) or CRP.
            self._garbled()
            self._start("T4")
        elif isinstance(event, CarrierDown):
            if self._garbled():
                # A garbled command: ask for it again.
                self._stop("T2")
                self._frames([Frame(FCF.CRP)], lambda: self._wait_command(state))
            elif "T2" in self._running:
                self._start("T2")  # a signal came (its frames were lost): wait on

    def _on_burst(self, burst: list[Frame]) -> None:
        fcf = burst[-1].fcf
        self._stop("T2", "T4")
        if fcf == FCF.DCS:
            self._on_dcs(burst)
        elif fcf == FCF.DCN:
            self._on_dcn()
        elif fcf == FCF.CRP and self._last_answer:
            self._answer(self._last_answer, lambda: self._wait_command(self.state))
        elif fcf in _POST_PAGE and (
            self.state == "wait_post_page"
            or (self.state == "wait_dcs" and self._last_answer[-1:] == [Frame(FCF.CFR)])
        ):
            self._on_post_page(fcf)
        elif self.state in ("wait_cmd", "wait_dcn") and fcf in _POST_PAGE:
            # The sender did not hear our answer and repeats its command.
            self._answer(self._last_answer, self._resume_after_answer)
        elif self._ecm is not None and fcf in (FCF.PPS, FCF.RR, FCF.CTC, FCF.EOR):
            self._on_ecm_command(fcf, burst[-1])
        elif self.state == "wait_dcs" and "T1" in self._running:
            self._listen("wait_dcs")
            self._start("T4")
        else:
            self._wait_command(self.state)

    def _on_dcn(self) -> None:
        state = self.state
        if state == "wait_dcn":
            self._end(Cause.OK)
        elif state == "wait_dcs" and not self._dcs:
            self._end(Cause.RX_DCNWHY)
        elif state == "wait_dcs" and self.result.rtn_pages:
            self._end(Cause.RX_DCNNORTN)
        elif state in ("wait_post_page", "wait_pps"):
            self._end(Cause.RX_DCNFAX)
        else:
            self._end(Cause.RX_DCNDATA if self._dcs else Cause.RX_DCNWHY)

    # -- phase B ----------------------------------------------------------------------
    def _on_dcs(self, burst: list[Frame]) -> None:
        self._stop("T1")
        self._note_identity(burst)
        try:
            dcs = Dcs.parse(burst[-1].fif)
        except T30FrameError:
            self._wait_command("wait_dcs")
            return
        self._dcs = dcs
        self._tcf = bytearray()
        self.state = "tcf"
        self._emit(ReceiveTcf(dcs.rate))
        self._start("T2")

    def _on_tcf_event(self, event: Event) -> None:
        dcs = self._dcs
        assert dcs is not None
        if isinstance(event, DataReceived):
            self._tcf += event.data
        elif isinstance(event, WrongCarrier):
            self._stop("T2")
            self._wait_command("wait_dcs")
        elif isinstance(event, CarrierDown):
            self._stop("T2")
            if tcf_ok(self._tcf, dcs.rate):
                self._accept_mode(dcs)
                self._answer([Frame(FCF.CFR)], self._start_page)
            else:
                self._answer([Frame(FCF.FTT)], lambda: self._wait_command("wait_dcs"))

    def _accept_mode(self, dcs: Dcs) -> None:
        coding = dcs.coding
        self._apply_mode(dcs.rate, dcs.resolution, coding, dcs.ecm)
        self._emit(Negotiated(dcs.rate, dcs.resolution, coding, dcs.ecm, self.result.remote_id))
        if dcs.ecm:
            self._ecm = EcmReceiver(frame_size=dcs.frame_size)

    # -- phase C, non-ECM ---------------------------------------------------------------
    def _start_page(self) -> None:
        dcs = self._dcs
        assert dcs is not None
        self._start("T2")
        short = dcs.rate.modem == "v17"
        if dcs.ecm:
            self.state = "ecm"
            self._emit(ReceiveEcmFrames(dcs.rate, short))
            return
        self.state = "page"
        self._decoder = codec.Decoder(
            _width_pels(dcs), dcs.coding, errors="repair", msb_first=False
        )
        self._rx_failed = False
        self._got_data = False
        self._after_end = 0
        self._emit(ReceivePageData(dcs.rate, short))

    def _on_page_event(self, event: Event) -> None:
        decoder = self._decoder
        assert decoder is not None
        if isinstance(event, DataReceived):
            if not self._got_data:
                self._got_data = True
                self._stop("T2")
            data = event.data
            for i in range(0, len(data), _SLICE):
                if self._rx_failed:
                    break
                if decoder.done:
                    # Data after the end of the page: a false RTC in damaged data?
                    self._after_end += len(data[i:].replace(b"\0", b""))
                    self._rx_failed = self._after_end > MAX_AFTER_END
                    break
                try:
                    self._rows += decoder.feed_packed(data[i : i + _SLICE])
                except CodecError:
                    self._rx_failed = True
        elif isinstance(event, WrongCarrier):
            # Frames instead of a page: the page was lost (then a post-page command
            # comes), or the sender missed our last answer and repeats its command.
            self._stop("T2")
            last = self._last_answer[-1].fcf
            if self._got_data:
                self._wait_command("wait_post_page")
            elif last == FCF.CFR:
                # Most likely DCS again (our CFR was lost), then TCF: no CRP over it.
                self._listen("wait_dcs")
                self._start("T2")
            else:
                self._wait_command("wait_cmd")
        elif isinstance(event, CarrierDown):
            if not self._got_data:
                self._emit(ReceivePageData(self._dcs.rate))  # type: ignore[union-attr]
                return
            self._wait_command("wait_post_page")

    def _finish_page(self) -> Page | None:
        """The page just received, or None when nothing usable came."""
        decoder, dcs = self._decoder, self._dcs
        assert decoder is not None and dcs is not None
        rows = self._rows
        self._rows = b""
        if not self._rx_failed:
            try:
                rows += decoder.finish_packed()
            except CodecError:
                self._rx_failed = True
        if decoder.rows == 0:
            return None
        xres, yres = RESOLUTIONS[dcs.resolution]
        return decoder.page(rows, xres, yres)

    def _copy_ok(self, page: Page | None) -> bool:
        if page is None or self._rx_failed:
            return False
        max_run = COPY_MAX_RUN_MM * page.yres / 25.4
        return (
            page.bad_rows * 100 <= page.height * COPY_BAD_PERCENT
            and page.consecutive_bad_rows <= max_run
        )

    # -- phase D ----------------------------------------------------------------------
    def _on_post_page(self, fcf: FCF) -> None:
        page = self._finish_page()
        good = self._copy_ok(page)
        if good:
            assert page is not None
            self._take_page(page)
        else:
            self.result.rtn_pages += 1
            if page is not None:
                self._emit(PageReceived(self._page_no + 1, page, accepted=False))
        self._after_command = fcf if good else None
        self._answer([Frame(FCF.MCF if good else FCF.RTN)], self._resume_after_answer)

    def _take_page(self, page: Page) -> None:
        self._page_no += 1
        self.result.pages.append(page)
        self.result.bad_rows += page.bad_rows
        self._emit(PageReceived(self._page_no, page))

    def _resume_after_answer(self) -> None:
        fcf = self._after_command
        if fcf is None:
            # RTN: the sender retrains (DCS) and sends the page again, or gives up (DCN).
            self._wait_command("wait_dcs")
        elif fcf in (FCF.EOP, FCF.PRI_EOP):
            self._wait_command("wait_dcn")
        elif fcf in (FCF.EOM, FCF.PRI_EOM):
            self._start("T1")  # phase B again
            self._send_dis()
        else:
            self._start_page()

    # -- ECM --------------------------------------------------------------------------
    def _on_ecm_event(self, event: Event) -> None:
        ecm = self._ecm
        assert ecm is not None
        if isinstance(event, FrameReceived):
            self._stop("T2")
            if not event.ok:
                return
            try:
                ecm.add(event.data)
            except (EcmError, T30FrameError):
                return
        elif isinstance(event, (CarrierDown, WrongCarrier)):
            self._stop("T2")
            self._wait_command("wait_pps")

    def _on_ecm_command(self, fcf: FCF, frame: Frame) -> None:
        ecm = self._ecm
        assert ecm is not None
        try:
            if fcf == FCF.PPS:
                pps = Pps.parse(frame.fif)
                if self._acked == (pps.page, pps.block):
                    # Our MCF was lost: the sender repeats the PPS of an acknowledged block.
                    self._answer(self._last_answer, self._resume_after_answer)
                    return
                ecm.ready = self._ready()
                self._last_pps = pps
                answer, fif = ecm.on_pps(frame.encode())
                self._on_ecm_answer(answer, fif, pps)
            elif fcf == FCF.RR:
                ecm.ready = self._ready()
                answer, fif = ecm.on_rr()
                self._on_ecm_answer(answer, fif, self._last_pps)
            elif fcf == FCF.CTC:
                self._on_ctc(frame)
            elif fcf == FCF.EOR:
                ecm.on_eor()
                self._after_command = None
                self._answer([Frame(FCF.ERR)], lambda: self._wait_command("wait_pps"))
            else:
                self._wait_command("wait_pps")
        except (EcmError, T30FrameError):
            self._end(Cause.RX_ECMPHD, dcn=True)

    def _ready(self) -> bool:
        if self._rnr_left > 0:
            self._rnr_left -= 1
            return False
        return True

    def _on_ecm_answer(self, answer: FCF, fif: bytes | None, pps: Pps | None) -> None:
        assert pps is not None and self._ecm is not None
        if answer == FCF.RNR:
            self._answer([Frame(FCF.RNR)], lambda: self._wait_command("wait_pps"))
        elif answer == FCF.PPR:
            assert fif is not None
            self.result.retransmitted_frames += bin(int.from_bytes(fif, "little")).count("1")
            self._answer([Frame(FCF.PPR, fif)], self._start_page)
        else:
            self._acked = (pps.page, pps.block)
            # After PPS-NULL more of the page follows, as after MPS.
            self._after_command = pps.command or FCF.MPS
            if pps.command is not None and not self._ecm_page_done():
                return
            self._answer([Frame(FCF.MCF)], self._resume_after_answer)

    def _ecm_page_done(self) -> bool:
        dcs, ecm = self._dcs, self._ecm
        assert dcs is not None and ecm is not None
        data = ecm.pages.pop()
        xres, yres = RESOLUTIONS[dcs.resolution]
        try:
            page = codec.decode(
                data, _width_pels(dcs), dcs.coding, msb_first=False, xres=xres, yres=yres
            )
        except CodecError:
            self._end(Cause.RX_BADPAGE, dcn=True)
            return False
        self._take_page(page)
        return True

    def _on_ctc(self, frame: Frame) -> None:
        dcs = self._dcs
        assert dcs is not None
        if len(frame.fif) == 2:
            try:
                rate = Rate((frame.fif[1] >> 2) & 0xF)
            except ValueError:
                rate = dcs.rate
            self._dcs = dataclasses.replace(dcs, rate=rate)
            self._apply_mode(rate, dcs.resolution, dcs.coding, True)
        assert self._ecm is not None
        self._ecm.on_ctc()
        self._answer([Frame(FCF.CTR)], self._start_page)
