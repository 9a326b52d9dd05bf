"""The simulated fax line (tests/peers/faxline.c) proven with efax, a Class 1 program by others.

efax sends through an emulated modem to SpanDSP's fax terminal, SpanDSP's terminal sends
to efax, and efax sends to efax through two emulated modems.  Pages are compared with
their source pixel for pixel, except for the header efax writes at the top of what it
sends.  Every subprocess has a hard timeout and is killed in teardown.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from faxline import FaxLine  # noqa: E402

EFAX_TIMEOUT = 90
WIDTH = 1728

pytestmark = [
    pytest.mark.usefixtures("faxline_built"),
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("efax", "efix", "ppm2tiff", "tiffcp")),
        reason="needs efax and libtiff-tools",
    ),
]


def make_page(seed: int, rows: int) -> np.ndarray:
    """A page of boxes, text and a diagonal: a bool array, True = black."""
    rng = np.random.default_rng(seed)
    im = Image.new("1", (WIDTH, rows), 1)
    draw = ImageDraw.Draw(im)
    for _ in range(rows // 6):
        x, y = int(rng.integers(0, WIDTH - 60)), int(rng.integers(0, rows - 12))
        draw.rectangle([x, y, x + int(rng.integers(4, 60)), y + int(rng.integers(2, 12))], fill=0)
    for y in range(60, rows - 20, 40):
        draw.text((100, y), f"fastfax line test {seed} row {y} " * 6, fill=0)
    draw.line([0, rows - 1, WIDTH - 1, 0], fill=0, width=3)
    return np.array(im) == 0


def write_g3(pages: list[np.ndarray], path: Path, ydpi: int) -> None:
    """Write a single-strip-per-page G3 TIFF (min-is-white) with libtiff's own tools."""
    parts = []
    for n, bits in enumerate(pages):
        pbm = path.with_suffix(f".{n}.pbm")
        Image.fromarray(~bits).convert("1").save(pbm)
        part = path.with_suffix(f".{n}.tif")
        subprocess.run(
            ["ppm2tiff", "-c", "g3", "-r", "100000", "-R", "204", str(pbm), str(part)],
            check=True,
            timeout=30,
        )
        subprocess.run(["tiffset", "-s", "283", str(ydpi), str(part)], check=True, timeout=30)
        parts.append(str(part))
    if len(parts) == 1:
        shutil.copy(parts[0], path)
    else:
        subprocess.run(["tiffcp", *parts, str(path)], check=True, timeout=30)


def write_for_efax(bits: np.ndarray, path: Path, ydpi: int) -> None:
    """A G3 TIFF made by efix, efax's own converter.

    efax reads a page's codes up to RTC or the end of the file; libtiff's files put the
    directory after the strip, which efax would decode as extra rows.
    """
    pbm = path.with_suffix(".pbm")
    Image.fromarray(~bits).convert("1").save(pbm)
    res = f"204x{ydpi}"
    with open(path, "wb") as out:
        subprocess.run(
            ["efix", "-i", "pbm", "-R", res, "-r", res, "-o", "tiffg3", str(pbm)],
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=30,
        )


def read_pages(path: Path) -> list[np.ndarray]:
    """All pages of a TIFF as bool arrays, True = black (Pillow honours the photometric)."""
    pages = []
    with Image.open(path) as im:
        for n in range(getattr(im, "n_frames", 1)):
            im.seek(n)
            pages.append(np.array(im.convert("L")) < 128)
    return pages


def assert_page_with_header(received: np.ndarray, source: np.ndarray) -> None:
    """efax overwrites the top of a page with its header: everything below must be exact."""
    assert received.shape[1] == WIDTH
    skip = 40  # rows of the source that may lie under efax's header
    body = source[skip:]
    matches = [
        off
        for off in range(0, 100)
        if off + len(body) <= len(received)
        and np.array_equal(received[off : off + len(body)], body)
    ]
    assert matches, "the source page's rows below the header are not in the received page"
    tail = received[matches[0] + len(body) :]
    assert not tail.any(), "rows after the page body must be white"


