"""Bad input to the codec: truncation, random bytes, absurd sizes, bombs, endless fill.

The rule: a :class:`fastfax.FaxError` (or a correct, shorter page), never a crash, a hang
or unbounded memory. Where bad input could corrupt memory the check runs in a child
process, so a crash fails one test instead of killing the test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastfax import CodecError, FaxError, LimitError, Page, codec
from fastfax.page import DEFAULT_MAX_ROWS

SCHEMES = ["mh", "mr", "mmr", "rle"]


def text_like(width: int, height: int, seed: int) -> Page:
    rng = np.random.default_rng(seed)
    arr = np.zeros((height, width), dtype=bool)
    for _ in range(max(1, width * height // 300)):
        y, x = rng.integers(0, height), rng.integers(0, width)
        arr[y : y + rng.integers(1, 9), x : x + rng.integers(1, 7)] = True
    return Page.from_array(arr)


def run_child(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a crash shows as a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


# -- truncation ------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("msb_first", [True, False])
def test_every_prefix_gives_an_error_or_a_correct_shorter_page(
    scheme: str, msb_first: bool
) -> None:
    page = text_like(90, 14, seed=len(scheme))
    rows = list(page.rows())
    data = codec.encode(page, scheme, msb_first=msb_first)
    shorter = 0
    for n in range(len(data) + 1):
        prefix = data[:n]
        try:
            got = codec.decode(prefix, 90, scheme, msb_first=msb_first)
        except CodecError:
            pass
        else:
            assert list(got.rows()) == rows[: got.height], f"prefix of {n} bytes"
            shorter += got.height < page.height
            # With the height given, a page that came up short is an error.
            if got.height < page.height:
                with pytest.raises(CodecError):
                    codec.decode(prefix, 90, scheme, height=14, msb_first=msb_first)
            else:
                assert codec.decode(prefix, 90, scheme, height=14, msb_first=msb_first) == got
        try:
            fixed = codec.decode(prefix, 90, scheme, msb_first=msb_first, errors="repair")
        except CodecError:
            assert scheme in ("mmr", "rle")  # repair mode needs EOLs
        else:
            good = fixed.height - fixed.bad_rows
            assert fixed.height <= page.height and fixed.bad_rows <= 1
            assert list(fixed.rows())[:good] == rows[:good]
    assert shorter > 0


# -- random bytes ----------------------------------------------------------------------


def test_random_bytes_raise_only_fax_errors() -> None:
    """Thousands of random inputs through every scheme, bit order and error mode, one-shot
    and streamed in small chunks."""
    result = run_child(
        """
        import random
        from fastfax import FaxError, codec

        count = 0
        for seed in range(2500):
            rng = random.Random(seed)
            data = rng.randbytes(rng.choice([1, 3, 16, 64, 300]))
            width = rng.choice([1, 2, 7, 8, 9, 31, 100, 1728, 2432])
            for scheme in ("mh", "mr", "mmr", "rle"):
                for msb_first in (True, False):
                    for errors in ("strict", "repair"):
                        options = dict(msb_first=msb_first, errors=errors, max_rows=5000)
                        try:
                            page = codec.decode(data, width, scheme, **options)
                            assert page.width == width and page.height <= 5000
                        except FaxError:
                            pass
                        dec = codec.Decoder(width, scheme, **options)
                        try:
                            for i in range(0, len(data), 5):
                                dec.feed(data[i : i + 5])
                            dec.finish()
                        except FaxError:
                            pass
                        count += 1
        print(count)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout) == 2500 * 16


def test_decoder_keeps_failing_cleanly_after_an_error() -> None:
    dec = codec.Decoder(64, "mh")
    with pytest.raises(CodecError):
        dec.feed(b"\x00\x10\x80" * 20)  # an EOL, then 7 zeros + 1 repeated: no valid row
    for _ in range(3):
        try:
            dec.feed(b"\x55" * 10)
            dec.finish()
        except FaxError:
            pass


