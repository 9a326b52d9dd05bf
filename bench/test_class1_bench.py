"""Class 1 benchmark: a 3-page fine fax from us to SpanDSP's fax terminal over faxline.

The line (tests/peers/faxline.c) runs at ``SPEED`` times real time except while a DTE has
the turn, so idle time a DTE adds shows up both in wall seconds and in line seconds
(``sim_seconds``: what the call would take on a real line). The anchor in the same run
is efax, a Class 1 program by others, sending the same pages through the same emulated
modem to the same terminal: both non-ECM MH (efax has no ECM, and MH keeps the data
identical). Our ECM/MMR call is timed too. Recorded in ``extra_info`` and printed: wall
and line seconds, their ratios to efax's, and the CPU seconds our process spent per page.

SpanDSP terminal -> SpanDSP terminal, the anchor the issue names, needs a faxline mode
with a terminal on both sides, which faxline does not have yet.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastfax import samples, tiff
from fastfax.class1 import send_fax

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "peers"))
from faxline import FaxLine, PeerUnavailable, build  # noqa: E402

PAGES = [samples.text_page(resolution="fine", seed=s) for s in range(3)]
SPEED = 4  # efax needs a page to take at least one wall second
FIGURES: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def _binary() -> None:
    try:
        build()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def ours(tmp: Path, ecm: bool) -> dict[str, float]:
    coding = ["mmr"] if ecm else ["mh"]
    rx = tmp / f"ours-{ecm}.tif"
    with FaxLine(receive=rx, speed=SPEED, ecm=ecm, compressions=coding, linger=0.2) as line:
        start, cpu = time.monotonic(), time.process_time()
        result = send_fax(line.port_a, "5551234", PAGES, ecm=ecm)
        wall, cpu = time.monotonic() - start, time.process_time() - cpu
        peer = line.wait(60)
    assert result.ok and peer["terminal"]["pages_rx"] == 3
    assert tiff.read(rx) == PAGES
    return {"wall_s": wall, "line_s": peer["sim_seconds"], "cpu_s_per_page": cpu / 3}


def efax(tmp: Path) -> dict[str, float]:
    src = tmp / "efax-in.tif"
    tiff.write(src, PAGES, "g3")
    rx = tmp / "efax-rx.tif"
    with FaxLine(receive=rx, speed=SPEED, ecm=False, compressions=["mh"], linger=0.2) as line:
        start = time.monotonic()
        done = subprocess.run(
            ["efax", "-o1", "-d", line.port_a, "-t", "5551234", str(src)],
            capture_output=True,
            timeout=300,
        )
        wall = time.monotonic() - start
        peer = line.wait(60)
    assert done.returncode == 0 and peer["terminal"]["pages_rx"] == 3
    return {"wall_s": wall, "line_s": peer["sim_seconds"]}


@pytest.mark.parametrize("case", ["efax-mh", "fastfax-mh", "fastfax-ecm-mmr"])
def test_three_fine_pages_to_spandsp(benchmark, tmp_path: Path, case: str) -> None:
    if case == "efax-mh" and shutil.which("efax") is None:
        pytest.skip("needs efax")
    run = {
        "efax-mh": lambda: efax(tmp_path),
        "fastfax-mh": lambda: ours(tmp_path, False),
        "fastfax-ecm-mmr": lambda: ours(tmp_path, True),
    }[case]
    figures = benchmark.pedantic(run, rounds=1, iterations=1)
    FIGURES[case] = figures
    anchor = FIGURES.get("efax-mh")
    if anchor and case == "fastfax-mh":
        figures["wall_ratio_to_efax"] = figures["wall_s"] / anchor["wall_s"]
        figures["line_ratio_to_efax"] = figures["line_s"] / anchor["line_s"]
    benchmark.extra_info.update(figures)
    print(f"\n{case}: " + ", ".join(f"{k}={v:.3f}" for k, v in figures.items()))
