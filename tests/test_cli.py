"""The ``fastfax`` command: convert, info, demo; exit statuses a script can trust."""

import argparse
import os
import pty
import re
import subprocess
import sys

import pytest
from PIL import Image

from fastfax import cli, cli_common, tiff
from fastfax.cli import main
from fastfax.demo import Line, make_pdf
from fastfax.document.layout import layout_for


def _pdf(path, pages=2):
    make_pdf(path, [[Line(f"page {n + 1}", 20)] for n in range(pages)])
    return str(path)


def _run(*args):
    """The installed console script, as a user runs it (stdout/stderr not a terminal)."""
    return subprocess.run(["fastfax", *args], capture_output=True, text=True, timeout=120)


def test_convert_into_a_pipe_prints_a_summary_only(tmp_path):
    pdf = _pdf(tmp_path / "a.pdf", 3)
    proc = _run("convert", pdf, "-o", str(tmp_path / "a.tif"), "--resolution", "standard")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # no progress bar into a pipe: one summary line
    assert re.fullmatch(r"1 of 1 files, 3 pages in [0-9.]+ s \([0-9.]+ pages/s\)\n", proc.stderr)
    quiet = _run("convert", pdf, "-o", str(tmp_path / "b.tif"), "-q")
    assert quiet.returncode == 0 and quiet.stdout == quiet.stderr == ""
    pages = tiff.read(tmp_path / "a.tif")
    expect = layout_for("a4", "standard")
    assert len(pages) == 3
    assert (pages[0].xres, pages[0].yres, pages[0].height) == (204, 98, expect.height)


def test_options_reach_the_output(tmp_path):
    pdf = _pdf(tmp_path / "a.pdf", 2)
    out = tmp_path / "a.tif"
    status = main(
        [
            "convert",
            pdf,
            "-o",
            str(out),
            "--page-size",
            "b4",
            "--resolution",
            "ultrafine",
            "--compression",
            "g3-2d",
            "--header",
            "ACME",
            "--to",
            "Jane",
            "--subject",
            "Hello",
            "-j",
            "1",
        ]
    )
    assert status == 0
    pages = tiff.read(out)
    assert len(pages) == 3  # cover + 2
    assert (pages[0].width, pages[0].xres, pages[0].yres) == (4096, 408, 391)
    info = subprocess.run(["tiffinfo", str(out)], capture_output=True, text=True).stdout
    assert info.count("Group 3 Options: 2-d encoding") == 3


