"""The fax service's throughput: 1-page faxes through loopback pairs (the real T.30
engine on an in-memory line, far faster than real time), against the bare
:func:`fastfax.transport.loopback.call` of the same page in the same run.

Figures: jobs per second the service completes (submitted, sent, received, stored in a
folder by routing) with one and with two pairs, and the service's overhead per job
(wall time per job on one pair minus the bare call's time).

Run: ``python -m pytest bench/test_service_bench.py -s``
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from fastfax import Page, tiff
from fastfax.client import connect
from fastfax.service.model import JobState
from fastfax.transport import loopback

JOBS = 40
RESULTS: dict[str, float] = {}


def _page() -> Page:
    rng = np.random.default_rng(7)
    arr = np.zeros((2200, 1728), bool)
    for _ in range(60):
        y, x = rng.integers(100, 2100), rng.integers(50, 1500)
        arr[y : y + 12, x : x + rng.integers(20, 200)] = True
    return Page.from_array(arr, 204, 196)


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "page.tif"
    tiff.write(path, [_page()], "g4")
    return str(path)


def _spool(tmp: str, pairs: int) -> str:
    spool = os.path.join(tmp, "spool")
    os.makedirs(spool)
    # two senders may dial the same line at once: the loser is busy and retries soon
    lines = ["[configuration]", "branding = false", "retries = 99", "retry_delay = 0.01"]
    for n in range(pairs):
        lines += [
            "[[devices]]",
            'kind = "loopback-pair"',
            f'name = "p{n}"',
            f'numbers = ["{n}1", "{n}2"]',
            f"store = {os.path.join(tmp, f'inbox{n}')!r}",
        ]
    with open(os.path.join(spool, "fastfax.toml"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return spool


def test_bare_loopback_call(benchmark, page_file):
    pages = tiff.read(page_file)
    sent, got = benchmark(loopback.call, pages, sender={"ident": "A"}, receiver={"ident": "B"})
    assert sent.ok and got.ok
    RESULTS["bare"] = benchmark.stats.stats.min


@pytest.mark.parametrize("pairs", [1, 2])
def test_service_jobs_per_second(benchmark, tmp_path_factory, page_file, pairs):
    def run():
        tmp = str(tmp_path_factory.mktemp(f"svc{pairs}"))
        with connect(spool=_spool(tmp, pairs)) as server:
            for port in server.ports():  # each pair's first line sends to its second
                with server.port(port.id, modify=True) as handle:
                    handle.update(send=port.id.endswith("/1"))
            start = time.perf_counter()
            jobs = [server.send(page_file, to=f"{n % pairs}2") for n in range(JOBS)]
            infos = [job.wait(120) for job in jobs]
            while any(not j.state.final for j in server.jobs()):
                time.sleep(0.005)  # received faxes routed too
            wall = time.perf_counter() - start
        assert all(i.state is JobState.COMPLETED for i in infos)
        return wall

    wall = benchmark.pedantic(run, rounds=3, iterations=1)
    best = min(benchmark.stats.stats.min, wall)
    RESULTS[f"pairs{pairs}"] = JOBS / best
    benchmark.extra_info["jobs_per_s"] = JOBS / best
    if pairs == 1 and "bare" in RESULTS:
        overhead = best / JOBS - RESULTS["bare"]
        benchmark.extra_info["overhead_ms_per_job"] = overhead * 1000
        print(
            f"\nbare loopback.call: {RESULTS['bare'] * 1000:.1f} ms/fax; service, 1 pair: "
            f"{JOBS / best:.1f} jobs/s ({best / JOBS * 1000:.1f} ms/job, overhead "
            f"{overhead * 1000:.1f} ms/job)"
        )
    else:
        print(f"\nservice, {pairs} pairs: {JOBS / best:.1f} jobs/s")
