"""A gateway's load on the fax service (issue 11): 10 clients x 500 one-page faxes
through ``fastfax serve`` over HTTP, the daemon killed (SIGKILL) once half are
submitted and started again; every job must complete and every fax arrive exactly once
at the far lines' stores, pixel for pixel (see ``tests/service_helpers.gateway_load``).

Figures: submit latency p50/p99, jobs per second (first submit to the last fax routed,
the kill and restart included), the daemon's CPU per job, the bare T.30 loopback call of
the same page in the same run, and the service's overhead per job: the daemon's CPU per
job minus the bare call's time (the bare call is all CPU).

Run: ``python -m pytest bench/test_service_load_bench.py -s`` (``FASTFAX_LOAD=3x40`` for
a short run)
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from service_helpers import gateway_load  # noqa: E402


def test_gateway_load_with_a_kill(tmp_path):
    clients, jobs = (int(v) for v in os.environ.get("FASTFAX_LOAD", "10x500").split("x"))
    f = gateway_load(str(tmp_path), clients=clients, jobs=jobs, kill=True)
    overhead = f["cpu_ms_per_job"] - f["bare_ms"]
    print(
        f"\n{clients} clients x {jobs} jobs, one SIGKILL: {f['jobs_per_s']:.1f} jobs/s "
        f"({f['wall']:.1f} s); submit p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms; "
        f"daemon CPU {f['cpu_ms_per_job']:.2f} ms/job, bare loopback call "
        f"{f['bare_ms']:.2f} ms; service overhead {overhead:.2f} ms/job"
    )
    assert f["jobs"] == clients * jobs
