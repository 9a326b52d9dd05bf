"""Class 1 benchmark: a 3-page fine fax from us to SpanDSP's fax terminal over faxline.

The anchor (issue 4, section 6) is SpanDSP -> SpanDSP with the same pages in the same run:
faxline's ``a_send`` puts a SpanDSP fax terminal on side A instead of the emulated modem,
sending the pages as a TIFF (G4) to the same receiving terminal on the same line (30 ms
each way, no noise, ECM, MMR, V.17 14400). Both calls run at real time (``speed=1``), so
wall seconds and line seconds mean the same thing for both, and idle time we add shows
up in both. Recorded per call:

* ``wall_s``: the caller's whole call in wall seconds: our ``send_fax()`` (modem set-up,
  dial, T.30, hang-up), or SpanDSP's sending terminal from going off hook to phase E;
* ``call_wall_s`` / ``line_s``: from the dial to the receiving terminal's phase E, in
  wall and in line seconds, both measured by faxline on the same events for both calls;
* ``cpu_s_per_page``: CPU seconds our process (all its threads) spent per page.

A second pair, cheaper, runs the line at ``SPEED`` times real time: efax (a Class 1
program by others, no ECM) and us sending the same pages non-ECM MH through the same
emulated modem. There time runs at real time only while a DTE has the turn.
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
SPEED = 8  # efax needs a page to take at least one wall second: these take several
FIGURES: dict[str, dict[str, float]] = {}
ANCHORS = {"fastfax-ecm-mmr": "spandsp-ecm-mmr", "fastfax-mh": "efax-mh"}


@pytest.fixture(scope="module", autouse=True)
def _binary() -> None:
    try:
        build()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def call_times(peer: dict) -> dict[str, float]:
    """Dial to the receiving terminal's phase E, in wall and line seconds (faxline's)."""
    done = peer["terminal"]
    return {
        "call_wall_s": done["done_wall_seconds"] - peer["dial_wall_seconds"],
        "line_s": done["done_sim_seconds"] - peer["dial_sim_seconds"],
    }


def spandsp(tmp: Path) -> dict[str, float]:
    src = tmp / "spandsp-in.tif"
    tiff.write(src, PAGES, "g4")
    rx = tmp / "spandsp-rx.tif"
    with FaxLine(a_send=src, receive=rx, speed=1, compressions=["mmr"], linger=0.2) as line:
        peer = line.wait(300)
    sender = peer["terminal_a"]
    assert sender["ok"] and peer["terminal"]["pages_rx"] == 3 and peer["terminal"]["ecm"]
    assert tiff.read(rx) == PAGES
    return {"wall_s": sender["done_wall_seconds"], **call_times(peer)}


def ours(tmp: Path, ecm: bool, speed: float) -> dict[str, float]:
    coding = ["mmr"] if ecm else ["mh"]
    rx = tmp / f"ours-{ecm}.tif"
    with FaxLine(receive=rx, speed=speed, ecm=ecm, compressions=coding, linger=0.2) as line:
        start, cpu = time.monotonic(), time.process_time()
        result = send_fax(line.port_a, "5551234", PAGES, ecm=ecm)
        wall, cpu = time.monotonic() - start, time.process_time() - cpu
        peer = line.wait(60)
    assert result.ok and result.ecm == ecm and peer["terminal"]["pages_rx"] == 3
    assert tiff.read(rx) == PAGES
    return {"wall_s": wall, **call_times(peer), "cpu_s_per_page": cpu / len(PAGES)}


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
    return {"wall_s": wall, **call_times(peer)}


@pytest.mark.parametrize("case", ["spandsp-ecm-mmr", "fastfax-ecm-mmr", "efax-mh", "fastfax-mh"])
def test_three_fine_pages_to_spandsp(benchmark, tmp_path: Path, case: str) -> None:
    if case == "efax-mh" and shutil.which("efax") is None:
        pytest.skip("needs efax")
    run = {
        "spandsp-ecm-mmr": lambda: spandsp(tmp_path),
        "fastfax-ecm-mmr": lambda: ours(tmp_path, True, 1),
        "efax-mh": lambda: efax(tmp_path),
        "fastfax-mh": lambda: ours(tmp_path, False, SPEED),
    }[case]
    figures = benchmark.pedantic(run, rounds=1, iterations=1)
    FIGURES[case] = figures
    anchor = FIGURES.get(ANCHORS.get(case, ""))
    if anchor:
        for key in ("wall_s", "call_wall_s", "line_s"):
            figures[f"{key[:-2]}_ratio"] = figures[key] / anchor[key]
    benchmark.extra_info.update(figures)
    print(f"\n{case}: " + ", ".join(f"{k}={v:.3f}" for k, v in figures.items()))
