"""T.38 gateway scale: many simultaneous calls of ours on one event loop, and SpanDSP's
``t38_terminal`` pairs (C) in the same run.

Ours: ``CALLS`` calls (half senders, half receivers, all :mod:`fastfax.transport.t38` on
one asyncio loop in this process) over 127.0.0.1 UDP, each sender with one fine page
(``samples.text_page``) in ECM, T.38 version 0, redundancy 3, at ``SPEED`` (1 = real
time, the issue's definition). Every call must end with ``Cause.OK`` and every received
page must equal the page sent (bit for bit). While the calls run, a probe task asks the
loop to wake it every 10 ms and records how late it was woken: the largest lateness is
reported beside T.30's shortest timer margin (a late loop is what would break a timer).

SpanDSP: ``tests/peers/t38peer --pairs CALLS/2`` (at most 500 pairs): its t38_terminal
pairs in one C process with a poll loop, the same page as a TIFF, ECM, version 0,
redundancy 3, the same speed. It runs after ours (not beside it: the two would share the
two cores and each would time the other).

Figures: process CPU seconds (user + system, ``getrusage``) over the whole run divided by
the pages received bit-exact (*CPU per page*), and *calls per core*: call endpoints
carried per fully busy core at this cost, i.e. ``endpoints x call line seconds / CPU
seconds``. Environment: ``FASTFAX_T38_CALLS`` (default 1000), ``FASTFAX_T38_SPEED``
(default 1), ``FASTFAX_T38_LOOP`` (``asyncio``, the default, or ``uvloop``: the same calls
on uvloop's event loop, when it is installed; :mod:`fastfax.transport.t38` runs on either),
``FASTFAX_T38_SOCKETS`` (``own``, the default: every call on a socket of its own;
``shared``: the receivers all on one :class:`~fastfax.transport.t38.T38Port`, each
answering the next caller; the senders keep a socket each, so the port can tell them apart).

    python3 -m pytest bench/test_t38_gateway_bench.py -q -s
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from pathlib import Path

import pytest

from fastfax import samples, tiff
from fastfax.page import Page
from fastfax.t30.result import Cause
from fastfax.t30.station import create
from fastfax.t38.sdp import T38Params
from fastfax.t38.terminal import T38Terminal
from fastfax.transport.t38 import T38Port, run_call

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "peers"))
from t38peer import PeerUnavailable, T38Peer  # noqa: E402

CALLS = int(os.environ.get("FASTFAX_T38_CALLS", "1000"))
SPEED = float(os.environ.get("FASTFAX_T38_SPEED", "1"))
LOOP = os.environ.get("FASTFAX_T38_LOOP", "asyncio")
SOCKETS = os.environ.get("FASTFAX_T38_SOCKETS", "own")
#: How long the last sender may be started after the first (line seconds): calls are set
#: up over a short spread, as a gateway's calls arrive, not all in one tick.
RAMP_S = 2.0
FIGURES: dict[str, dict[str, float]] = {}


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def raise_file_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"{need} sockets needed, the open-file limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def page() -> Page:
    return samples.text_page(resolution="fine")


async def run_ours(pairs: int, speed: float, sent: Page) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    params = T38Params(version=0, error_correction="redundancy", max_datagram=400)
    lateness = [0.0]
    running = True

    async def probe() -> None:
        while running:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            lateness[0] = max(lateness[0], loop.time() - due)

    shared = await T38Port.open(("127.0.0.1", 0)) if SOCKETS == "shared" else None

    async def one(k: int) -> tuple[object, object, float]:
        bound = loop.create_future()
        rx = T38Terminal(create(calling=False, ecm=True), params=params, speed=speed)
        receiving = asyncio.create_task(
            run_call(rx, bind=("127.0.0.1", 0), wait_for_call=60, on_bound=bound.set_result,
                     port=shared)  # fmt: skip
        )
        port = (await bound)[1]
        await asyncio.sleep(RAMP_S / speed * k / max(1, pairs))
        tx = T38Terminal(create(calling=True, pages=[sent], ecm=True), params=params,
                         speed=speed)  # fmt: skip
        started = loop.time()
        sent_result = await run_call(tx, bind=("127.0.0.1", 0), peer=("127.0.0.1", port))
        line_s = (loop.time() - started) * speed
        return sent_result, await receiving, line_s

    probing = asyncio.create_task(probe())
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    results = await asyncio.gather(*(one(k) for k in range(pairs)))
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    running = False
    await probing
    if shared is not None:
        shared.close()
    calls_ok = pages_ok = 0
    causes: dict[str, int] = {}
    for tx_result, rx_result, _ in results:
        for r in (tx_result, rx_result):
            causes[r.cause.name] = causes.get(r.cause.name, 0) + 1
        if tx_result.cause is Cause.OK and rx_result.cause is Cause.OK:
            calls_ok += 1
            pages_ok += sum(1 for p in rx_result.pages if p == sent)
    line_s = sum(r[2] for r in results) / len(results)
    return {
        "pairs": pairs, "calls_ok": calls_ok, "pages_ok": pages_ok, "cpu_seconds": cpu,
        "wall_seconds": wall, "call_line_seconds": line_s, "max_loop_late_s": lateness[0],
        "causes": causes, "pages_are": "bit-exact", "sockets": SOCKETS,
    }  # fmt: skip


def report(name: str, fig: dict) -> None:
    endpoints = 2 * fig["pairs"]
    per_page = fig["cpu_seconds"] / fig["pages_ok"] if fig["pages_ok"] else float("inf")
    calls_per_core = endpoints * fig["call_line_seconds"] / fig["cpu_seconds"]
    fig["cpu_per_page_ms"] = per_page * 1e3
    fig["calls_per_core"] = calls_per_core
    FIGURES[name] = fig
    print(
        f"\n{name}{' on ' + fig['loop'] if 'loop' in fig else ''}"
        f"{', receivers on ' + fig['sockets'] + ' sockets' if 'sockets' in fig else ''}: "
        f"{fig['pairs']} pairs ({endpoints} calls) at speed {SPEED:g}: "
        f"{fig['calls_ok']} calls ok, {fig['pages_ok']} pages {fig['pages_are']}, "
        f"CPU {fig['cpu_seconds']:.2f} s in {fig['wall_seconds']:.1f} s wall, "
        f"{per_page * 1e3:.1f} ms CPU per page, {calls_per_core:.0f} calls per core "
        f"(call {fig['call_line_seconds']:.1f} line s)"
        + (f", loop late at most {fig['max_loop_late_s'] * 1e3:.0f} ms"
           if "max_loop_late_s" in fig else "")  # fmt: skip
        + (f", causes {fig['causes']}" if "causes" in fig else "")
    )
    if len(FIGURES) == 2:
        ours, theirs = FIGURES["fastfax"], FIGURES["spandsp-c"]
        print(
            f"CPU per page fastfax / SpanDSP-C: "
            f"{ours['cpu_per_page_ms'] / theirs['cpu_per_page_ms']:.2f}x (target <= 1.5x)"
        )


def test_fastfax_calls() -> None:
    pairs = CALLS // 2
    raise_file_limit(2 * pairs + 256)
    sent = page()
    if LOOP == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            fig = runner.run(run_ours(pairs, SPEED, sent))
    else:
        fig = asyncio.run(run_ours(pairs, SPEED, sent))
    fig["loop"] = LOOP
    report("fastfax", fig)
    assert fig["calls_ok"] == pairs, fig["causes"]
    assert fig["pages_ok"] == pairs


def test_spandsp_pairs(tmp_path: Path) -> None:
    pairs = min(CALLS // 2, 500)
    raise_file_limit(2 * pairs + 256)
    source = tmp_path / "page.tif"
    tiff.write(source, page(), "g4")
    try:
        peer = T38Peer(send=source, pairs=pairs, speed=SPEED, ecm=True, version=0,
                       ec="redundancy", redundancy=3, timeout=600 / SPEED + 120)  # fmt: skip
        with peer:
            result = peer.wait()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))
    fig = {
        "pairs": pairs, "calls_ok": result["calls_ok"], "pages_ok": result["pages_ok"],
        "cpu_seconds": result["cpu_seconds"], "wall_seconds": result["wall_seconds"],
        "call_line_seconds": result["sim_seconds"], "pages_are": "received (T.30 OK)",
    }  # fmt: skip
    report("spandsp-c", fig)
    assert result["calls_ok"] == pairs
