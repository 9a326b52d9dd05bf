"""``GET /metrics`` scraped after real faxes went through loopback pairs, parsed with
prometheus_client's own parser, and checked against the service's own answers (its job
list, its ports, the events it published)."""

from __future__ import annotations

import http.client
import time
import urllib.parse

from prometheus_client.parser import text_string_to_metric_families
from service_helpers import make_spool, only_sender, text_pages

from fastfax.client import connect
from fastfax.service.http import HttpService
from fastfax.service.model import EventKind, JobState
from fastfax.service.rights import ALL_RIGHTS, Right
from fastfax.service.server import Service

T = 30


def scrape(url: str, token: str) -> tuple[int, dict[tuple[str, tuple], float]]:
    """The status and {(sample name, sorted labels): value} of ``GET /metrics``."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=T)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        text = resp.read().decode()
    finally:
        conn.close()
    if resp.status != 200:
        return resp.status, {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return resp.status, samples


def test_metrics_tell_what_the_service_did(tmp_path):
    service = Service(make_spool(str(tmp_path)))
    owner = service.open_session(local=True)
    token = service.call(owner, "add_user", {"name": "admin", "rights": ALL_RIGHTS.value})
    service.close_session(owner)
    server = HttpService(service)
    try:
        with connect(server.url, token=token) as client:
            only_sender(client, "slow/1")
            events = client.events()
            done = client.send(text_pages(2), to="600")  # half a second a page
            assert done.wait(T).state is JobState.COMPLETED
            aborted = client.send(text_pages(3), to="600")
            first = None
            for event in events:
                first = first or event.seq
                if event.kind is EventKind.SENDING and event.job_id == aborted.id:
                    break
            aborted.abort()
            assert aborted.wait(T).state is JobState.CANCELED
            later = client.send(text_pages(1), to="600", schedule=time.time() + 3600)
            events.close()
            deadline = time.monotonic() + T
            while any(not j.state.final if j.id != later.id else j.state is JobState.PREPARING
                      for j in client.jobs()):  # the scheduled job prepared, the rest final
                assert time.monotonic() < deadline
                time.sleep(0.1)
            jobs = client.jobs()
            ports = {p.id: client.port(p.id).status().state.value for p in client.ports()}
            viewer = client.add_user("viewer", Right.PORT_QUERY)
            status, m = scrape(server.url, token)
            replay = service.bus.subscribe(first - 1)  # what the bus published meanwhile
            published = []
            while (event := replay.get(0)) is not None:
                published.append(event)
            replay.close()
        assert status == 200
        assert scrape(server.url, "not-a-token")[0] == 401
        assert scrape(server.url, viewer)[0] == 403  # metrics need the job query right

        def value(name: str, **labels: str) -> float:
            return m[(name, tuple(sorted(labels.items())))]

        sent = [j for j in jobs if j.type.value == "send" and j.state is JobState.COMPLETED]
        received = [j for j in jobs if j.type.value == "receive"]
        assert value("fastfax_faxes_total", direction="sent") == len(sent) == 1
        assert value("fastfax_pages_total", direction="sent") == sum(j.pages for j in sent)
        assert value("fastfax_faxes_total", direction="received") == len(received)
        assert value("fastfax_pages_total", direction="received") == sum(j.pages for j in received)
        assert value("fastfax_calls_total", direction="send", outcome="completed") == 1
        assert value("fastfax_calls_total", direction="send", outcome="aborting") == 1
        for kind in ("send", "receive"):
            for state in JobState:
                want = sum(1 for j in jobs if j.type.value == kind and j.state is state)
                assert value("fastfax_jobs", type=kind, state=state.value) == want
        assert value("fastfax_queue_oldest_pending_age_seconds") > 0  # the scheduled job
        for port, state in ports.items():
            assert value("fastfax_line_state", port=port, state=state) == 1
            states = [v for (n, lab), v in m.items() if n == "fastfax_line_state"
                      and dict(lab)["port"] == port]  # fmt: skip
            assert sum(states) == 1
            assert value("fastfax_line_busy", port=port) == 0
        assert value("fastfax_line_busy_seconds_total", port="slow/1") > 0
        assert value("fastfax_line_busy_seconds_total", port="lp/1") == 0
        assert (
            value("fastfax_http_requests_total", method="POST", route="/api/send", status="200")
            == 3
        )
        assert value("fastfax_http_connections") >= 1
        prepared = [e.data["pages"] for e in published if e.kind is EventKind.PREPARED]
        assert value("fastfax_conversion_pages_total") == sum(prepared)
        assert (value("fastfax_conversion_seconds_total") > 0) == bool(prepared)
    finally:
        server.close()
        service.close()


def test_metrics_render_without_http(tmp_path):
    """The same metrics object works on an embedded service (no server thread)."""
    from fastfax.service.metrics import Metrics

    service = Service(make_spool(str(tmp_path)))
    try:
        metrics = Metrics(service, lambda: {})
        owner = service.open_session(local=True)
        only = service.call(owner, "ports", {})
        assert len(only) == 6
        families = {f.name for f in text_string_to_metric_families(metrics.render().decode())}
        assert {"fastfax_jobs", "fastfax_line_state", "fastfax_faxes"} <= families
        metrics.close()
    finally:
        service.close()
