"""Shared set-up of the codec benchmarks: the libtiff C peer and the closing ratio table.

The peer (``bench/peers/libtiff_codec.c``) is compiled with gcc against the system
libtiff on first use; without gcc or libtiff's headers the libtiff anchors are skipped
with the reason, and fastfax's own benchmarks still run.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

PEER_MODULE = Path(__file__).resolve().parent / "peers" / "libtiff_codec.py"
PEER_NAME = "fastfax_bench_libtiff_codec"


def peer_module() -> ModuleType:
    """``bench/peers/libtiff_codec.py``, imported once under a private name."""
    if PEER_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(PEER_NAME, PEER_MODULE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[PEER_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[PEER_NAME]


class Results:
    """Best seconds per page of each (operation, scheme, page, coder) measured so far."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str, str, str], float] = {}
        self.notes: list[str] = []

    def add(self, op: str, scheme: str, page: str, coder: str, seconds: float) -> None:
        self.seconds[(op, scheme, page, coder)] = seconds

    def ratio(self, op: str, scheme: str, page: str, anchor: str) -> float | None:
        """Our throughput over ``anchor``'s (> 1: we are faster), if both were measured."""
        ours = self.seconds.get((op, scheme, page, "fastfax"))
        theirs = self.seconds.get((op, scheme, page, anchor))
        return theirs / ours if ours and theirs else None

    def table(self) -> Iterator[str]:
        cases = sorted({key[:3] for key in self.seconds}, key=lambda k: (k[2], k[0], k[1]))
        yield (
            f"{'page':<15}{'op':<8}{'scheme':<7}{'fastfax p/s':>12}{'libtiff-C p/s':>15}"
            f"{'ratio':>9}{'Pillow p/s':>12}{'ratio':>9}"
        )
        for op, scheme, page in cases:
            cells = [f"{page:<15}{op:<8}{scheme:<7}"]
            for coder, width in (("fastfax", 12), ("libtiff-c", 15), ("pillow", 12)):
                seconds = self.seconds.get((op, scheme, page, coder))
                cells.append(f"{1 / seconds:>{width}.0f}" if seconds else f"{'-':>{width}}")
                if coder != "fastfax":
                    ratio = self.ratio(op, scheme, page, coder)
                    cells.append(f"{ratio:>8.2f}x" if ratio else f"{'-':>9}")
            yield "".join(cells)


_RESULTS = Results()


@pytest.fixture(scope="session")
def results() -> Results:
    return _RESULTS


@pytest.fixture(scope="session")
def libtiff_or_none():
    """The libtiff C peer, or None (with a note in the summary) if it cannot be built."""
    module = peer_module()
    try:
        return module.load()
    except module.PeerUnavailable as exc:
        _RESULTS.notes.append(f"libtiff anchors skipped: {exc}")
        return None


@pytest.fixture(scope="session")
def libtiff(libtiff_or_none):
    """The libtiff C peer; skips the test with the reason if it cannot be built here."""
    if libtiff_or_none is None:
        pytest.skip("libtiff C peer unavailable: needs gcc and libtiff-dev (see the summary)")
    return libtiff_or_none


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _RESULTS.seconds and not _RESULTS.notes:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fastfax codec throughput (best pages/s, ratio = fastfax / anchor)")
    if _RESULTS.seconds:
        for line in _RESULTS.table():
            write(line)
        write("libtiff-C: TIFFWriteEncodedStrip / TIFFReadEncodedStrip timed inside C;")
        write("Pillow: Image.save(..., compression='group3'/'group4') / Image.open(...).load()")
    for note in _RESULTS.notes:
        write(note)


@pytest.fixture(scope="module")
def pg() -> Iterator[object]:
    """A throw-away PostgreSQL server (tests/service_helpers.PostgresServer) for the store
    and cluster benches; skipped where PostgreSQL or psycopg is missing."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from service_helpers import PostgresServer, PostgresUnavailable

    try:
        import psycopg  # noqa: F401

        server = PostgresServer()
    except (ImportError, PostgresUnavailable) as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()
