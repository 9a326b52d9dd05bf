"""Deterministic tests of the T.4 / T.6 codec: code words, options, streaming, repair.

Expected bit strings are written out from the code tables of ITU-T T.4 (Tables 1-4)
and T.6 (Table 1), independently of the tables inside ``fastfax._codec``.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from fastfax import CodecError, LimitError, Page, codec

EOL = "000000000001"
#: An EOL anywhere in coded data: valid T.4 code words never hold 11 zeros in a row.
EOL_RE = re.compile("0{11}1")


def to_bits(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


def from_bits(bits: str) -> bytes:
    bits = bits.replace(" ", "")
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def reverse_each_byte(data: bytes) -> bytes:
    return bytes(int(f"{b:08b}"[::-1], 2) for b in data)


def page_of(rows: list[list[int]] | np.ndarray, yres: float = 196) -> Page:
    return Page.from_array(np.asarray(rows, dtype=bool), xres=204, yres=yres)


def text_like(width: int, height: int, seed: int) -> Page:
    """Black rectangles of glyph size on white, like a page of text."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width), dtype=bool)
    for _ in range(max(1, width * height // 400)):
        y, x = rng.integers(0, height), rng.integers(0, width)
        arr[y : y + rng.integers(1, 12), x : x + rng.integers(1, 9)] = True
    return page_of(arr)


def noise(width: int, height: int, seed: int, density: float = 0.5) -> Page:
    return page_of(np.random.default_rng(seed).random((height, width)) < density)


def sample_pages() -> list[Page]:
    alt = np.zeros((6, 37), dtype=bool)
    alt[:, ::2] = True
    alt[1::2] = ~alt[1::2]
    return [
        text_like(1728, 40, 1),
        text_like(203, 25, 2),
        noise(97, 20, 3),
        noise(64, 9, 4, density=0.05),
        page_of(alt),
        Page.blank(1728, 5),
        page_of(np.ones((4, 2600), dtype=bool)),
        page_of(np.zeros((0, 8), dtype=bool)),
        page_of([[1]]),
    ]


ALL = ["mh", "mr", "mmr", "rle"]


# -- known code words ------------------------------------------------------------------


def test_white_row_1728_mh() -> None:
    # EOL, white make-up 1728 (010011011), white terminating 0 (00110101).
    data = codec.encode(Page.blank(1728, 1), "mh", rtc=False)
    assert data == from_bits(EOL + "010011011" + "00110101")
    assert codec.decode(data, 1728, "mh") == Page.blank(1728, 1)


def test_rtc_is_six_eols_mh_and_six_eol_plus_one_mr() -> None:
    row = EOL + "010011011" + "00110101"
    assert codec.encode(Page.blank(1728, 1), "mh", rtc=True) == from_bits(row + EOL * 6)
    # MR: EOL + tag bit 1 (1-D row) before the row; RTC is six EOL + 1.
    mr_row = EOL + "1" + "010011011" + "00110101"
    assert codec.encode(Page.blank(1728, 1), "mr", rtc=True) == from_bits(mr_row + (EOL + "1") * 6)
    # By default no RTC, as libtiff writes MH/MR strips.
    assert codec.encode(Page.blank(1728, 1), "mh") == from_bits(row)


@pytest.mark.parametrize(
    ("row", "bits"),
    [
        # white 0, black 4, white 4
        ([1, 1, 1, 1, 0, 0, 0, 0], "00110101" + "011" + "1011"),
        # white 3, black 1, white 2, black 2
        ([0, 0, 0, 1, 0, 0, 1, 1], "1000" + "010" + "0111" + "11"),
        # white 8
        ([0] * 8, "10011"),
        # white 0, black 8
        ([1] * 8, "00110101" + "000101"),
    ],
)
def test_mh_terminating_codes(row: list[int], bits: str) -> None:
    page = page_of([row])
    assert codec.encode(page, "mh", rtc=False) == from_bits(EOL + bits)
    assert codec.encode(page, "rle") == from_bits(bits)  # RLE: no EOL, byte-aligned rows
    assert codec.decode(from_bits(EOL + bits), 8, "mh") == page


@pytest.mark.parametrize(
    ("width", "black", "bits"),
    [
        # black 2000 = extended make-up 1984 (000000010010) + black 16 (0000010111)
        (2000, True, "00110101" + "000000010010" + "0000010111"),
        # white 2600 = extended make-up 2560 (000000011111) + white 40 (00101001)
        (2600, False, "000000011111" + "00101001"),
        # white 5000 = 2560 + make-up 2432 (000000011101) + white 8 (10011)
        (5000, False, "000000011111" + "000000011101" + "10011"),
        # white 1792 = extended make-up 1792 (00000001000) + white 0
        (1792, False, "00000001000" + "00110101"),
        # black 64 = black make-up 64 (0000001111) + black 0 (0000110111)
        (64, True, "00110101" + "0000001111" + "0000110111"),
    ],
)
def test_long_runs_use_extended_make_up_codes(width: int, black: bool, bits: str) -> None:
    page = page_of(np.full((1, width), black))
    assert codec.encode(page, "mh", rtc=False) == from_bits(EOL + bits)
    assert codec.decode(from_bits(EOL + bits), width, "mh") == page


def test_mmr_modes_and_eofb() -> None:
    rows = [
        [0, 0, 0, 1, 0, 0, 0, 0],  # H (001) white 3 (1000) black 1 (010), V0
        [0, 0, 0, 1, 0, 0, 0, 0],  # V0 V0 V0
        [0, 0, 0, 0, 1, 0, 0, 0],  # VR1 (011); past a0 = 4 b1 is the end: VL3 (0000010), V0
        [0, 0, 0, 1, 1, 1, 1, 0],  # VL1 (010) VR2 (000011) V0
        [0, 0, 0, 0, 0, 0, 0, 0],  # pass (0001), V0
    ]
    bits = (
        "001" + "1000" + "010" + "1"
        + "1" + "1" + "1"
        + "011" + "0000010" + "1"
        + "010" + "000011" + "1"
        + "0001" + "1"
    )  # fmt: skip
    page = page_of(rows)
    assert codec.encode(page, "mmr", rtc=False) == from_bits(bits)
    assert codec.encode(page, "mmr") == from_bits(bits + EOL + EOL)
    assert codec.decode(from_bits(bits + EOL + EOL), 8, "mmr") == page


def test_mmr_vertical_left_two_and_three() -> None:
    rows = [[0, 0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1, 1]]
    # row 0: VL2 (000010) against the end of the white row above, V0;
    # row 1: VL2 V0; row 2: VL3 (0000010) V0
    bits = "000010" + "1" + "000010" + "1" + "0000010" + "1"
    assert codec.encode(page_of(rows), "mmr", rtc=False) == from_bits(bits)
    assert codec.decode(from_bits(bits), 8, "mmr") == page_of(rows)


def test_mr_alternates_1d_and_2d_rows() -> None:
    row = [0, 0, 0, 1, 0, 0, 0, 0]
    one_d = "1000" + "010" + "1011"  # white 3, black 1, white 4
    two_d = "1" + "1" + "1"  # V0 V0 V0 against the same row above
    data = codec.encode(page_of([row] * 3), "mr", k=2, rtc=False)
    assert data == from_bits(EOL + "1" + one_d + EOL + "0" + two_d + EOL + "1" + one_d)


# -- options ---------------------------------------------------------------------------


def eol_ends(bits: str) -> list[int]:
    """Bit offsets just past each EOL."""
    return [m.end() for m in EOL_RE.finditer(bits)]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
def test_k_sets_the_1d_rows(k: int) -> None:
    page = text_like(300, 15, k)
    bits = to_bits(codec.encode(page, "mr", k=k, rtc=False))
    tags = [bits[end] for end in eol_ends(bits)]
    assert tags == ["1" if i % k == 0 else "0" for i in range(15)]
    assert codec.decode(codec.encode(page, "mr", k=k), 300, "mr") == page


def test_default_k_follows_the_resolution() -> None:
    fine, standard = text_like(100, 9, 5), text_like(100, 9, 5)
    standard.yres = 98
    assert codec.encode(fine, "mr") == codec.encode(fine, "mr", k=4)
    assert codec.encode(standard, "mr") == codec.encode(standard, "mr", k=2)
    assert codec.default_k(98) == 2 and codec.default_k(196) == 4


def test_mh_without_eol_is_the_eol_stream_without_eols() -> None:
    page = text_like(500, 12, 6)
    with_eol = to_bits(codec.encode(page, "mh", rtc=False))
    without = to_bits(codec.encode(page, "mh", eol=False, rtc=False))
    stripped = EOL_RE.sub("", with_eol).rstrip("0")
    assert without.rstrip("0") == stripped
    assert not EOL_RE.search(without)
    assert codec.decode(codec.encode(page, "mh", eol=False), 500, "mh") == page


@pytest.mark.parametrize("scheme", ["mh", "mr"])
def test_eol_align_puts_every_eol_end_on_a_byte_boundary(scheme: str) -> None:
    page = text_like(777, 20, 7)
    data = codec.encode(page, scheme, eol_align=True, rtc=True)
    ends = eol_ends(to_bits(data))
    # 20 row EOLs; RTC's first EOL is aligned too (the rest of RTC follows it directly,
    # as libtiff writes it).
    assert len(ends) == 26
    assert all(end % 8 == 0 for end in ends[:21])
    assert codec.decode(data, 777, scheme) == page
    # Without the option the row EOLs fall anywhere.
    plain = eol_ends(to_bits(codec.encode(page, scheme)))
    assert any(end % 8 for end in plain[:20])


@pytest.mark.parametrize("scheme", ["mh", "mr", "mmr"])
def test_rtc_on_and_off(scheme: str) -> None:
    page = text_like(300, 10, 8)
    on = to_bits(codec.encode(page, scheme, rtc=True)).rstrip("0")
    off = to_bits(codec.encode(page, scheme, rtc=False)).rstrip("0")
    end = {"mh": EOL * 6, "mr": (EOL + "1") * 6, "mmr": EOL * 2}[scheme]
    assert on.endswith(end.rstrip("0"))
    assert on[: len(on) - len(end)].rstrip("0") == off
    assert not off.endswith(EOL)
    for data in (from_bits(on), from_bits(off)):
        assert codec.decode(data, 300, scheme) == page


@pytest.mark.parametrize("scheme", ["mh", "mr"])
@pytest.mark.parametrize("min_row_bits", [0, 1, 50, 200, 1500])
@pytest.mark.parametrize("align", [False, True])
def test_min_row_bits_pads_short_rows(scheme: str, min_row_bits: int, align: bool) -> None:
    """Every coded row (T.4 4.1.3: data + fill + EOL, so EOL end to EOL end) is at least
    ``min_row_bits`` long.

    Regression (fixed in 57d419b): with ``eol_align=True`` the encoder counted the
    alignment fill before a row's own EOL as part of that row, so a row came out up to
    7 bits short.
    """
    page = text_like(400, 15, 9)
    natural = eol_ends(to_bits(codec.encode(page, scheme, rtc=False)))
    padded_data = codec.encode(page, scheme, min_row_bits=min_row_bits, eol_align=align, rtc=True)
    padded = eol_ends(to_bits(padded_data))
    assert len(padded) == 15 + 6
    for i in range(14):
        gap = padded[i + 1] - padded[i]
        assert gap >= min_row_bits
        if not align:
            assert gap == max(min_row_bits, natural[i + 1] - natural[i])
    assert codec.decode(padded_data, 400, scheme) == page


def test_min_row_bits_without_eol_is_refused() -> None:
    """Fill between rows is only meaningful before an EOL: MH without EOLs cannot carry it.

    Regression (found by fuzzing, fixed in 57d419b): the encoder accepted eol=False with
    min_row_bits and wrote zero fill between rows that no decoder can tell from code
    bits, so its own decoder failed.
    """
    page = Page.blank(8, 2)
    try:
        data = codec.encode(page, "mh", eol=False, min_row_bits=20)
    except CodecError:
        return
    assert codec.decode(data, 8, "mh") == page


@pytest.mark.parametrize("scheme", ALL)
def test_msb_first_false_reverses_every_byte(scheme: str) -> None:
    page = text_like(250, 12, 10)
    msb = codec.encode(page, scheme)
    lsb = codec.encode(page, scheme, msb_first=False)
    assert lsb == reverse_each_byte(msb)
    assert codec.reverse_bits(msb) == lsb
    assert codec.decode(lsb, 250, scheme, msb_first=False) == page


@pytest.mark.parametrize(
    ("scheme", "options"),
    [
        ("mmr", {"eol_align": True}),
        ("mmr", {"min_row_bits": 10}),
        ("rle", {"eol_align": True}),
        ("mr", {"eol": False}),
        ("mr", {"k": 0}),
        ("mr", {"k": -2}),
        ("mh", {"min_row_bits": -1}),
        ("mh", {"min_row_bits": 10**9}),
        ("g4", {}),
        (None, {}),
    ],
)
def test_bad_encoder_options_raise_codec_error(scheme: object, options: dict) -> None:
    with pytest.raises(CodecError):
        codec.encode(Page.blank(8, 1), scheme, **options)


def test_encoder_refuses_partial_rows_and_use_after_finish() -> None:
    enc = codec.Encoder(16, "mh")
    with pytest.raises(CodecError):
        enc.encode(b"\x00\x00\x00")
    enc.encode(b"\x00\x00")
    enc.finish()
    assert enc.finish() == b""
    with pytest.raises(CodecError):
        enc.encode(b"\x00\x00")
    with pytest.raises(CodecError):
        codec.encode(np.zeros((2, 2), dtype=bool), "mh")  # not a Page


# -- streaming -------------------------------------------------------------------------

OPTION_SETS = [
    ("mh", {}),
    ("mh", {"eol": False, "rtc": False}),
    ("mh", {"eol_align": True, "min_row_bits": 300}),
    ("mr", {"k": 3, "msb_first": False}),
    ("mr", {"eol_align": True}),
    ("mmr", {}),
    ("mmr", {"rtc": False, "msb_first": False}),
    ("rle", {}),
]


@pytest.mark.parametrize(("scheme", "options"), OPTION_SETS)
def test_streaming_encoder_equals_one_shot(scheme: str, options: dict) -> None:
    for page in sample_pages():
        whole = codec.encode(page, scheme, **options)
        enc = codec.Encoder(page.width, scheme, **options)
        if scheme == "mr":
            options = {"k": 4, **options}
        pieces = [enc.encode(row) for row in page.rows()]
        assert enc.rows == page.height
        # MR's default k in encode() comes from yres (196 -> 4), the Encoder's is 4.
        assert b"".join(pieces) + enc.finish() == whole
        # Several rows per call, and an empty call, change nothing.
        enc = codec.Encoder(page.width, scheme, **options)
        half = page.stride * (page.height // 2)
        out = enc.encode(page.data[:half]) + enc.encode(b"") + enc.encode(page.data[half:])
        assert out + enc.finish() == whole


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        out.append(data[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return out


def stream_decode(data: bytes, width: int, scheme: str, sizes: list[int], **options) -> list:
    dec = codec.Decoder(width, scheme, **options)
    rows: list[bytes] = []
    for chunk in chunked(data, sizes):
        got = dec.feed(chunk)
        assert all(len(r) == dec.stride for r in got)
        rows += got
    rows += dec.finish()
    assert dec.done and dec.rows == len(rows)
    return rows


@pytest.mark.parametrize(("scheme", "options"), OPTION_SETS)
def test_streaming_decoder_equals_one_shot(scheme: str, options: dict) -> None:
    rng = random.Random(11)
    msb_first = options.get("msb_first", True)
    for page in sample_pages():
        data = codec.encode(page, scheme, **options)
        assert codec.decode(data, page.width, scheme, msb_first=msb_first) == page
        for sizes in ([1], [rng.randint(1, 40) for _ in range(9)], [3, 1, 64, 2, 7]):
            rows = stream_decode(data, page.width, scheme, sizes, msb_first=msb_first)
            assert rows == list(page.rows())


def test_streaming_decoder_hands_out_rows_as_they_complete() -> None:
    page = text_like(1728, 30, 12)
    data = codec.encode(page, "mmr")
    dec = codec.Decoder(1728, "mmr")
    rows = []
    counts = []
    for i in range(0, len(data), 16):
        rows += dec.feed(data[i : i + 16])
        counts.append(len(rows))
    assert counts[0] < 30 and counts == sorted(counts)
    assert dec.done  # EOFB seen: finish() adds nothing
    assert dec.finish() == [] and rows == list(page.rows())
    packed = codec.Decoder(1728, "mmr")
    assert packed.feed_packed(data) + packed.finish_packed() == page.data


@pytest.mark.parametrize("scheme", ALL)
def test_height_stops_decoding(scheme: str) -> None:
    page = text_like(120, 10, 13)
    data = codec.encode(page, scheme)
    top = codec.decode(data, 120, scheme, height=4)
    assert top.height == 4 and top.data == page.data[: 4 * page.stride]
    dec = codec.Decoder(120, scheme, height=4)
    rows = dec.feed(data)
    assert dec.done and len(rows) == 4
    assert dec.feed(data) == [] and dec.finish() == []
    with pytest.raises(CodecError) as info:
        codec.decode(data, 120, scheme, height=11)
    assert info.value.row == 10


@pytest.mark.parametrize("scheme", ["mh", "mr", "mmr"])
@pytest.mark.parametrize("trailer", [b"\xff", b"\x00\x00\x00\x00", b"\x12\x34\xff\x00\x80"])
def test_rtc_and_eofb_end_the_page_and_trailing_bytes_are_ignored(
    scheme: str, trailer: bytes
) -> None:
    page = text_like(200, 8, 14)
    data = codec.encode(page, scheme, rtc=True) + trailer * 50
    assert codec.decode(data, 200, scheme) == page
    rows = stream_decode(data, 200, scheme, [5])
    assert rows == list(page.rows())


def test_max_rows_limits_a_page() -> None:
    page = Page.blank(16, 10)
    data = codec.encode(page, "mmr")
    assert codec.decode(data, 16, "mmr", max_rows=10) == page
    with pytest.raises(LimitError) as info:
        codec.decode(data, 16, "mmr", max_rows=9)
    assert info.value.row == 9
    with pytest.raises(LimitError):
        codec.Decoder(16, "mmr", height=11, max_rows=10)


# -- damaged data ----------------------------------------------------------------------


def rows_with_eols(bits: str) -> list[tuple[int, int]]:
    """(start, end) of each row body between EOLs (the start is just past the EOL and,
    for MR, its tag bit)."""
    return [(m.end(), m.start()) for m in EOL_RE.finditer(bits)]


def damage(data: bytes, scheme: str, bad: set[int]) -> bytes:
    """Replace the code of rows ``bad`` by 8 zeros and a one (never valid after an EOL:
    too short for an EOL, too long for a code) followed by the row's own bits."""
    bits = to_bits(data)
    ends = [m.end() for m in EOL_RE.finditer(bits)]
    out = []
    pos = 0
    for row, end in enumerate(ends):
        if row in bad:
            body = end + (1 if scheme == "mr" else 0)
            out.append(bits[pos:body] + "000000001")
            pos = body
    out.append(bits[pos:])
    return from_bits("".join(out))


def expected_after_repair(page: Page, bad: set[int]) -> list[bytes]:
    rows = list(page.rows())
    for r in sorted(bad):
        rows[r] = rows[r - 1] if r else bytes(page.stride)
    return rows


@pytest.mark.parametrize(
    ("scheme", "bad", "longest"),
    [
        ("mh", {7}, 1),
        ("mh", {3, 4, 5}, 3),
        ("mh", {2, 3, 10, 11, 12, 13}, 4),
        ("mh", {0}, 1),
        ("mh", {19}, 1),
        # MR k=4: rows 0, 4, 8, ... are 1-D. A damaged row is followed by 2-D rows coded
        # against it, so pick the last 2-D row before a 1-D one to keep the rest exact.
        ("mr", {7}, 1),
        ("mr", {6, 7}, 2),
        ("mr", {3, 11, 15}, 1),
    ],
)
def test_repair_replaces_damaged_rows_by_the_previous_row(
    scheme: str, bad: set[int], longest: int
) -> None:
    page = text_like(500, 20, 15)
    data = damage(
        codec.encode(page, scheme, k=4) if scheme == "mr" else codec.encode(page, scheme),
        scheme,
        bad,
    )
    with pytest.raises(CodecError) as info:
        codec.decode(data, 500, scheme)
    assert info.value.row == min(bad)
    repaired = codec.decode(data, 500, scheme, errors="repair")
    assert list(repaired.rows()) == expected_after_repair(page, bad)
    assert (repaired.bad_rows, repaired.consecutive_bad_rows) == (len(bad), longest)
    dec = codec.Decoder(500, scheme, errors="repair")
    rows = [r for chunk in chunked(data, [1, 2, 5]) for r in dec.feed(chunk)] + dec.finish()
    assert rows == list(repaired.rows())
    assert (dec.bad_rows, dec.max_consecutive_bad_rows) == (len(bad), longest)


def test_repair_in_mr_keeps_rows_before_the_damage_and_after_the_next_1d_row() -> None:
    page = text_like(500, 20, 16)
    data = damage(codec.encode(page, "mr", k=4), "mr", {5})
    repaired = codec.decode(data, 500, "mr", errors="repair")
    rows, good = list(repaired.rows()), list(page.rows())
    assert rows[:5] == good[:5] and rows[5] == good[4] and rows[8:] == good[8:]
    assert repaired.bad_rows >= 1


def test_repair_of_a_clean_page_changes_nothing() -> None:
    page = text_like(300, 12, 17)
    for scheme in ("mh", "mr"):
        clean = codec.decode(codec.encode(page, scheme), 300, scheme, errors="repair")
        assert clean == page and (clean.bad_rows, clean.consecutive_bad_rows) == (0, 0)


def mmr_stripes(rows: int) -> tuple[str, Page]:
    """A page whose MMR coding is known bit for bit: every row black at pixels 4..7 of 16.
    Row 0 is H white 4 black 4 then V0 (11 bits), every later row V0 V0 V0 (3 bits)."""
    arr = np.zeros((rows, 16), dtype=bool)
    arr[:, 4:8] = True
    return "001" + "1011" + "011" + "1", page_of(arr)


@pytest.mark.parametrize("errors", ["strict", "repair"])
@pytest.mark.parametrize(
    "garbage",
    [
        "0000001" + "111",  # extension (uncompressed mode): not supported
        "00000000" + "1",  # no such mode code
        "001" + "11011" * 3 + "0111",  # horizontal run of 194 pixels on a 16-pixel row
        "000011" * 4,  # VR2 past the end of the row
    ],
)
def test_corrupt_mmr_raises_naming_the_row(errors: str, garbage: str) -> None:
    first, page = mmr_stripes(12)
    assert codec.encode(page, "mmr", rtc=False) == from_bits(first + "111" * 11)
    bits = first + "111" * 6 + garbage + "111" * 5 + EOL + EOL
    with pytest.raises(CodecError) as info:
        codec.decode(from_bits(bits), 16, "mmr", errors=errors)
    assert info.value.row == 7
    assert "row 7" in str(info.value)
    dec = codec.Decoder(16, "mmr", errors=errors)
    rows: list[bytes] = []
    with pytest.raises(CodecError) as info:
        for byte in from_bits(bits):
            rows += dec.feed(bytes([byte]))
        dec.finish()
    assert info.value.row == 7 and rows == list(page.rows())[: len(rows)]


def test_streaming_agrees_with_one_shot_on_a_row_without_eol() -> None:
    """Regression (found by fuzzing, fixed in 57d419b): MH with EOLs, a row followed by a
    code instead of fill or an EOL.

    One-shot decode refused it; a Decoder whose chunk ended just after the row took the
    zero padding past its buffer for fill, accepted the row and then decoded the next
    code as another row. The answer must not depend on the chunking.
    """
    data = from_bits("0000000" + EOL + "01000" + "01000" + "000")  # width 11: white 11 twice
    with pytest.raises(CodecError):
        codec.decode(data, 11, "mh")
    dec = codec.Decoder(11, "mh")
    with pytest.raises(CodecError):
        dec.feed(data[:3])  # the first row ends exactly at the end of this chunk
        dec.feed(data[3:])
        dec.finish()


@pytest.mark.parametrize("width", [63, 64, 65, 1000, 4864])
def test_long_runs_of_v0_codes(width: int) -> None:
    """Identical rows of single-pixel alternation: every later row is one V0 per changing
    element plus a last V0 to the end of the row, many more than 64 in a row."""
    arr = np.zeros((5, width), dtype=bool)
    arr[:, ::2] = True
    page = page_of(arr)
    first = to_bits(codec.encode(page_of(arr[:1]), "mmr", rtc=False)).rstrip("0")
    v0s = "1" * (width + 1) * 4
    coded = to_bits(codec.encode(page, "mmr", rtc=False)).rstrip("0")
    assert coded.endswith(v0s)
    assert coded[: -len(v0s)].rstrip("0") == first
    for scheme in ("mmr", "mr"):
        data = codec.encode(page, scheme)
        assert codec.decode(data, width, scheme) == page
        assert stream_decode(data, width, scheme, [1, 7, 3]) == list(page.rows())


@pytest.mark.parametrize("scheme", ["mh", "mr"])
def test_a_wiped_row_does_not_end_a_streamed_page_in_repair_mode(scheme: str) -> None:
    """A row lost to a dropout (its code bits all zero: EOL, zeros, EOL) must not end the
    page in repair mode, however the data is chunked.

    Known bug (found by the fuzzer's streaming-vs-one-shot oracle): one-shot decoding
    keeps the rows after the wiped one, but a Decoder whose chunk ends in the zeros after
    an EOL takes them for RTC and ends the page. Smallest input: MR, width 23,
    ``bytes.fromhex("00006000b8")`` in chunks of 4 and 1 bytes.
    """
    page = text_like(64, 10, 18)
    bits = to_bits(codec.encode(page, scheme, k=2, rtc=True) if scheme == "mr" else
                   codec.encode(page, scheme, rtc=True))  # fmt: skip
    ends = eol_ends(bits)
    start = ends[5] + (1 if scheme == "mr" else 0)
    stop = ends[6] - 12
    data = from_bits(bits[:start] + "0" * (stop - start) + bits[stop:])
    whole = codec.decode(data, 64, scheme, errors="repair")
    rows = list(whole.rows())
    assert rows[:5] == list(page.rows())[:5] and rows[-4:] == list(page.rows())[-4:]
    for cut in range(1, len(data)):
        dec = codec.Decoder(64, scheme, errors="repair")
        streamed = dec.feed(data[:cut]) + dec.feed(data[cut:]) + dec.finish()
        assert (streamed, dec.bad_rows) == (rows, whole.bad_rows), f"cut after {cut} bytes"
    tiny = bytes.fromhex("00006000b8")
    dec = codec.Decoder(23, "mr", errors="repair")
    streamed = dec.feed(tiny[:4]) + dec.feed(tiny[4:]) + dec.finish()
    assert streamed == list(codec.decode(tiny, 23, "mr", errors="repair").rows())
