"""T.30 engine benchmark: a 3-page fine fax between two of our engines on the loopback line.

Times the whole session (both engines, page coding and decoding, the virtual line) with
pytest-benchmark, and records in ``extra_info``: the CPU seconds per page, and the
session's length in line time (virtual seconds: what the call would take on a real line)
next to the time the page data alone needs at the negotiated rate.
"""

from __future__ import annotations

import time

import pytest

from fastfax import samples
from fastfax.t30.station import create
from fastfax.transport.loopback import Line

PAGES = [samples.text_page(resolution="fine", seed=s) for s in range(3)]


def session(ecm: bool) -> Line:
    line = Line(create(calling=True, pages=PAGES, ecm=ecm), create(calling=False))
    tx, rx = line.run()
    assert tx.ok and rx.ok and len(rx.pages) == 3
    return line


@pytest.mark.parametrize("ecm", [False, True], ids=["non-ecm", "ecm"])
def test_three_fine_pages(benchmark, ecm):
    line = benchmark.pedantic(session, args=(ecm,), rounds=5, iterations=1, warmup_rounds=1)
    cpu = time.process_time()
    for _ in range(5):
        session(ecm)
    per_page = (time.process_time() - cpu) / 15
    data_bits = sum(
        len(a.data) * 8 if hasattr(a, "data") else sum(len(f) * 8 for f in a.frames)
        for _, side, a in line.log
        if side == "sender" and type(a).__name__ in ("SendPageData", "SendEcmFrames")
    )
    benchmark.extra_info.update(
        cpu_ms_per_page=round(per_page * 1000, 2),
        line_seconds=round(line.now, 1),
        page_data_seconds=round(data_bits / 14400, 1),
    )
    print(
        f"\n{'ECM' if ecm else 'non-ECM'} 3 fine pages: {per_page * 1000:.1f} ms CPU per page; "
        f"{line.now:.1f} s of line time, of which page data {data_bits / 14400:.1f} s"
    )