def test_directory_in_directory_out_and_exit_status_1(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _pdf(src / "one.pdf")
    Image.new("L", (300, 400), 0).save(src / "two.png")
    (src / "three.txt").write_text("hello\nfax\n")
    (src / "broken.pdf").write_bytes(b"%PDF-1.4 nothing here")
    (src / ".hidden").write_text("skipped")
    out = tmp_path / "out"
    proc = _run("convert", str(src), "-o", str(out), "--format", "pdf")
    assert proc.returncode == 1
    assert "broken.pdf" in proc.stderr and proc.stderr.count("fastfax:") == 1
    assert sorted(os.listdir(out)) == ["one.pdf", "three.pdf", "two.pdf"]


def test_several_inputs_go_to_a_folder_named_by_stem(tmp_path):
    a = _pdf(tmp_path / "a.pdf", 1)
    b = _pdf(tmp_path / "b.pdf", 1)
    assert main(["convert", a, b, "-o", str(tmp_path / "faxes"), "-j", "2"]) == 0
    assert sorted(os.listdir(tmp_path / "faxes")) == ["a.tif", "b.tif"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["convert", "x.pdf", "-o", "y.doc"], "cannot tell the format"),
        (["convert", "x.pdf", "-o", "y.tif", "--width", "2000"], "not a fax width"),
        (["convert", "x.pdf", "-o", "y.tif", "--jobs", "0"], "--jobs"),
        (["convert", "x.pdf", "-o", "y.tif", "--page-size", "a5"], "invalid choice"),
        (["convert", "x.pdf"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(args, message):
    proc = _run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_convert_of_a_pdf_loads_no_numpy_pillow_or_worker_machinery(tmp_path):
    """The cold start of ``fastfax convert``: a short PDF to G4 TIFF imports neither numpy
    nor Pillow nor pypdfium2's Python layer (PDFium is reached through its C bindings),
    nor multiprocessing when it converts in the command's own process."""
    pdf = _pdf(tmp_path / "a.pdf", 2)
    out = tmp_path / "a.tif"
    code = (
        "import sys; from fastfax.cli import main; "
        f"assert main(['convert', {pdf!r}, '-o', {str(out)!r}, '-q', '-j', '1']) == 0; "
        "print(sorted(m for m in ('numpy', 'PIL', 'pypdfium2', 'multiprocessing', 'tqdm') "
        "if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"
    assert len(tiff.read(out)) == 2


def test_missing_input_exits_1(tmp_path):
    proc = _run("convert", str(tmp_path / "nope.pdf"), "-o", str(tmp_path / "n.tif"))
    assert proc.returncode == 1 and "nope.pdf" in proc.stderr
    assert not (tmp_path / "n.tif").exists()


def test_info_describes_tiff_and_pdf(tmp_path, capsys):
    pdf = _pdf(tmp_path / "a.pdf", 2)
    assert main(["convert", pdf, "-o", str(tmp_path / "a.tif"), "-j", "1"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "a.tif"), pdf]) == 0
    out = capsys.readouterr().out
    assert "pages   2" in out and "1728 x 2292 px at 204 x 196 dpi" in out and "group4" in out
    assert "210 x 297 mm" in out
    assert main(["info", str(tmp_path / "missing.tif")]) == 1


def test_demo_makes_every_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fastfax.cli", "demo", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    names = sorted(os.listdir(tmp_path / "demo"))
    assert {"letter.pdf", "letter.tif", "letter-view.pdf", "letter-001.png"} <= set(names)
    pages = tiff.read(tmp_path / "demo" / "letter.tif")
    assert len(pages) == 5 and len([n for n in names if n.endswith(".png")]) == 5
    assert "pages/s" in proc.stdout


def test_progress_lines_into_a_log_and_a_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for name in "abc":
        _pdf(src / f"{name}.pdf", 2)
    monkeypatch.setattr(cli_common, "LOG_EVERY", 0.0)  # a line at every report
    assert main(["convert", str(src), "-o", str(tmp_path / "out"), "-j", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("3 of 3 files, 6 pages in ")
    assert any(re.fullmatch(r"fastfax: [1-6]/[2-6] pages, [0-9.]+ pages/s", line) for line in err)
    # on a terminal: a tqdm bar (carriage returns), then the summary
    main_fd, tty = pty.openpty()
    try:
        proc = subprocess.run(
            ["fastfax", "convert", str(src), "-o", str(tmp_path / "tty"), "-j", "1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=tty,
            timeout=120,
        )
        os.close(tty)
        shown = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main_fd)
    assert proc.returncode == 0
    text = shown.decode(errors="replace")
    assert "\r" in text and re.search(r"\| [0-6]/[2-6] \[", text) and "page/s" in text
    assert "3 of 3 files, 6 pages in" in text


def test_one_short_input_converts_in_this_process(tmp_path, monkeypatch):
    """Worker processes only pay off past a couple of dozen pages, and only with a core
    idle: otherwise one input converts in the command's process; ``--jobs`` always
    decides."""
    short = _pdf(tmp_path / "short.pdf", 2)
    long = _pdf(tmp_path / "long.pdf", cli.IN_PROCESS_PAGES + 1)
    cores = os.cpu_count() or 1
    load = [0.0]
    monkeypatch.setattr(os, "getloadavg", lambda: (load[0], load[0], load[0]))

    def chosen(files, jobs=None):
        args = argparse.Namespace(jobs=jobs, password=None)
        return cli._processes(args, files)

    assert chosen([short]) == 1
    assert chosen([long]) is None  # a worker per core
    assert chosen([short, short]) is None
    assert chosen([long], jobs=1) == 1 and chosen([short], jobs=3) == 3
    assert chosen([str(tmp_path / "missing.pdf")]) is None  # convert reports it
    load[0] = cores - 0.5  # a core still partly idle
    assert chosen([long]) is None
    load[0] = float(cores)  # every core busy: this process alone
    assert chosen([long]) == 1
    assert chosen([short, short]) is None and chosen([long], jobs=2) == 2
