"""T.30 HDLC frames: address, control, FCF and FIF; identities, NSF, PPS, PPR, FCD.

Octets are as they travel in an HDLC frame, each octet's first bit on the line in its
least significant bit (the convention of SpanDSP's ``t30_fcf.h``). T.30 writes FCFs
first bit leftmost, so DIS "0000 0001" is the octet 0x80 here. Frames sent after a
station received a valid DIS carry the *X bit* (the FCF's first bit, 0x01 here) as 1 when
sent by that station (normally the caller).

A frame is ``0xFF`` (address), ``0x03`` or ``0x13`` (control; 0x13 marks the last frame
of a sequence), FCF, then the FIF. The FCS is the HDLC layer's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..errors import FaxError

__all__ = [
    "FCF",
    "T30FrameError",
    "Frame",
    "ADDRESS",
    "CONTROL",
    "CONTROL_FINAL",
    "IDENT_LEN",
    "has_x_bit",
    "fcf_of",
    "encode_ident",
    "decode_ident",
    "Nsf",
    "Pps",
    "ppr_map",
    "ppr_frames",
    "fcd",
    "parse_fcd",
]

ADDRESS = 0xFF
CONTROL = 0x03
CONTROL_FINAL = 0x13
#: Octets of a TSI / CSI / CIG / SUB / SEP / PWD / SID FIF.
IDENT_LEN = 20


class T30FrameError(FaxError, ValueError):
    """A T.30 frame could not be parsed or built; ``frame`` names it (or is None) and
    ``octet`` is the 0-based index of the offending octet (or None)."""

    def __init__(self, message: str, *, frame: str | None = None, octet: int | None = None):
        where = f"{frame or 'frame'}" + (f", octet {octet}" if octet is not None else "")
        super().__init__(f"{where}: {message}")
        self.frame = frame
        self.octet = octet


class FCF(IntEnum):
    """Facsimile control fields (X bit clear)."""

    # Initial identification (first bit 0, no X bit).
    DIS = 0x80
    CSI = 0x40
    NSF = 0x20
    # Command to send (first bit 1, no X bit).
    DTC = 0x81
    CIG = 0x41
    NSC = 0x21
    PWD = 0xC1
    SEP = 0xA1
    PSA = 0x61
    # Commands and responses with the X bit.
    DCS = 0x82
    TSI = 0x42
    NSS = 0x22
    SUB = 0xC2
    SID = 0xA2
    CTC = 0x12
    CFR = 0x84
    FTT = 0x44
    CTR = 0xC4
    EOM = 0x8E
    MPS = 0x4E
    EOP = 0x2E
    PRI_EOM = 0x9E
    PRI_MPS = 0x5E
    PRI_EOP = 0x3E
    EOS = 0x1E
    PPS = 0xBE
    EOR = 0xCE
    RR = 0x6E
    MCF = 0x8C
    RTP = 0xCC
    RTN = 0x4C
    PIP = 0xAC
    PIN = 0x2C
    PPR = 0xBC
    RNR = 0xEC
    ERR = 0x1C
    DCN = 0xFA
    CRP = 0x1A
    FNV = 0xCA
    # T.4 Annex A image frames (no X bit).
    FCD = 0x06
    RCP = 0x86


_NO_X = {
    FCF.DIS,
    FCF.CSI,
    FCF.NSF,
    FCF.DTC,
    FCF.CIG,
    FCF.NSC,
    FCF.PWD,
    FCF.SEP,
    FCF.PSA,
    FCF.FCD,
    FCF.RCP,
}
_BY_OCTET = {f.value: f for f in FCF}
_IDENT = {FCF.CSI, FCF.TSI, FCF.CIG, FCF.SUB, FCF.SEP, FCF.PWD, FCF.SID, FCF.PSA}
_CAPS = {FCF.DIS, FCF.DTC, FCF.DCS}
_NSX = {FCF.NSF, FCF.NSS, FCF.NSC}
# FIF length rules: exact lengths; the rest below have none at all.
_FIF_LEN = {FCF.PPS: 4, FCF.PPR: 32, FCF.CTC: 2, FCF.EOR: 1, FCF.ERR: 0}
_FREE = _IDENT | _CAPS | _NSX | {FCF.FCD, FCF.FNV, FCF.EOR}


def has_x_bit(fcf: FCF) -> bool:
    """True for FCFs whose first bit is the X bit (the DCS group and all later frames)."""
    return fcf not in _NO_X


def fcf_of(octet: int) -> tuple[FCF, bool]:
    """The FCF and X bit of an FCF octet; raise :class:`T30FrameError` if unknown."""
    if octet in _BY_OCTET and _BY_OCTET[octet] in _NO_X:
        return _BY_OCTET[octet], False
    fcf = _BY_OCTET.get(octet & 0xFE)
    if fcf is None or fcf in _NO_X:
        raise T30FrameError(f"unknown FCF 0x{octet:02X}", octet=2)
    return fcf, bool(octet & 1)


@dataclass(frozen=True)
class Frame:
    """One T.30 frame. ``fif`` is the information field as sent (for identities, use
    :func:`encode_ident` / :func:`decode_ident`; for DIS/DCS, :mod:`fastfax.t30.dis`)."""

    fcf: FCF
    fif: bytes = b""
    x: bool = False
    final: bool = True

    def __post_init__(self) -> None:
        # Frames of the DIS and DTC groups and the image frames have no X bit.
        if self.x and not has_x_bit(self.fcf):
            object.__setattr__(self, "x", False)

    def encode(self) -> bytes:
        """Address, control, FCF (with the X bit where it applies) and FIF."""
        check_fif(self.fcf, self.fif)
        octet = self.fcf.value | (1 if self.x else 0)
        control = CONTROL_FINAL if self.final else CONTROL
        return bytes([ADDRESS, control, octet]) + bytes(self.fif)

    @classmethod
    def parse(cls, data: bytes) -> Frame:
        """Parse a frame as the HDLC layer hands it out (FCS removed)."""
        data = bytes(data)
        if len(data) < 3:
            raise T30FrameError(f"{len(data)} octets, at least 3 needed", octet=len(data))
        if data[0] != ADDRESS:
            raise T30FrameError(f"address 0x{data[0]:02X}, not 0xFF", octet=0)
        if data[1] not in (CONTROL, CONTROL_FINAL):
            raise T30FrameError(f"control 0x{data[1]:02X}, not 0x03 or 0x13", octet=1)
        fcf, x = fcf_of(data[2])
        check_fif(fcf, data[3:])
        return cls(fcf, data[3:], x, data[1] == CONTROL_FINAL)

    @property
    def name(self) -> str:
        """The frame's T.30 name (PRI_EOM is PRI-EOM)."""
        return self.fcf.name.replace("_", "-")


