"""fastfax.class1 over a noisy simulated line (tests/peers/faxline.c, SpanDSP's modems).

faxline adds white Gaussian noise under each side's signal, each burst's noise drawn
from the seed and the burst's number, so a call with the same seed meets the same noise.
The levels are loud enough to damage high-speed page data but not V.21 (swept by hand:
at -36 dBm0 V.17 14400 passes the training check yet loses ECM frames; at -30 dBm0 the
training check falls back to 9600 or 7200 and rows still get damaged; V.21 holds up to
about -25 dBm0). With ECM the damaged frames are asked for again (PPR) and the pages
arrive bit-exact. Without ECM the receiver repairs damaged rows and counts them: every
received row that is not the source's row, in order, is one it counted; a page past the
copy-quality limits is refused with RTN.
"""

from __future__ import annotations

import difflib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fastfax import Page, tiff
from fastfax.class1 import Cause, Result, receive_fax, send_fax
from fastfax.samples import text_page

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from faxline import FaxLine  # noqa: E402

PAGES = [text_page(resolution="fine", seed=0, height=1100)]
TIFF_CODING = {"mh": "g3", "mr": "g3-2d", "mmr": "g4"}


pytestmark = pytest.mark.usefixtures("faxline_built")


def unexplained_rows(received: Page, source: Page) -> int:
    """Rows of ``received`` outside its longest in-order match with ``source``'s rows.

    A repaired row (a copy of the row above) is one of them, and so is any row damaged
    without the decoder noticing; rows the intact data carried appear in the source's
    order. (A damaged EOL can also merge rows, so the page may come out shorter.)
    """
    match = difflib.SequenceMatcher(None, list(source.rows()), list(received.rows()), False)
    return received.height - sum(block.size for block in match.get_matching_blocks())


def assert_honest(result: Result) -> None:
    """Pages arrived damaged, and every received row that is not the source's was counted."""
    assert len(result.pages) == len(PAGES) and result.pages != PAGES
    assert result.bad_rows == sum(page.bad_rows for page in result.pages) > 0
    for page, source in zip(result.pages, PAGES, strict=True):
        assert unexplained_rows(page, source) <= page.bad_rows
        assert page.consecutive_bad_rows <= page.bad_rows


def spandsp_sends(tmp_path: Path, ecm: bool, coding: str, noise: float, seed: int) -> Result:
    tx = tmp_path / "tx.tif"
    tiff.write(tx, PAGES, TIFF_CODING[coding])
    with FaxLine(send=tx, calling=True, speed=8, ecm=ecm, compressions=[coding],
                 noise_dbm0=noise, seed=seed, log_path=tmp_path / "line.log") as line:  # fmt: skip
        result = receive_fax(line.port_a, rings=1, ring_timeout=30, ecm=ecm)
        peer = line.wait(60)["terminal"]
    assert result.ecm == ecm and peer["pages_tx"] <= 1, f"{result}\n{show(line)}"
    if ecm:
        assert peer["ecm_retries"] == result.retransmitted_frames
    return result


def show(line: FaxLine) -> str:
    return line.log()[-3000:]


def test_ecm_we_send_through_noise(tmp_path: Path) -> None:
    rx = tmp_path / "rx.tif"
    with FaxLine(receive=rx, speed=8, compressions=["mmr"], noise_dbm0=-36, seed=1,
                 log_path=tmp_path / "line.log") as line:  # fmt: skip
        result = send_fax(line.port_a, "5551234", PAGES, ecm=True)
        peer = line.wait(60)["terminal"]
    assert result.ok and result.ecm and peer["ok"], f"{result}\n{show(line)}"
    assert result.rate == 14400 and result.retransmitted_frames > 0  # SpanDSP sent PPRs
    assert tiff.read(rx) == PAGES


def test_ecm_we_receive_through_noise(tmp_path: Path) -> None:
    result = spandsp_sends(tmp_path, True, "mmr", -30, seed=1)
    assert result.ok and result.retransmitted_frames > 0  # we sent PPRs
    assert result.pages == PAGES and result.bad_rows == 0


def test_non_ecm_we_receive_and_count_bad_rows(tmp_path: Path) -> None:
    result = spandsp_sends(tmp_path, False, "mh", -30, seed=1)
    assert result.ok and result.rtn_pages == 0, result
    assert_honest(result)


def test_non_ecm_too_damaged_is_refused(tmp_path: Path) -> None:
    """A page past the copy-quality limits is answered RTN, not passed on as received."""
    result = spandsp_sends(tmp_path, False, "mh", -30, seed=8)
    assert result.cause is Cause.RX_DCNNORTN and result.rtn_pages == 1
    assert result.pages == [] and result.bad_rows == 0


def test_non_ecm_ours_to_ours_through_noise(tmp_path: Path) -> None:
    with FaxLine(speed=8, noise_dbm0=-30, seed=2, log_path=tmp_path / "line.log") as line, \
            ThreadPoolExecutor(1) as pool:  # fmt: skip
        port_b = line.port_b
        assert port_b is not None
        rx = pool.submit(receive_fax, port_b, rings=1, ring_timeout=30, ecm=False, codings=["mh"])
        tx = send_fax(line.port_a, "5551234", PAGES, ecm=False, codings=["mh"])
        got = rx.result(timeout=120)
    assert tx.ok and got.ok and got.coding == "mh", f"{tx} {got}\n{show(line)}"
    assert_honest(got)


def test_non_ecm_mr_counts_rows_decoded_from_a_repaired_row(tmp_path: Path) -> None:
    result = spandsp_sends(tmp_path, False, "mr", -30, seed=5)
    assert result.ok and result.coding == "mr", result
    assert_honest(result)
