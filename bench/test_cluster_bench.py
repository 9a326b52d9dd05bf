"""``fastfax serve`` nodes on one store (issue 14), as real processes on loopback lines
(``tests/cluster_helpers.Node``: two loopback pairs a node, so each node adds two
sending lines; far lines ``901``/``902`` on every node; 1-page faxes submitted over HTTP
to the nodes in turn):

* ``jobs/s``: ``BURST`` faxes submitted at once by 3 clients, from the first submit to
  the last send job completed, every fax checked stored once, pixel for pixel;
* ``claim``: submit-to-claim latency, p50/p99: ``jobs.started - jobs.submitted`` (the
  document prepared, a node woken by LISTEN/NOTIFY or its poll, a free line found and
  the claim with lease and fencing token committed) of ``PACED`` faxes submitted one
  every ``GAP`` s, below what the lines carry, so no job waits for a line;

with 1, 2 and 3 nodes on PostgreSQL (a throw-away local server, Unix socket, fsync off)
and 1 node on SQLite (the embedded default) in the same run; then issue 14's cluster run
with 600 faxes (``cluster_helpers.cluster_kill_run``: one node SIGKILLed, one
restarted, every fax once).

Run: ``python -m pytest bench/test_cluster_bench.py -s``
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cluster_helpers import (  # noqa: E402
    Jobs,
    arrivals,
    cluster_kill_run,
    final,
    send_jobs,
    start_nodes,
    stop_all,
)

BURST = 240
PACED = 60
GAP = 0.1
CLUSTER_JOBS = 600
T = 300
RESULTS: dict[str, str] = {}


def _p(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):7.1f} ms, p99 {np.percentile(ms, 99):7.1f} ms"


@pytest.mark.parametrize(
    ("kind", "count"),
    [
        ("sqlite", 1),
        ("postgresql", 1),
        ("postgresql", 2),
        ("postgresql", 3),
    ],
)
def test_jobs_per_second_and_claim_latency(kind, count, tmp_path, request):
    url = request.getfixturevalue("pg").database() if kind == "postgresql" else None
    nodes = start_nodes(str(tmp_path), url, count, lease=30.0)
    jobs = Jobs(url or nodes[0].spool)
    name = f"{kind:10} {count} node(s)"
    try:
        token = nodes[0].token()
        ids: dict[int, int] = {}
        failures: list[BaseException] = []
        deadline = time.monotonic() + T
        for n in range(PACED):  # one at a time: what a job waits for a node to claim it
            send_jobs(nodes, token, n, 1, failures, ids, deadline, pick=0)
            time.sleep(GAP)
        assert not failures, failures
        jobs.wait(final("send"), PACED, T, nodes)
        rows = jobs.rows("type = 'send'")
        assert {r["state"] for r in rows} == {"completed"}
        claim = _p([r["started"] - r["submitted"] for r in rows if r["attempts"] == 1])

        per = BURST // 3
        threads = [threading.Thread(target=send_jobs, args=(nodes, token, PACED + c * per,
                                                            per, failures, ids, deadline, c))
                   for c in range(3)]  # fmt: skip
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        jobs.wait(final("send"), PACED + BURST, T, nodes)
        wall = time.perf_counter() - began
        assert jobs.count("type = 'send' AND state = 'completed'") == PACED + BURST
        jobs.wait(final("receive"), PACED + BURST, T, nodes)
        seen = arrivals(folder for node in nodes for folder in node.inboxes)
        assert seen == dict.fromkeys(range(PACED + BURST), 1)
        RESULTS[f"{name} claim"] = claim
        RESULTS[f"{name} jobs/s"] = f"{BURST / wall:7.1f} ({BURST} faxes in {wall:.1f} s)"
    finally:
        stop_all(nodes)
        jobs.close()


def test_cluster_600_faxes_one_node_killed_one_restarted(tmp_path, pg):
    figures = cluster_kill_run(str(tmp_path), pg.database(), total=CLUSTER_JOBS,
                               timeout=T)  # fmt: skip
    RESULTS["cluster 600 faxes, kill + restart"] = (
        f"{figures['jobs_per_s']:.1f} jobs/s ({figures['wall']:.1f} s), "
        f"{figures['taken_over']} call(s) taken over, {figures['repeated']} repeated")
    assert figures["repeated"] == 0


def teardown_module() -> None:
    print()
    for name, value in RESULTS.items():
        print(f"{name:40} {value}")