def check_fif(fcf: FCF, fif: bytes) -> None:
    """Raise :class:`T30FrameError` when ``fif`` cannot be the FIF of ``fcf``."""
    name = fcf.name.replace("_", "-")
    n = len(fif)
    if fcf in _FIF_LEN and n != _FIF_LEN[fcf]:
        at = 3 + min(n, _FIF_LEN[fcf])
        raise T30FrameError(f"FIF of {n} octets, {_FIF_LEN[fcf]} expected", frame=name, octet=at)
    if fcf in _IDENT and n != IDENT_LEN:
        at = 3 + min(n, IDENT_LEN)
        raise T30FrameError(f"FIF of {n} octets, {IDENT_LEN} expected", frame=name, octet=at)
    if fcf in _CAPS and n < 3:
        raise T30FrameError(f"FIF of {n} octets, at least 3 expected", frame=name, octet=3 + n)
    if fcf in _NSX and n < 3:
        raise T30FrameError(
            "FIF shorter than a T.35 country and provider code", frame=name, octet=3 + n
        )
    if fcf == FCF.FCD and n < 2:
        raise T30FrameError("FIF needs a frame number and data", frame=name, octet=3 + n)
    if fcf not in _FIF_LEN and fcf not in _FREE and n:
        raise T30FrameError(f"{n} unexpected FIF octets", frame=name, octet=3)


# ---------------------------------------------------------------------------------------
# Identities


def encode_ident(ident: str) -> bytes:
    """A TSI/CSI/CIG (or SUB/SEP/PWD/SID) FIF: up to 20 printable ASCII characters, padded
    with spaces on the right, sent last character first."""
    if not isinstance(ident, str) or len(ident) > IDENT_LEN:
        raise T30FrameError(
            f"identity must be a str of at most {IDENT_LEN} characters, got {ident!r}"
        )
    if not all(" " <= c <= "~" for c in ident):
        raise T30FrameError(f"identity {ident!r} has characters outside printable ASCII")
    return ident.ljust(IDENT_LEN).encode("ascii")[::-1]


def decode_ident(fif: bytes, frame: str = "identity") -> str:
    """The identity in a TSI/CSI/CIG FIF, spaces trimmed."""
    if len(fif) != IDENT_LEN:
        raise T30FrameError(f"FIF of {len(fif)} octets, {IDENT_LEN} expected", frame=frame)
    for i, c in enumerate(fif):
        if not 0x20 <= c <= 0x7E:
            raise T30FrameError(f"octet 0x{c:02X} is not printable ASCII", frame=frame, octet=3 + i)
    return fif[::-1].decode("ascii").strip(" ")


# ---------------------------------------------------------------------------------------
# NSF / NSS / NSC

#: T.35 country codes of a few countries whose fax makers are common.
COUNTRIES = {
    0x00: "Japan",
    0x04: "Germany",
    0x20: "Canada",
    0x26: "China",
    0x3D: "France",
    0x59: "Italy",
    0x61: "Korea",
    0xB4: "United Kingdom",
    0xB5: "United States",
}
#: (country, provider code) -> vendor, for the few codes this module knows.
VENDORS = {
    (0x00, b"\x00\x09"): "Xerox/Toshiba",
    (0x00, b"\x00\x0e"): "Panasonic",
    (0x00, b"\x00\x11"): "Canon",
}


