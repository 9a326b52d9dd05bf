"""Cold start: one short document converted by a fresh ``fastfax convert`` process, end to
end, against ghostscript's ``gs -sDEVICE=tiffg4 -r204x196`` on the same PDF in the same
run (issue 15, item 6: fastfax at least as fast).

Each contender is a new process per round, as a user starts it: ``gs`` and the
``fastfax`` console script installed beside this Python (not a shell shim in front of
it, such as pyenv's, which adds its own start-up). The rounds are interleaved (gs,
fastfax, gs, ...) so that load from other work on the machine hits both alike; each
contender's wall times are reported as least, median and quartiles, with the CPU time
of its process tree, and the ratios gs / fastfax of the medians and of the least times
(above 1: fastfax is faster).

"fastfax" is the command as given (it chooses: one input of more than 24 pages renders
in two worker processes on a 2-core machine, unless every core is already busy, by the
1-minute load average, printed before and after the rounds); "fastfax -j 1" and
"fastfax -j 2" fix the choice either way.

Python's compiled bytecode: an installed fastfax has it (pip writes it at install); a
source tree run with ``PYTHONDONTWRITEBYTECODE`` (as some sandboxes set) compiles every
module at each start. The fastfax runs have bytecode cached (in a temporary
``PYTHONPYCACHEPREFIX``, written by a warm-up run); when this environment turns bytecode
off, "fastfax, no bytecode" shows that case as well.

The PDFs: "38-page text" is the one the issue measured (38 pages of 50 lines of 9-point
Helvetica, vector text drawn by PDFium, see :func:`fastfax.demo.make_pdf`); "4-page
letter" is the demo's letter (a letter, an invoice table, a note, a bar chart).

Run: ``python -m pytest bench/test_cold_start_bench.py -s`` (``COLD_ROUNDS`` sets the
rounds, default 15). No timing assertions: the figures are printed and stored in the
benchmark's ``extra_info``; the run checks that both contenders wrote every page.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

import pytest

from fastfax import tiff
from fastfax.demo import Line, demo_pages, make_pdf

ROUNDS = int(os.environ.get("COLD_ROUNDS", "15"))
GS = shutil.which("gs")
_TEXT = "The quick brown fox jumps over the lazy dog while the fax machine hums. " * 2


def _fastfax_script() -> str:
    """The ``fastfax`` console script of this Python (its bin folder first: a ``fastfax``
    earlier on PATH may be a shim that starts another program first)."""
    beside = os.path.join(os.path.dirname(sys.executable), "fastfax")
    found = beside if os.access(beside, os.X_OK) else shutil.which("fastfax")
    if found is None:
        pytest.skip("no fastfax console script installed (pip install -e .)")
    return found


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cold")
    text = folder / "text38.pdf"
    make_pdf(text, [[Line(f"{n}: {_TEXT}", 9, gap=13) for n in range(50)]] * 38)
    letter = folder / "letter4.pdf"
    make_pdf(letter, demo_pages(), bars=(0.35, 0.6, 0.8, 0.5, 0.9, 0.7))
    return {"38-page text": (str(text), 38), "4-page letter": (str(letter), 4)}


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (the process and its children) of one cold run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def _quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return q[0], q[2]


@pytest.mark.skipif(GS is None, reason="ghostscript (gs) is not installed")
@pytest.mark.parametrize("name", ["38-page text", "4-page letter"])
def test_cold_convert_against_ghostscript(benchmark, pdfs, tmp_path, name):
    pdf, pages = pdfs[name]
    script = _fastfax_script()
    plain = dict(os.environ)
    cached = {k: v for k, v in plain.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    gs_tif, ff_tif = str(tmp_path / "gs.tif"), str(tmp_path / "ff.tif")
    gs_argv = [GS, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=tiffg4", "-r204x196",
               f"-sOutputFile={gs_tif}", pdf]  # fmt: skip
    ff_argv = [script, "convert", pdf, "-o", ff_tif, "-q"]
    contenders = {
        "gs tiffg4": (gs_argv, plain),
        "fastfax": (ff_argv, cached),
        "fastfax -j 1": ([*ff_argv, "-j", "1"], cached),
        "fastfax -j 2": ([*ff_argv, "-j", "2"], cached),
    }
    if plain.get("PYTHONDONTWRITEBYTECODE"):
        contenders["fastfax, no bytecode"] = (ff_argv, plain)
    for argv, env in contenders.values():  # warm-up: the page cache, the bytecode cache
        _run(argv, env)
    load_before = os.getloadavg()[0]
    walls: dict[str, list[float]] = {k: [] for k in contenders}
    cpus: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(ROUNDS):
        for key, (argv, env) in contenders.items():
            wall, cpu = _run(argv, env)
            walls[key].append(wall)
            cpus[key].append(cpu)
    load_after = os.getloadavg()[0]
    assert len(tiff.read(gs_tif)) == pages
    assert len(tiff.read(ff_tif)) == pages

    gs_med, gs_min = statistics.median(walls["gs tiffg4"]), min(walls["gs tiffg4"])
    print(f"\ncold convert, {name} PDF ({pages} pages) -> TIFF-F G4 204x196, {ROUNDS} rounds:")
    print(
        f"  fastfax: {script}; {os.cpu_count()} cores, 1-minute load average"
        f" {load_before:.1f} before, {load_after:.1f} after"
    )
    for key in contenders:
        w, c = walls[key], cpus[key]
        q1, q3 = _quartiles(w)
        med, least = statistics.median(w), min(w)
        ratio = (
            f"   gs/this median {gs_med / med:.2f}, least {gs_min / least:.2f}"
            if key != "gs tiffg4"
            else ""
        )
        print(
            f"  {key:<20} wall ms: least {least * 1e3:5.0f}  median {med * 1e3:5.0f}"
            f"  quartiles {q1 * 1e3:4.0f}-{q3 * 1e3:4.0f}   CPU ms median"
            f" {statistics.median(c) * 1e3:5.0f}{ratio}"
        )
        benchmark.extra_info.update(
            {
                f"{key} wall ms least": round(least * 1e3, 1),
                f"{key} wall ms median": round(med * 1e3, 1),
                f"{key} wall ms quartiles": [round(q1 * 1e3, 1), round(q3 * 1e3, 1)],
                f"{key} CPU ms median": round(statistics.median(c) * 1e3, 1),
            }
        )
        if key != "gs tiffg4":
            benchmark.extra_info[f"ratio gs/{key} median"] = round(gs_med / med, 2)
            benchmark.extra_info[f"ratio gs/{key} least"] = round(gs_min / least, 2)
    benchmark.extra_info.update(
        {"pdf": name, "pages": pages, "rounds": ROUNDS, "cores": os.cpu_count(),
         "load average before": round(load_before, 2), "load average after": round(load_after, 2)}
    )  # fmt: skip
    benchmark.pedantic(_run, args=contenders["fastfax"], rounds=1, iterations=1)
