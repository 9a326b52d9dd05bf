"""Error correction mode bookkeeping (T.4 Annex A, T.30 Annex A), without I/O or clocks.

A page's coded data is cut into *frames* of 64 or 256 octets, and the frames into
*blocks* (partial pages) of at most 256. The sender transmits a block as FCD frames
(each with its frame number 0-255) and three RCP frames, then a PPS whose FIF gives the
post-message command (PPS-NULL inside a page; MPS, EOM or EOP after its last block) and
the page, block and frame counts. The receiver answers MCF when it has every frame of the
block, or PPR with a 256-bit map of the frames to send again. After the fourth PPR for one
block the sender sends CTC (continue, perhaps at a lower speed) or EOR (give up on it).
A receiver that is not ready answers RNR; the sender then polls with RR.

Frames here are HDLC payloads as :class:`fastfax.link.hdlc.Encoder` takes them and
:class:`fastfax.link.hdlc.Decoder` hands them out (address, control, FCF, FIF; no FCS).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import FaxError
from .frames import FCF, Frame, Pps, fcd, parse_fcd, ppr_frames, ppr_map

__all__ = ["EcmError", "EcmSender", "EcmReceiver", "FRAME_SIZES", "MAX_FRAMES", "MAX_PPR"]

FRAME_SIZES = (64, 256)
#: Frames in a block at most.
MAX_FRAMES = 256
#: PPRs for one block after which the sender must send CTC or EOR.
MAX_PPR = 4
#: RCP frames sent at the end of each block.
RCP_COUNT = 3


class EcmError(FaxError, ValueError):
    """ECM data or a frame sequence is invalid (bad size, unknown block, bad frame)."""


def _check_size(frame_size: int) -> int:
    if frame_size not in FRAME_SIZES:
        raise EcmError(f"frame_size must be 64 or 256 octets, got {frame_size!r}")
    return frame_size


def rcp() -> bytes:
    """One RCP frame (return to control for partial page)."""
    return Frame(FCF.RCP, final=True).encode()


class EcmSender:
    """Cuts one page's coded data into blocks of FCD frames and answers PPRs.

    ``page`` is the page counter sent in PPS (modulo 256); ``command`` the post-message
    command that follows the page (MPS, EOM, EOP or a PRI- variant).
    """

    def __init__(
        self,
        data: bytes,
        *,
        frame_size: int = 256,
        page: int = 0,
        command: FCF = FCF.EOP,
        x: bool = True,
    ) -> None:
        self.frame_size = _check_size(frame_size)
        data = bytes(data)
        chunks = [data[i : i + frame_size] for i in range(0, len(data), frame_size)] or [b""]
        if chunks == [b""]:
            raise EcmError("a page needs at least one octet of coded data")
        self.blocks = [chunks[i : i + MAX_FRAMES] for i in range(0, len(chunks), MAX_FRAMES)]
        self.page = page % 256
        self.command = command
        self.x = x
        self.ppr_count = [0] * len(self.blocks)

    def _frames(self, block: int, numbers: Iterable[int]) -> list[bytes]:
        chunks = self._block(block)
        return [fcd(n, chunks[n]) for n in numbers] + [rcp()] * RCP_COUNT

    def _block(self, block: int) -> list[bytes]:
        if not 0 <= block < len(self.blocks):
            raise EcmError(f"no block {block}: the page has {len(self.blocks)}")
        return self.blocks[block]

    def block_frames(self, block: int) -> list[bytes]:
        """Every FCD frame of ``block``, then the RCP frames."""
        return self._frames(block, range(len(self._block(block))))

    def pps(self, block: int) -> bytes:
        """The PPS frame after ``block``: PPS-NULL, or PPS-<command> after the last."""
        last = block == len(self.blocks) - 1
        fif = Pps(
            self.command if last else None, self.page, block % 256, len(self._block(block))
        ).encode(x=self.x)
        return Frame(FCF.PPS, fif, x=self.x).encode()

    def answer_ppr(self, block: int, ppr: bytes) -> list[bytes]:
        """The frames a PPR asks for again (``ppr`` is the PPR frame or its 32-octet FIF),
        then the RCPs. Frame numbers past the block's end are ignored (SpanDSP marks them
        too). Counts the PPR; see :meth:`must_ctc_or_eor`."""
        fif = Frame.parse(ppr).fif if len(ppr) == 35 else bytes(ppr)
        count = len(self._block(block))
        self.ppr_count[block] += 1
        return self._frames(block, [n for n in ppr_frames(fif) if n < count])

    def must_ctc_or_eor(self, block: int) -> bool:
        """True after the fourth PPR for ``block``: send CTC (and go on) or EOR."""
        return self.ppr_count[block] >= MAX_PPR

    def continue_to_correct(self, block: int) -> None:
        """CTC was answered by CTR: the PPR count for ``block`` starts again."""
        self._block(block)
        self.ppr_count[block] = 0


class EcmReceiver:
    """Collects FCD frames of one block in any order, with duplicates and losses; says
    which are missing; keeps the page's data once each block is complete. ``max_page``
    bounds the octets of one page; set :attr:`ready` to False to answer RNR."""

    def __init__(self, *, frame_size: int = 256, max_page: int = 64 << 20) -> None:
        self.frame_size = _check_size(frame_size)
        self.max_page = max_page
        self.pages: list[bytes] = []
        self.ready = True
        self._page = bytearray()
        self._reset_block()

    def _reset_block(self) -> None:
        self._frames: dict[int, bytes] = {}
        self._pps: Pps | None = None
        self.expected: int | None = None
        self.rcp_seen = False

    def add(self, frame: bytes) -> None:
        """Take a received FCD or RCP frame (good FCS only); duplicates replace."""
        f = Frame.parse(frame)
        if f.fcf == FCF.RCP:
            self.rcp_seen = True
            return
        if f.fcf != FCF.FCD:
            raise EcmError(f"{f.name} is not an image frame (FCD or RCP)")
        number, data = parse_fcd(frame)
        if len(data) > self.frame_size:
            raise EcmError(f"frame {number} has {len(data)} octets, over {self.frame_size}")
        self._frames[number] = data

    def missing(self) -> list[int]:
        """Frame numbers still missing. Before the PPS, frames up to the highest seen."""
        count = self.expected if self.expected is not None else max(self._frames, default=-1) + 1
        return [n for n in range(count) if n not in self._frames]

    def on_pps(self, pps: bytes) -> tuple[FCF, bytes | None]:
        """Take the PPS frame that ends a block; return the response to send and its FIF:
        (RNR, None) when not :attr:`ready`; (PPR, map) when frames are missing; else
        (MCF, None), the block's data added to the page and, after PPS-MPS/EOM/EOP, the
        page finished (appended to :attr:`pages`)."""
        f = Frame.parse(pps)
        if f.fcf != FCF.PPS:
            raise EcmError(f"{f.name} where PPS was expected")
        self._pps = Pps.parse(f.fif)
        # After frames were sent again, SpanDSP's PPS counts only those: the block still
        # has as many frames as its first PPS said.
        self.expected = max(self._pps.frames, self.expected or 0)
        return self._answer()

    def on_rr(self) -> tuple[FCF, bytes | None]:
        """RR from the sender after an RNR: the answer to the last PPS, given again."""
        if self._pps is None:
            raise EcmError("RR before any PPS")
        return self._answer()

    def on_ctc(self) -> FCF:
        """CTC after a fourth PPR: keep the frames received so far and answer CTR."""
        return FCF.CTR

    def on_eor(self) -> FCF:
        """EOR: the sender gave up on this block; drop it and answer ERR."""
        self._reset_block()
        return FCF.ERR

    def _answer(self) -> tuple[FCF, bytes | None]:
        info = self._pps
        assert info is not None
        if not self.ready:
            return FCF.RNR, None
        gaps = self.missing()
        if gaps:
            return FCF.PPR, ppr_map(gaps)
        block = b"".join(self._frames[n] for n in range(self.expected or 0))
        if len(self._page) + len(block) > self.max_page:
            raise EcmError(f"page data over max_page={self.max_page} octets")
        self._page += block
        self._reset_block()
        if info.command is not None:
            self.pages.append(bytes(self._page))
            self._page = bytearray()
        return FCF.MCF, None