@dataclass(frozen=True)
class Nsf:
    """A non-standard facilities FIF: T.35 country code (one octet, or 0xFF and a second
    octet), two octets of terminal provider code, then the vendor's own octets."""

    country: int
    provider: bytes
    data: bytes = b""

    def encode(self) -> bytes:
        """The FIF octets."""
        if not 0 <= self.country <= 0xFFFF or (self.country > 0xFF and self.country >> 8 != 0xFF):
            raise T30FrameError(f"bad T.35 country code {self.country:#x}", frame="NSF")
        if len(self.provider) != 2:
            raise T30FrameError("the provider code is two octets", frame="NSF")
        head = self.country.to_bytes(2 if self.country > 0xFF else 1, "big")
        return head + bytes(self.provider) + bytes(self.data)

    @classmethod
    def parse(cls, fif: bytes, frame: str = "NSF") -> Nsf:
        """Parse an NSF, NSS or NSC FIF."""
        head = 2 if fif[:1] == b"\xff" else 1
        if len(fif) < head + 2:
            raise T30FrameError(
                "FIF shorter than a T.35 country and provider code", frame=frame, octet=3 + len(fif)
            )
        country = int.from_bytes(fif[:head], "big")
        return cls(country, bytes(fif[head : head + 2]), bytes(fif[head + 2 :]))

    @property
    def country_name(self) -> str | None:
        """The country, when this module knows the code."""
        return COUNTRIES.get(self.country)

    @property
    def vendor(self) -> str | None:
        """The maker, when this module knows the code."""
        return VENDORS.get((self.country, self.provider))


# ---------------------------------------------------------------------------------------
# ECM frames: PPS, PPR, FCD


@dataclass(frozen=True)
class Pps:
    """A PPS FIF: the post-message command that follows (None for PPS-NULL, or MPS, EOM,
    EOP, PRI-*), page counter, block counter (both modulo 256) and frames in the block
    (1 to 256; sent as the count minus one)."""

    command: FCF | None
    page: int
    block: int
    frames: int

    _ALLOWED = (None, FCF.MPS, FCF.EOM, FCF.EOP, FCF.PRI_MPS, FCF.PRI_EOM, FCF.PRI_EOP)

    def encode(self, x: bool = False) -> bytes:
        """The four FIF octets; ``x`` sets the X bit of the command octet."""
        if self.command not in self._ALLOWED:
            raise T30FrameError(f"{self.command} cannot follow PPS", frame="PPS")
        if not (0 <= self.page <= 255 and 0 <= self.block <= 255 and 1 <= self.frames <= 256):
            raise T30FrameError(f"counters out of range: {self}", frame="PPS")
        cmd = 0 if self.command is None else self.command.value | (1 if x else 0)
        return bytes([cmd, self.page, self.block, self.frames - 1])

    @classmethod
    def parse(cls, fif: bytes) -> Pps:
        """Parse the four FIF octets of a PPS."""
        check_fif(FCF.PPS, fif)
        command = None
        if fif[0] & 0xFE:
            command = _BY_OCTET.get(fif[0] & 0xFE)
            if command not in cls._ALLOWED:
                raise T30FrameError(f"0x{fif[0]:02X} cannot follow PPS", frame="PPS", octet=3)
        return cls(command, fif[1], fif[2], fif[3] + 1)


def ppr_map(missing: set[int] | list[int]) -> bytes:
    """A PPR FIF: 256 bits, bit ``n`` (octet n // 8, bit n % 8) set for frame ``n``
    to be sent again."""
    out = bytearray(32)
    for n in missing:
        if not 0 <= n <= 255:
            raise T30FrameError(f"frame number {n} is not 0 to 255", frame="PPR")
        out[n >> 3] |= 1 << (n & 7)
    return bytes(out)


def ppr_frames(fif: bytes) -> list[int]:
    """The frame numbers a PPR FIF asks for, in order."""
    check_fif(FCF.PPR, fif)
    return [n for n in range(256) if fif[n >> 3] >> (n & 7) & 1]


def fcd(number: int, data: bytes, final: bool = False) -> bytes:
    """An FCD frame (FCS excluded): frame number 0-255 and 64 or 256 octets of data.
    ``final`` sets the control octet to 0x13 (ECM frames normally use 0x03)."""
    if not 0 <= number <= 255:
        raise T30FrameError(f"frame number {number} is not 0 to 255", frame="FCD")
    return Frame(FCF.FCD, bytes([number]) + bytes(data), final=final).encode()


def parse_fcd(frame: bytes) -> tuple[int, bytes]:
    """(frame number, data) of an FCD frame."""
    f = Frame.parse(frame)
    if f.fcf != FCF.FCD:
        raise T30FrameError(f"{f.name} where FCD was expected", frame=f.name, octet=2)
    return f.fif[0], f.fif[1:]
