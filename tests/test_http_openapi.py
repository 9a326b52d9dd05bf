"""``/openapi.json`` against what the server answers: the description is a valid OpenAPI
document; it names every client call of the service; every documented path and method
exists and answers, with a valid request and without a token, a documented status and a
body that validates against the documented schema (jsonschema, Draft 2020-12)."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.parse

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import make_spool, text_pages

from fastfax import tiff
from fastfax.service.http import HttpService
from fastfax.service.rights import ALL_RIGHTS
from fastfax.service.server import API_CALLS, Service
from fastfax.service.wire import SESSION_HEADER

T = 30


@pytest.fixture
def served(tmp_path):
    service = Service(make_spool(str(tmp_path)))
    owner = service.open_session(local=True)
    token = service.call(owner, "add_user", {"name": "admin", "rights": ALL_RIGHTS.value})
    server = HttpService(service)
    yield server, token, owner
    server.close()
    service.close_session(owner)
    service.close()


class Client:
    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.headers: dict[str, str] = {}

    def request(self, method: str, path: str, body: object = None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=T)
        data = None if body is None else json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers={**self.headers, **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()


def _check(spec: dict, method: str, path: str, status: int, media: str, raw: bytes) -> object:
    """Assert the answer is documented for this operation and validates; the body."""
    op = spec["paths"][path][method.lower()]
    assert str(status) in op["responses"], f"{method} {path} answered undocumented {status}"
    content = op["responses"][str(status)]["content"]
    kind = media.split(";")[0].strip()
    assert kind in content, f"{method} {path} answered {kind}, documented {list(content)}"
    if kind != "application/json":
        return raw
    body = json.loads(raw)
    schema = {**content[kind]["schema"], "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)
    return body


def _document() -> dict:
    return {"$bytes": base64.b64encode(tiff.dumps(text_pages(1), "g4")).decode()}


def test_openapi_matches_what_the_server_answers(served, tmp_path):
    server, token, owner = served
    client = Client(server.url)
    status, media, raw = client.request("GET", "/openapi.json")
    assert status == 200 and media.startswith("application/json")
    spec = json.loads(raw)
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(spec)
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert {("POST", f"/api/{name}") for name in API_CALLS} <= documented
    _check(spec, "GET", "/openapi.json", status, media, raw)
    seen: set[tuple[str, str]] = {("GET", "/openapi.json")}

    def call(method: str, path: str, body: object = None, headers=None) -> object:
        status, media, raw = client.request(method, path, body, headers)
        seen.add((method, path))
        return status, _check(spec, method, path, status, media, raw)

    # without a token every protected operation answers 401, as documented
    for method, path in sorted(documented - {("GET", "/openapi.json")}):
        status, media, raw = client.request(method, path, {} if method != "GET" else None)
        assert status == 401, (method, path, status)
        _check(spec, method, path, status, media, raw)

    client.headers = {"Authorization": f"Bearer {token}"}
    status, opened = call("POST", "/api/session", {})
    assert status == 200
    client.headers[SESSION_HEADER] = opened["result"]["session"]
    status, sent = call("POST", "/api/send", {"document": _document(), "to": "200"})
    assert status == 200
    (job,) = sent["result"]
    status, sent = call(
        "POST", "/api/send", {"document": _document(), "to": "200", "schedule": time.time() + 3600}
    )
    (later,) = sent["result"]
    status, done = call("POST", "/api/wait_job", {"job_id": job, "timeout": T})
    assert status == 200 and done["result"]["id"] == job, done
    methods = [m["name"] for m in call("POST", "/api/routing_methods", {})[1]["result"]]
    examples = [
        ("renew", {}),
        ("has_access", {"right": ["job_query"]}),
        ("get_configuration", {}),
        ("set_configuration", {"values": {"retries": 2}}),
        ("logging_categories", {}),
        ("set_logging_categories", {"levels": {"outbound": "max"}}),
        ("ports", {}),
        ("open_port", {"port": "lp/1", "modify": True}),
        ("port_info", {"port": "lp/1"}),
        ("update_port", {"port": "lp/1", "changes": {"rings": 2}}),
        ("port_status", {"port": "lp/1"}),
        ("set_routing_priority", {"order": methods[::-1]}),
        ("port_routing", {"port": "lp/2"}),
        ("set_routing_info", {"port": "lp/1", "method": "store", "data": {
            "folder": str(tmp_path / "kept")}}),
        ("enable_routing", {"port": "lp/1", "method": "store", "enabled": True}),
        ("close_port", {"port": "lp/1"}),
        ("add_user", {"name": "clerk", "rights": ["job_query"]}),
        ("users", {}),
        ("remove_user", {"name": "clerk"}),
        ("jobs", {}),
        ("job", {"job_id": job}),
        ("first_page", {"job_id": job}),
        ("document", {"job_id": job}),
        ("job_control", {"job_id": later, "action": "pause"}),
    ]  # fmt: skip
    for name, args in examples:
        status, body = call("POST", f"/api/{name}", args)
        assert status == 200, (name, body)
    for name in API_CALLS:  # calls added since these examples were written: still documented
        if ("POST", f"/api/{name}") not in seen:
            call("POST", f"/api/{name}", {})
    status, body = call("POST", "/api/job", {"job_id": 10**6})
    assert status == 404 and body["error"]["type"] == "JobNotFound"
    status, body = call("POST", "/api/job", {"job": 1})
    assert status == 400

    status, media, raw = client.request("GET", "/metrics")
    seen.add(("GET", "/metrics"))
    _check(spec, "GET", "/metrics", status, media, raw)
    assert any(f.name == "fastfax_jobs" for f in text_string_to_metric_families(raw.decode()))

    parts = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=T)
    conn.request("GET", "/api/events", headers=client.headers)
    resp = conn.getresponse()
    _check(spec, "GET", "/api/events", resp.status, resp.getheader("Content-Type"), b"")
    seen.add(("GET", "/api/events"))
    call("POST", "/api/job_control", {"job_id": later, "action": "resume"})
    line = b"\n"
    while not line.strip():
        line = resp.readline()
    conn.close()
    item = spec["paths"]["/api/events"]["get"]["responses"]["200"]["content"]
    event_schema = {
        **item["application/x-ndjson"]["x-item-schema"],
        "components": spec["components"],
    }
    jsonschema.Draft202012Validator(event_schema).validate(json.loads(line))

    status, body = call("DELETE", "/api/session")
    assert status == 200 and body == {"result": None}
    assert seen == documented
