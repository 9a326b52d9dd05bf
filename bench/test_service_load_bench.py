"""A gateway's load on the fax service (issue 11): 10 clients x 500 one-page faxes
through ``fastfax serve`` over HTTP, the daemon killed (SIGKILL) once half are
submitted and started again; every job must complete and every fax arrive exactly once
at the far lines' stores, pixel for pixel (see ``tests/service_helpers.gateway_load``).

Figures: submit latency p50/p99, jobs per second (first submit to the last fax routed,
the kill and restart included), the daemon's CPU per job, the bare T.30 loopback call of
the same page in the same run, and the service's overhead per job: the daemon's CPU per
job minus the bare call's time (the bare call is all CPU).

Twice: the daemon free to run on any CPU, and kept on one (``fastfax serve --cpus N``,
the last CPU this process may use): its threads take turns holding Python's interpreter
lock, so it uses about one CPU at a time either way, and on one its threads hand jobs to
each other without moving between CPUs' caches.

Run: ``python -m pytest bench/test_service_load_bench.py -s`` (``FASTFAX_LOAD=3x40`` for
a short run)
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from service_helpers import gateway_load  # noqa: E402


@pytest.mark.parametrize("pinned", [False, True], ids=["any-cpu", "one-cpu"])
def test_gateway_load_with_a_kill(tmp_path, pinned):
    clients, jobs = (int(v) for v in os.environ.get("FASTFAX_LOAD", "10x500").split("x"))
    cpus = str(max(os.sched_getaffinity(0))) if pinned else None
    f = gateway_load(str(tmp_path), clients=clients, jobs=jobs, kill=True, cpus=cpus)
    overhead = f["cpu_ms_per_job"] - f["bare_ms"]
    where = f"daemon on CPU {cpus}" if pinned else "daemon on any CPU"
    print(
        f"\n{where}: {clients} clients x {jobs} jobs, one SIGKILL: {f['jobs_per_s']:.1f} jobs/s "
        f"({f['wall']:.1f} s); submit p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms; "
        f"daemon CPU {f['cpu_ms_per_job']:.2f} ms/job, bare loopback call "
        f"{f['bare_ms']:.2f} ms; service overhead {overhead:.2f} ms/job"
    )
    assert f["jobs"] == clients * jobs
