"""DIS / DTC / DCS information fields (T.30 Table 2) as typed objects, and the choice
of a DCS from a received DIS.

Bit ``n`` of Table 2 (1-based) is bit ``(n - 1) % 8`` (least significant first) of FIF
octet ``(n - 1) // 8``. Bits 24, 32, 40, ... are *extend* bits: set when another octet
follows. Multi-bit fields read with their lowest-numbered bit as the least significant
bit of the value (bits 11-14: ``b11 + 2*b12 + 4*b13 + 8*b14``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from .frames import T30FrameError

__all__ = [
    "Rates",
    "Rate",
    "Width",
    "Length",
    "ScanTime",
    "Dis",
    "Dcs",
    "choose_dcs",
    "RESOLUTIONS",
]


class Rates(IntEnum):
    """Modems offered in a DIS/DTC (bits 11-14)."""

    V27TER_FALLBACK = 0x0  # V.27 ter at 2400 bit/s only
    V29 = 0x1
    V27TER = 0x2
    V27TER_V29 = 0x3
    V27TER_V29_V17 = 0xB

    @property
    def modems(self) -> frozenset[str]:
        return _OFFERED[self]


_OFFERED = {
    Rates.V27TER_FALLBACK: frozenset({"v27ter_fallback"}),
    Rates.V29: frozenset({"v29"}),
    Rates.V27TER: frozenset({"v27ter"}),
    Rates.V27TER_V29: frozenset({"v27ter", "v29"}),
    Rates.V27TER_V29_V17: frozenset({"v27ter", "v29", "v17"}),
}


class Rate(IntEnum):
    """The modem and bit rate a DCS selects (bits 11-14)."""

    V27TER_2400 = 0x0
    V27TER_4800 = 0x2
    V29_7200 = 0x3
    V29_9600 = 0x1
    V17_7200 = 0xB
    V17_9600 = 0x9
    V17_12000 = 0xA
    V17_14400 = 0x8

    @property
    def modem(self) -> str:
        return self.name.split("_")[0].lower()

    @property
    def bps(self) -> int:
        return int(self.name.split("_")[1])


#: Rates from fastest to slowest, the order a sender falls back in.
RATE_ORDER = [
    Rate.V17_14400,
    Rate.V17_12000,
    Rate.V29_9600,
    Rate.V17_9600,
    Rate.V29_7200,
    Rate.V17_7200,
    Rate.V27TER_4800,
    Rate.V27TER_2400,
]


class Width(IntEnum):
    """Bits 17-18. In a DIS/DTC: the widest accepted; in a DCS: the width sent."""

    A4 = 0  # 215 mm, 1728 pels at R8
    B4 = 1  # 255 mm, 2048 pels
    A3 = 2  # 303 mm, 2432 pels


class Length(IntEnum):
    """Bits 19-20. In a DIS/DTC: the longest accepted; in a DCS: the length sent."""

    A4 = 0
    B4 = 1
    UNLIMITED = 2


class ScanTime(IntEnum):
    """Bits 21-23: minimum scan line time. Values 3, 5 and 6 exist only in a DIS/DTC and
    say the time at 7.7 lines/mm is half the one at 3.85."""

    MS20 = 0
    MS5 = 1
    MS10 = 2
    MS20_HALF = 3
    MS40 = 4
    MS40_HALF = 5
    MS10_HALF = 6
    MS0 = 7

    @property
    def ms(self) -> int:
        return int(self.name[2:].split("_")[0])

    @property
    def halved(self) -> bool:
        return self.name.endswith("_HALF")


# Boolean fields shared by DIS/DTC and DCS, and each one's own: name -> Table 2 bit.
_COMMON = {
    "t37": 1,
    "t38": 3,
    "mobile_3g": 4,
    "fine": 15,
    "two_d": 16,
    "uncompressed": 26,
    "ecm": 27,
    "t6": 31,
    "fnv": 33,
    "t43": 36,
    "plane_interleave": 37,
    "g726": 38,
    "superfine": 41,
    "r300": 42,
    "r16": 43,
    "subaddress": 49,
    "bft": 53,
    "dtm": 54,
    "edi": 55,
    "btm": 57,
    "character_mode": 60,
    "mixed_mode": 62,
    "digital_network": 66,
    "duplex": 67,
    "full_colour": 69,
    "twelve_bit": 71,
    "no_subsampling": 73,
    "custom_illuminant": 74,
    "custom_gamut": 75,
    "letter": 76,
    "legal": 77,
    "t85": 78,
    "t85_l0": 79,
    "r600": 105,
    "r1200": 106,
    "r300_600": 107,
    "r400_800": 108,
    "r600_1200": 109,
    "t45": 116,
    "t38_flow_control": 121,
    "t38_fax": 123,
}
_DIS_ONLY = {
    "v8": 6,
    "ecm_64_preferred": 7,
    "ready_to_transmit": 9,
    "can_receive": 10,
    "multiple_selective_polling": 34,
    "polled_subaddress": 35,
    "inch_preferred": 44,
    "metric_preferred": 45,
    "half_scan_time_high_res": 46,
    "selective_polling": 47,
    "password": 50,
    "ready_to_transmit_data_file": 51,
    "ready_to_transmit_mixed_mode": 59,
    "jpeg": 68,
}
_DCS_ONLY = {"receive": 10, "frame_64": 28, "inch": 44, "sender_id": 50, "jpeg": 68}
_MULTI = {"rate": (11, 4), "width": (17, 2), "length": (19, 2), "scan_time": (21, 3)}
_EXTEND = frozenset(range(24, 8 * 32 + 1, 8))

#: Resolution names and their (pels/inch across, lines/inch down), for DIS/DCS views.
RESOLUTIONS = {
    "R8x3.85": (204, 98),
    "R8x7.7": (204, 196),
    "R8x15.4": (204, 391),
    "R16x15.4": (408, 391),
    "200x100": (200, 100),
    "200x200": (200, 200),
    "300x300": (300, 300),
    "400x400": (400, 400),
    "600x600": (600, 600),
    "1200x1200": (1200, 1200),
    "300x600": (300, 600),
    "400x800": (400, 800),
    "600x1200": (600, 1200),
}


def _bits_of(fif: bytes, name: str) -> set[int]:
    """Set bit numbers of a FIF, up to the octet whose extend bit is clear."""
    if len(fif) < 3:
        raise T30FrameError(
            f"FIF of {len(fif)} octets, at least 3 expected", frame=name, octet=3 + len(fif)
        )
    end = len(fif)
    for i in range(2, len(fif)):
        if not fif[i] & 0x80:
            end = i + 1
            break
    else:
        if fif[-1] & 0x80:
            raise T30FrameError(
                "extend bit set in the last octet", frame=name, octet=3 + len(fif) - 1
            )
    return {8 * i + k + 1 for i in range(end) for k in range(8) if fif[i] >> k & 1}


def _field(bits: set[int], start: int, width: int) -> int:
    return sum(1 << k for k in range(width) if start + k in bits)


class _Fields:
    """Encode/parse machinery shared by :class:`Dis` and :class:`Dcs`."""

    _BOOLS: dict[str, int] = {}
    _NAME = ""

    def encode(self) -> bytes:
        """The FIF octets: at least 3, extend bits set on all but the last."""
        bits = {b for name, b in self._BOOLS.items() if getattr(self, name)}
        for name, (start, width) in _MULTI.items():
            value = int(getattr(self, name))
            bits |= {start + k for k in range(width) if value >> k & 1}
        bits |= set(self.extra_bits)
        bits -= _EXTEND
        octets = max(3, (max(bits) + 7) // 8 if bits else 3)
        out = bytearray(octets)
        for b in bits | {b for b in _EXTEND if b < 8 * octets - 7 and b >= 24}:
            out[(b - 1) >> 3] |= 1 << ((b - 1) & 7)
        return bytes(out)

    @classmethod
    def _parse(cls, fif: bytes, name: str, enums: dict) -> dict:
        bits = _bits_of(bytes(fif), name or cls._NAME)
        kw: dict = {n: b in bits for n, b in cls._BOOLS.items()}
        for key, (start, width) in _MULTI.items():
            raw = _field(bits, start, width)
            try:
                kw[key] = enums[key](raw)
            except ValueError:
                octet = 3 + (start - 1) // 8
                raise T30FrameError(
                    f"bits {start}-{start + width - 1} hold {raw:#x}, not a valid {key}",
                    frame=name or cls._NAME,
                    octet=octet,
                ) from None
        known = set(cls._BOOLS.values()) | _EXTEND
        known |= {s + k for s, w in _MULTI.values() for k in range(w)}
        kw["extra_bits"] = frozenset(bits - known)
        return kw


def _bool_fields(names: dict[str, int]) -> list:
    return [(n, bool, field(default=False)) for n in names]


@dataclass(frozen=True)
class _DisBase(_Fields):
    rate: Rates = Rates.V27TER
    width: Width = Width.A4
    length: Length = Length.A4
    scan_time: ScanTime = ScanTime.MS20
    extra_bits: frozenset[int] = frozenset()


@dataclass(frozen=True)
class _DcsBase(_Fields):
    rate: Rate = Rate.V27TER_4800
    width: Width = Width.A4
    length: Length = Length.A4
    scan_time: ScanTime = ScanTime.MS20
    extra_bits: frozenset[int] = frozenset()


_DIS_BOOLS = {**_COMMON, **_DIS_ONLY}
_DCS_BOOLS = {**_COMMON, **_DCS_ONLY}


class Dis(
    dataclasses.make_dataclass("Dis", _bool_fields(_DIS_BOOLS), bases=(_DisBase,), frozen=True)
):
    """A DIS or DTC FIF: what a station can do. Boolean fields are named after the Table 2
    bits (``fine`` = bit 15, R8x7.7 and/or 200x200; ``superfine`` = 41, R8x15.4;
    ``r16`` = 43, R16x15.4 and/or 400x400; ``r300`` = 42; ``two_d`` = 16, T.4 2-D;
    ``t6`` = 31; ``ecm`` = 27; ``ecm_64_preferred`` = 7; ``selective_polling`` = 47, SEP;
    ``subaddress`` = 49, SUB; ``password`` = 50, PWD; ...). ``extra_bits`` holds set bits
    this class has no name for, so parse then encode gives the same octets."""

    _BOOLS = _DIS_BOOLS
    _NAME = "DIS"

    @classmethod
    def parse(cls, fif: bytes, name: str = "DIS") -> Dis:
        """Parse a DIS or DTC FIF (``name`` is used in errors)."""
        return cls(
            **cls._parse(
                fif, name, {"rate": Rates, "width": Width, "length": Length, "scan_time": ScanTime}
            )
        )

    @property
    def resolutions(self) -> frozenset[str]:
        """Resolutions this station accepts (names from :data:`RESOLUTIONS`)."""
        inch = self.inch_preferred or not self.metric_preferred
        metric = self.metric_preferred or not self.inch_preferred
        out = {"R8x3.85"} | ({"200x100"} if inch else set())
        pairs = [
            (self.fine, "R8x7.7", "200x200"),
            (self.superfine, "R8x15.4", None),
            (self.r16, "R16x15.4", "400x400"),
        ]
        for ok, metric_name, inch_name in pairs:
            if ok and metric:
                out.add(metric_name)
            if ok and inch and inch_name:
                out.add(inch_name)
        for flag, name in [
            (self.r300, "300x300"),
            (self.r600, "600x600"),
            (self.r1200, "1200x1200"),
            (self.r300_600, "300x600"),
            (self.r400_800, "400x800"),
            (self.r600_1200, "600x1200"),
        ]:
            if flag:
                out.add(name)
        return frozenset(out)


class Dcs(
    dataclasses.make_dataclass("Dcs", _bool_fields(_DCS_BOOLS), bases=(_DcsBase,), frozen=True)
):
    """A DCS FIF: the mode the sender chose. ``frame_64`` (bit 28) selects 64-octet ECM
    frames; ``inch`` (bit 44) says the resolution is inch-based; other names as in
    :class:`Dis`."""

    _BOOLS = _DCS_BOOLS
    _NAME = "DCS"

    @classmethod
    def parse(cls, fif: bytes, name: str = "DCS") -> Dcs:
        """Parse a DCS FIF."""
        return cls(
            **cls._parse(
                fif, name, {"rate": Rate, "width": Width, "length": Length, "scan_time": ScanTime}
            )
        )

    @property
    def coding(self) -> Literal["mh", "mr", "mmr"]:
        """The coding selected: "mmr" (T.6), "mr" (T.4 2-D) or "mh" (T.4 1-D)."""
        return "mmr" if self.t6 else "mr" if self.two_d else "mh"

    @property
    def resolution(self) -> str:
        """The resolution selected (a key of :data:`RESOLUTIONS`)."""
        for flag, name in [
            (self.r600, "600x600"),
            (self.r1200, "1200x1200"),
            (self.r300_600, "300x600"),
            (self.r400_800, "400x800"),
            (self.r600_1200, "600x1200"),
            (self.r300, "300x300"),
        ]:
            if flag:
                return name
        if self.r16:
            return "400x400" if self.inch else "R16x15.4"
        if self.superfine:
            return "R8x15.4"
        if self.fine:
            return "200x200" if self.inch else "R8x7.7"
        return "200x100" if self.inch else "R8x3.85"

    @property
    def frame_size(self) -> int:
        """ECM frame size in octets (64 or 256)."""
        return 64 if self.frame_64 else 256


_RES_BITS = {
    "R8x3.85": {},
    "200x100": {"inch": True},
    "R8x7.7": {"fine": True},
    "200x200": {"fine": True, "inch": True},
    "R8x15.4": {"superfine": True},
    "R16x15.4": {"r16": True},
    "400x400": {"r16": True, "inch": True},
    "300x300": {"r300": True, "inch": True},
    "600x600": {"r600": True, "inch": True},
    "1200x1200": {"r1200": True, "inch": True},
    "300x600": {"r300_600": True, "inch": True},
    "400x800": {"r400_800": True, "inch": True},
    "600x1200": {"r600_1200": True, "inch": True},
}
_FINE_RES = {"R8x7.7", "200x200"}


def _offered_rates(rates: Rates) -> set[Rate]:
    modems = rates.modems
    out = {Rate.V27TER_2400}
    if "v27ter" in modems:
        out.add(Rate.V27TER_4800)
    if "v29" in modems:
        out |= {Rate.V29_7200, Rate.V29_9600}
    if "v17" in modems:
        out |= {Rate.V17_7200, Rate.V17_9600, Rate.V17_12000, Rate.V17_14400}
    return out


def _scan_time(remote: ScanTime, resolution: str, half_high: bool, ecm: bool) -> ScanTime:
    if ecm:
        return ScanTime.MS0
    ms = remote.ms
    if remote.halved and resolution in _FINE_RES | {"R8x15.4", "R16x15.4", "400x400"}:
        ms //= 2
        if half_high and resolution in {"R8x15.4", "R16x15.4", "400x400"}:
            ms //= 2
    return {
        0: ScanTime.MS0,
        5: ScanTime.MS5,
        10: ScanTime.MS10,
        20: ScanTime.MS20,
        40: ScanTime.MS40,
    }.get(ms, ScanTime.MS5 if ms < 10 else ScanTime.MS10)


def choose_dcs(
    remote: Dis,
    local: Dis,
    *,
    resolution: str = "R8x3.85",
    width: Width = Width.A4,
    length: Length = Length.A4,
    max_rate: Rate | None = None,
) -> Dcs:
    """The best DCS for sending a page of ``resolution``, ``width`` and ``length`` to a
    station that sent ``remote``, given our own capabilities ``local``.

    Picks the fastest modem both offer (no faster than ``max_rate``, for fallback after a
    failed training), ECM when both have it (then 64-octet frames if the receiver prefers
    them), T.6 over 2-D over 1-D coding, and the receiver's minimum scan line time.
    Raises :class:`T30FrameError` when the receiver cannot take the page.
    """
    if not remote.can_receive:
        raise T30FrameError("the remote station is not ready to receive", frame="DIS")
    if resolution not in RESOLUTIONS:
        raise T30FrameError(f"unknown resolution {resolution!r}")
    if resolution not in remote.resolutions or resolution not in local.resolutions:
        raise T30FrameError(
            f"resolution {resolution} is not accepted by both stations", frame="DIS"
        )
    if width > remote.width or width > local.width:
        raise T30FrameError(f"width {width.name} is wider than accepted", frame="DIS")
    if length > remote.length:
        raise T30FrameError(f"length {length.name} is longer than accepted", frame="DIS")
    common = _offered_rates(remote.rate) & _offered_rates(local.rate)
    order = RATE_ORDER[RATE_ORDER.index(max_rate) :] if max_rate is not None else RATE_ORDER
    rate = next(r for r in order if r in common or r == Rate.V27TER_2400)
    ecm = remote.ecm and local.ecm
    t6 = ecm and remote.t6 and local.t6
    return Dcs(
        receive=True,
        rate=rate,
        width=width,
        length=length,
        scan_time=_scan_time(remote.scan_time, resolution, remote.half_scan_time_high_res, ecm),
        ecm=ecm,
        frame_64=ecm and remote.ecm_64_preferred,
        t6=t6,
        two_d=not t6 and remote.two_d and local.two_d,
        **_RES_BITS[resolution],
    )