def test_mmr_vertical_left_of_the_row_start_is_refused() -> None:
    """Regression (found by fuzzing, fixed in 57d419b): a heap write before the row buffer.

    When the reference row starts black (b1 = 0), VL1 at the start of a row gives
    a1 = -1; the decoder accepted it (it only refused a1 < a0 = -1) and wrote pixel -1,
    i.e. the byte before the row. Streamed, that row is first in the output buffer, so
    the byte before the heap block was hit and the process died ("double free or
    corruption"). Width 7: row 0 all black (H, white 0, black 7), row 1 VL1 V0, EOFB.
    """
    result = run_child(
        """
        from fastfax import CodecError, codec

        data = bytes([0x26, 0xA3, 0x50, 0x01, 0x00, 0x10])
        for chunking in (len(data), 1):
            dec = codec.Decoder(7, "mmr")
            try:
                for i in range(0, len(data), chunking):
                    dec.feed(data[i : i + chunking])
                dec.finish()
            except CodecError as exc:
                assert exc.row == 1, exc
            else:
                raise SystemExit(f"accepted a1 = -1 (chunks of {chunking})")
        print("ok")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        result.returncode,
        result.stdout[-500:],
        result.stderr[-1000:],
    )


# -- absurd sizes ----------------------------------------------------------------------


@pytest.mark.parametrize("width", [0, -1, 10**9, 65536, 1.5, "1728", None])
def test_absurd_widths_raise_before_allocating(width: object) -> None:
    with pytest.raises(CodecError):
        codec.Decoder(width, "mmr")
    with pytest.raises(CodecError):
        codec.decode(b"\x00", width, "mh")
    with pytest.raises(CodecError):
        codec.Encoder(width, "mmr")


@pytest.mark.parametrize(
    ("height", "error"),
    [(-1, CodecError), (10**9, LimitError), (DEFAULT_MAX_ROWS + 1, LimitError), (2.0, CodecError)],
)
def test_absurd_heights_raise_before_allocating(height: object, error: type) -> None:
    with pytest.raises(error):
        codec.Decoder(1728, "mmr", height=height)
    with pytest.raises(error):
        codec.decode(b"\xff" * 8, 1728, "mmr", height=height)


@pytest.mark.parametrize("options", [{"max_rows": -1}, {"errors": "ignore"}, {"errors": None}])
def test_bad_decoder_options(options: dict) -> None:
    with pytest.raises(CodecError):
        codec.Decoder(8, "mh", **options)


def test_unknown_scheme() -> None:
    with pytest.raises(CodecError, match="scheme"):
        codec.decode(b"", 8, "g4")


# -- bombs and endless input -----------------------------------------------------------


@pytest.mark.parametrize("size", [9000, 1 << 20])
def test_a_tiny_mmr_stream_claiming_millions_of_rows_hits_the_row_limit(size: int) -> None:
    # Every 1 bit is V0 against a white row: one all-white row per bit, 8 rows a byte.
    bomb = b"\xff" * size
    with pytest.raises(LimitError) as info:
        codec.decode(bomb, 1728, "mmr")
    assert info.value.row == DEFAULT_MAX_ROWS
    assert isinstance(info.value, FaxError)
    dec = codec.Decoder(1728, "mmr")
    with pytest.raises(LimitError):
        for i in range(0, size, 4096):
            dec.feed_packed(bomb[i : i + 4096])
    # A caller who knows better can lower or raise the limit.
    with pytest.raises(LimitError):
        codec.decode(bomb[:100], 1728, "mmr", max_rows=100)
    assert codec.decode(bomb[:100], 1728, "mmr", max_rows=800).height == 800


@pytest.mark.parametrize("scheme", ["mh", "mr"])
@pytest.mark.parametrize("errors", ["strict", "repair"])
def test_endless_fill_keeps_memory_bounded(scheme: str, errors: str) -> None:
    """50 MB of zero fill (legal between rows, so the decoder must keep reading) in 64 KB
    chunks: the decoder must not keep what it has scanned."""
    chunk = bytes(65536)
    dec = codec.Decoder(1728, scheme, errors=errors)
    before = rss_mb()
    for _ in range(800):
        assert dec.feed_packed(chunk) == b""
    assert rss_mb() - before < 16
    assert dec.finish() == [] and dec.rows == 0


@pytest.mark.parametrize("scheme", ["mh", "mr"])
@pytest.mark.parametrize("errors", ["strict", "repair"])
def test_endless_zeros_after_an_eol_keep_memory_bounded(scheme: str, errors: str) -> None:
    """An EOL (and MR tag bit), then 50 MB of zeros: RTC or not, nothing may pile up."""
    chunk = bytes(65536)
    dec = codec.Decoder(1728, scheme, errors=errors)
    before = rss_mb()
    dec.feed(b"\x00\x18" if scheme == "mr" else b"\x00\x10")  # fill, EOL (+ tag 1)
    for _ in range(800):
        assert dec.feed_packed(chunk) == b""
    assert rss_mb() - before < 16
    rows = dec.finish()
    assert len(rows) == dec.bad_rows <= 1


@pytest.mark.parametrize("scheme", ["mh", "mr"])
@pytest.mark.parametrize("pattern", [b"\x80", b"\x55", b"\xaa\x81"])
def test_endless_garbage_without_eols_keeps_memory_bounded(scheme: str, pattern: bytes) -> None:
    """Repair mode after a damaged row hunts for the next EOL; 5 MB without one must not
    pile up."""
    chunk = pattern * (65536 // len(pattern))
    dec = codec.Decoder(1728, scheme, errors="repair")
    before = rss_mb()
    rows = 0
    for _ in range(80):
        rows += len(dec.feed(chunk))
    rows += len(dec.finish())
    assert rss_mb() - before < 16
    assert rows <= 2 and dec.bad_rows == rows


@pytest.mark.parametrize("scheme", ["mmr", "rle"])
def test_zeros_are_not_mmr_or_rle(scheme: str) -> None:
    dec = codec.Decoder(1728, scheme)
    with pytest.raises(CodecError):
        for _ in range(100):
            dec.feed(bytes(65536))


# -- one coder, two threads ------------------------------------------------------------

SHARED = """
    import threading
    import numpy as np
    from fastfax import FaxError, Page, codec

    page = Page.from_array(np.random.default_rng(0).random((3000, 1728)) < 0.05)
    data = codec.encode(page, "mh", rtc=False)

    def feed(coder, method, blob, step):
        try:
            for i in range(0, len(blob), step):
                getattr(coder, method)(blob[i : i + step])
        except FaxError:
            pass

    for trial in range(TRIALS):
        coder = MAKE
        steps = (len(BLOB) // 3 // 216 * 216, 216 * 3)
        threads = [
            threading.Thread(target=feed, args=(coder, METHOD, BLOB, s)) for s in steps
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print("ok")
"""


@pytest.mark.parametrize(
    ("make", "method", "blob"),
    [
        ('codec.Decoder(1728, "mh", max_rows=10**6, errors="repair")', "feed", "data"),
        ('codec.Encoder(1728, "mh")', "encode", "page.data"),
    ],
    ids=["decoder", "encoder"],
)
def test_one_coder_fed_from_two_threads_does_not_crash(make: str, method: str, blob: str) -> None:
    """Misuse, but from Python: it may raise a FaxError or give garbage, never crash.

    Known bug: ``feed`` / ``encode`` release the GIL while they grow (realloc) and read
    the coder's buffers, so a second thread in the same coder reads freed memory
    (heap-use-after-free under ASan; a segmentation fault in the plain build). A flag
    or lock taken with the GIL held on entry would turn that into an error.
    """
    code = SHARED.replace("MAKE", make).replace("METHOD", repr(method))
    code = code.replace("BLOB", blob).replace("TRIALS", "40")
    result = run_child(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        result.returncode,
        result.stderr[-1000:],
    )