def efax(args: list[str], log: Path) -> subprocess.CompletedProcess[bytes]:
    with open(log, "wb") as out:
        return subprocess.run(
            ["efax", "-o1", "-vewinchrt", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=EFAX_TIMEOUT,
        )


def show(line: FaxLine, *logs: Path) -> str:
    text = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    return f"{text}\n--- faxline\n{line.log()[-4000:]}"


def test_efax_sends_to_spandsp_terminal(tmp_path: Path) -> None:
    source = make_page(1, 900)
    write_for_efax(source, tmp_path / "in.tif", 98)
    received = tmp_path / "rx.tif"
    # efax divides by the whole seconds a page took: at speed 8 this page (30 KB, 17 s of
    # line time at 14400 bit/s) takes about 2 wall seconds.
    line = FaxLine(receive=received, speed=8, ident="SPANDSP RX", log_path=tmp_path / "line.log")
    with line:
        done = efax(
            ["-d", line.port_a, "-l", "EFAX TX", "-t", "123", str(tmp_path / "in.tif")],
            tmp_path / "e.log",
        )
        result = line.wait(timeout=60)
    assert done.returncode == 0, show(line, tmp_path / "e.log")
    term = result["terminal"]
    assert result["exit"] == "completed"
    assert term["ok"] and term["completion"] == "OK", show(line, tmp_path / "e.log")
    assert term["pages_rx"] == 1
    assert term["remote_ident"].strip() == "EFAX TX"
    assert term["ecm"] is False  # efax does not do ECM
    assert term["width"] == WIDTH
    pages = read_pages(received)
    assert len(pages) == 1
    assert_page_with_header(pages[0], source)


def test_spandsp_terminal_sends_two_fine_pages_to_efax(tmp_path: Path) -> None:
    sources = [make_page(2, 500), make_page(3, 300)]
    write_g3(sources, tmp_path / "in.tif", 196)
    line = FaxLine(send=tmp_path / "in.tif", calling=True, speed=0, log_path=tmp_path / "line.log")
    with line:
        done = efax(["-d", line.port_a, "-r", str(tmp_path / "recv")], tmp_path / "e.log")
        result = line.wait(timeout=60)
    assert done.returncode == 0, show(line, tmp_path / "e.log")
    term = result["terminal"]
    assert term["ok"], show(line, tmp_path / "e.log")
    assert term["pages_tx"] == 2
    assert term["bit_rate"] == 14400
    received = sorted(tmp_path.glob("recv.0*"))
    assert [p.suffix for p in received] == [".001", ".002"]
    for path, source in zip(received, sources, strict=True):
        (page,) = read_pages(path)
        assert np.array_equal(page, source)  # SpanDSP adds no header unless told to
        with Image.open(path) as im:
            assert round(im.info["dpi"][1]) == 196


def test_efax_to_efax_through_two_modems(tmp_path: Path) -> None:
    source = make_page(4, 900)
    write_for_efax(source, tmp_path / "in.tif", 98)
    line = FaxLine(speed=8, log_path=tmp_path / "line.log")
    receiver = None
    with line:
        assert line.port_b and line.port_b != line.port_a
        with open(tmp_path / "rx.log", "wb") as out:
            receiver = subprocess.Popen(
                ["efax", "-o1", "-vewinchrt", "-d", line.port_b, "-r", str(tmp_path / "recv")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            done = efax(
                ["-d", line.port_a, "-t", "555", str(tmp_path / "in.tif")], tmp_path / "tx.log"
            )
            rx_code = receiver.wait(timeout=EFAX_TIMEOUT)
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait(timeout=10)
        result = line.wait(timeout=60)
    logs = (tmp_path / "tx.log", tmp_path / "rx.log")
    assert done.returncode == 0 and rx_code == 0, show(line, *logs)
    assert result["exit"] == "completed"
    assert "terminal" not in result
    (path,) = tmp_path.glob("recv.0*")
    (page,) = read_pages(path)
    assert_page_with_header(page, source)


def test_spandsp_terminal_to_spandsp_terminal(tmp_path: Path) -> None:
    """--a-send: a terminal on each side, no DTE; the anchor the Class 1 benchmark times."""
    sources = [make_page(7, 400), make_page(8, 300)]
    write_g3(sources, tmp_path / "in.tif", 196)
    received = tmp_path / "rx.tif"
    line = FaxLine(a_send=tmp_path / "in.tif", receive=received, speed=0, log_path=tmp_path / "l")
    with line:
        assert line.port_a == "" and line.port_b is None
        result = line.wait(timeout=60)
    rx, tx = result["terminal"], result["terminal_a"]
    assert result["exit"] == "completed", line.log()[-3000:]
    assert rx["ok"] and tx["ok"] and rx["pages_rx"] == tx["pages_tx"] == 2
    assert (rx["remote_ident"].strip(), tx["remote_ident"].strip()) == ("FAXLINE A", "FAXLINE")
    assert rx["ecm"] and rx["bit_rate"] == 14400
    assert result["dial_sim_seconds"] == 0.0
    assert 0 < rx["done_sim_seconds"] <= tx["done_sim_seconds"] <= result["sim_seconds"]
    pages = read_pages(received)
    assert len(pages) == 2 and all(map(np.array_equal, pages, sources))
    with pytest.raises(ValueError, match="a_send"):
        FaxLine(a_send=tmp_path / "in.tif", send=tmp_path / "in.tif")


def test_noise_drowns_the_line(tmp_path: Path) -> None:
    """With noise louder than the signal no frame gets through: both ends give up."""
    write_for_efax(make_page(5, 100), tmp_path / "in.tif", 98)
    line = FaxLine(receive=tmp_path / "rx.tif", speed=0, noise_dbm0=0.0, log_path=tmp_path / "l")
    with line:
        done = efax(["-d", line.port_a, "-t", "123", str(tmp_path / "in.tif")], tmp_path / "e.log")
        result = line.wait(timeout=60)
    assert done.returncode != 0
    term = result["terminal"]
    assert term["done"] and not term["ok"]
    assert term["pages_rx"] == 0
    assert term["completion"] != "OK"


def test_stop_and_timeout_end_the_peer(tmp_path: Path) -> None:
    line = FaxLine(receive=tmp_path / "rx.tif", log_path=tmp_path / "a.log").start()
    try:
        assert Path(line.port_a).exists()
    finally:
        result = line.stop()
    assert result is not None and result["exit"] == "signal"
    assert result["terminal"]["done"] is False
    with FaxLine(timeout=1.0, log_path=tmp_path / "b.log") as idle:
        result = idle.wait(timeout=20)
    assert result["exit"] == "timeout"
    assert result["modem_a"]["rings"] == 0


@pytest.mark.realtime
def test_spandsp_terminal_to_efax_in_real_time(tmp_path: Path) -> None:
    source = make_page(6, 200)
    write_g3([source], tmp_path / "in.tif", 98)
    line = FaxLine(send=tmp_path / "in.tif", calling=True, speed=1, log_path=tmp_path / "l")
    with line:
        done = efax(["-d", line.port_a, "-r", str(tmp_path / "recv")], tmp_path / "e.log")
        result = line.wait(timeout=60)
    assert done.returncode == 0, show(line, tmp_path / "e.log")
    assert result["terminal"]["ok"]
    assert result["realtime_seconds"] == pytest.approx(result["sim_seconds"])
    (path,) = tmp_path.glob("recv.0*")
    (page,) = read_pages(path)
    assert np.array_equal(page, source)
