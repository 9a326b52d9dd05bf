"""atheris fuzz target for the T.4 / T.6 decoders and an encode -> decode round trip.

Run with ``fuzz/run.sh codec SECONDS`` (see fuzz/README.md). Each input is split by a
FuzzedDataProvider into a choice of scheme, bit order, error mode, width, height, chunking
and the coded bytes. Only :class:`fastfax.errors.FaxError` may escape the decoders;
anything else (another exception, a sanitizer report, a hang) is a finding. Oracles:

* one-shot :func:`fastfax.codec.decode` and a :class:`fastfax.codec.Decoder` fed the same
  bytes in fuzz-chosen chunks agree (same page, or both raise);
* a page that decodes cleanly re-encodes and decodes to itself;
* a page built from fuzz bytes round trips exactly through every scheme and option.
"""

from __future__ import annotations

import os
import sys

import atheris
from native import load_instrumented, register_native_counters

SCHEME_NAMES = ("mh", "mr", "mmr", "rle")
MAX_ROWS = 3000  # keeps one execution well under a second
#: FASTFAX_FUZZ_VERBOSE=1 prints each input's parameters (to turn a crash into a test).
VERBOSE = bool(os.environ.get("FASTFAX_FUZZ_VERBOSE"))


with atheris.instrument_imports(include=["fastfax"]):
    import fastfax
    import fastfax.errors

    load_instrumented()
    from fastfax import codec
    from fastfax.errors import FaxError


def _chunks(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut into chunks of 1 to 97 bytes, in a pattern chosen by ``seed``."""
    out = []
    pos = 0
    step = seed % 64 + 1
    while pos < len(data):
        out.append(data[pos : pos + step])
        pos += step
        step = 1 + (step * 7 + 3) % 97
    return out


def _stream(data: bytes, chunks: list[bytes], width: int, scheme: str, **options):
    decoder = codec.Decoder(width, scheme, **options)
    rows = b"".join(decoder.feed_packed(chunk) for chunk in chunks)
    rows += decoder.finish_packed()
    return rows, decoder.rows, decoder.bad_rows, decoder.max_consecutive_bad_rows


def check_decode(fdp: atheris.FuzzedDataProvider) -> None:
    scheme = SCHEME_NAMES[fdp.ConsumeIntInRange(0, 3)]
    msb_first = fdp.ConsumeBool()
    repair = fdp.ConsumeBool()
    width = fdp.ConsumeIntInRange(1, 64) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(1, 5000)
    height = fdp.ConsumeIntInRange(0, 200) if fdp.ConsumeBool() else None
    split = fdp.ConsumeIntInRange(0, 255)
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    options = dict(msb_first=msb_first, errors="repair" if repair else "strict", max_rows=MAX_ROWS)
    if VERBOSE:
        print(f"decode {scheme} width={width} height={height} {options} split={split} {data!r}")

    try:
        page = codec.decode(data, width, scheme, height=height, **options)
    except FaxError:
        page = None
    try:
        chunks = _chunks(data, split)
        streamed = _stream(data, chunks, width, scheme, height=height, **options)
    except FaxError:
        streamed = None
    if page is None:
        # decode() also refuses a page shorter than ``height``; the stream does not.
        if streamed is not None and height is None:
            raise AssertionError("streaming decoded what one-shot decode refused")
        return
    if streamed is None:
        raise AssertionError("one-shot decode succeeded where streaming raised")
    rows, nrows, bad, run = streamed
    assert (rows, nrows) == (page.data, page.height), "streaming and one-shot rows differ"
    assert (bad, run) == (page.bad_rows, page.consecutive_bad_rows), "bad-row counts differ"
    assert run <= bad <= page.height
    if not repair or bad == 0:
        again = codec.decode(
            codec.encode(page, scheme, msb_first=msb_first),
            width,
            scheme,
            msb_first=msb_first,
            max_rows=MAX_ROWS,
        )
        assert again == page, "a decoded page does not survive encode -> decode"


def check_round_trip(fdp: atheris.FuzzedDataProvider) -> None:
    width = fdp.ConsumeIntInRange(1, 300)
    height = fdp.ConsumeIntInRange(0, 40)
    scheme = SCHEME_NAMES[fdp.ConsumeIntInRange(0, 3)]
    options: dict[str, object] = {"msb_first": fdp.ConsumeBool(), "rtc": fdp.ConsumeBool()}
    if scheme == "mr":
        options["k"] = fdp.ConsumeIntInRange(1, 6)
    if scheme in ("mh", "mr"):
        options["eol"] = scheme == "mr" or fdp.ConsumeBool()
        if options["eol"]:  # fill (both options) only goes before an EOL
            options["eol_align"] = fdp.ConsumeBool()
            options["min_row_bits"] = fdp.ConsumeIntInRange(0, 1000)
    stride = (width + 7) // 8
    seed = fdp.ConsumeBytes(stride * height)
    raw = (seed * (stride * height // max(len(seed), 1) + 1))[: stride * height] if seed else b""
    raw = raw.ljust(stride * height, b"\0")
    page = fastfax.Page(raw, width, height)
    if VERBOSE:
        print(f"round trip {scheme} {width}x{height} {options} rows={raw!r}")
    coded = codec.encode(page, scheme, **options)
    back = codec.decode(coded, width, scheme, msb_first=options["msb_first"])
    assert back == page, f"round trip differs: {scheme} {options} {width}x{height}"


def test_one_input(data: bytes) -> None:
    register_native_counters()
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeIntInRange(0, 3) == 0:
        check_round_trip(fdp)
    else:
        check_decode(fdp)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
