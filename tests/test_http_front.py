"""The daemon's HTTP front under abuse (issue 11 item 9, issue 15 items 1-2): an idle
flood of 3,000 connections on loopback while an authenticated client keeps working,
the connection, call and stream limits (503 with Retry-After), slow headers and bodies,
SIGTERM with a call on the line, Server-Sent Events, the Idempotency-Key header, and
HTTPS with a certificate made here."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
from service_helpers import Daemon, make_spool, only_sender, text_pages

from fastfax import tiff
from fastfax.client import connect
from fastfax.errors import ConfigError
from fastfax.service import api
from fastfax.service.errors import RemoteError
from fastfax.service.http import AUTH_THREADS, HttpService, Limits
from fastfax.service.model import Event, EventKind, JobState, from_wire
from fastfax.service.rights import ALL_RIGHTS
from fastfax.service.server import Service
from fastfax.service.tls import check_plain_http, client_context, is_loopback
from fastfax.service.wire import SESSION_HEADER

T = 30


def _service(tmp_path) -> tuple[Service, str]:
    service = Service(make_spool(str(tmp_path)))
    owner = service.open_session(local=True)
    token = service.call(owner, "add_user", {"name": "admin", "rights": ALL_RIGHTS.value})
    service.close_session(owner)
    return service, token


@pytest.fixture
def served(tmp_path):
    """A service and a way to put HTTP fronts on it (all closed afterwards)."""
    service, token = _service(tmp_path)
    fronts: list[HttpService] = []

    def front(**kwargs) -> HttpService:
        fronts.append(HttpService(service, **kwargs))
        return fronts[-1]

    yield service, token, front
    for f in fronts:
        f.close()
    service.close()


def _open_session(url: str, token: str) -> dict:
    status, _, body = _request(
        url, "POST", "/api/session", b"{}", {"Authorization": f"Bearer {token}"}
    )
    assert status == 200
    return {"Authorization": f"Bearer {token}", SESSION_HEADER: body["result"]["session"]}


def _request(url, method, path, body, headers, context=None):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=T, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=T)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(raw) if raw else None
    finally:
        conn.close()


def _raw_socket(url: str) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=T)


def _closed_by_server(sock: socket.socket, within: float = T) -> bytes:
    """What the server sent before closing ``sock`` (raises if it stays open)."""
    sock.settimeout(within)
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


# -- the idle flood -----------------------------------------------------------------------


def _metric(url: str, headers: dict, name: str) -> float:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=T)
    try:
        conn.request("GET", "/metrics", headers=headers)
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"no metric {name}")


FLOOD = 3000


def test_idle_flood_of_3000_connections_does_not_shut_out_clients(tmp_path):
    """3,000 connections that send a request's headers and no body (half with a valid
    token and session, half stopping mid-headers) stay open while an authenticated
    client sends a fax and lists jobs; the daemon's threads stay bounded."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < FLOOD + 512:
        pytest.skip(f"the file limit ({hard}) is too low for {FLOOD} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, FLOOD + 512), hard))
    daemon = Daemon(make_spool(str(tmp_path)))
    flood: list[socket.socket] = []
    try:
        idle_threads = daemon.threads()
        headers = _open_session(daemon.url, daemon.token)
        full = (
            "POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "Content-Length: 100\r\n\r\n"
        ).encode()
        partial = b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: "
        deadline = time.monotonic() + T
        for n in range(FLOOD):
            assert time.monotonic() < deadline, "the flood could not even be opened"
            sock = _raw_socket(daemon.url)
            flood.append(sock)
            sock.sendall(full if n % 2 else partial)
        with connect(daemon.url, token=daemon.token) as client:
            only_sender(client, "lp/1")
            job = client.send(text_pages(1), to="200")
            assert job.wait(T).state is JobState.COMPLETED
            assert job.id in [j.id for j in client.jobs()]
            held = _metric(daemon.url, headers, "fastfax_http_connections")
            threads = daemon.threads()
        assert held >= FLOOD  # the flood was held open, not turned away
        assert threads <= idle_threads + Limits().max_calls + AUTH_THREADS
        print(f"\nflood {FLOOD}: daemon threads {idle_threads} idle -> {threads} under flood")
    finally:
        for sock in flood:
            sock.close()
        code, err = daemon.stop()
    assert code == 0, err


# -- limits -------------------------------------------------------------------------------


def test_connection_limit_closes_idle_ones_then_refuses_with_503(served):
    service, token, front = served
    limits = Limits(max_connections=16, max_streams=64)
    server = front(limits=limits)
    headers = _open_session(server.url, token)
    idle = [_raw_socket(server.url) for _ in range(16)]
    time.sleep(0.2)  # let the server take them in (ordering, not timing, is checked)
    status, _, body = _request(server.url, "POST", "/api/ports", b"{}", headers)
    assert status == 200 and len(body["result"]) == 6
    assert _closed_by_server(idle[0]) == b""  # the oldest idle one made room
    for sock in idle:
        sock.close()
    streams = []
    for _ in range(16):  # connections that are all serving something
        sock = _raw_socket(server.url)
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode())
        assert sock.recv(12) == b"HTTP/1.1 200"
        streams.append(sock)
    refused = _raw_socket(server.url)
    refused.sendall(b"POST /api/ports HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    answer = _closed_by_server(refused)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
    assert json.loads(body)["error"]["type"] == "ServerBusy"
    for sock in streams:
        sock.close()


def test_call_limit_answers_503_with_retry_after(served):
    service, token, front = served
    server = front(limits=Limits(max_calls=1, wait=0.5))  # a call waits 0.5 s for the thread
    headers = _open_session(server.url, token)
    owner = service.open_session(local=True)
    (job,) = service.call(owner, "send", {"document": tiff.dumps(text_pages(1), "g4"),
                                          "to": "200", "schedule": time.time() + 3600})  # fmt: skip
    body = json.dumps({"job_id": job, "timeout": 3}).encode()
    waiting = threading.Thread(
        target=_request, args=(server.url, "POST", "/api/wait_job", body, headers)
    )
    waiting.start()
    try:
        deadline = time.monotonic() + T
        while True:  # the single call thread is taken by wait_job
            status, head, body = _request(server.url, "POST", "/api/jobs", b"{}", headers)
            if status == 503:
                break
            assert time.monotonic() < deadline
        assert head["Retry-After"] == "1" and body["error"]["type"] == "ServerBusy"
    finally:
        waiting.join()
    status, _, body = _request(server.url, "POST", "/api/jobs", b"{}", headers)
    assert status == 200 and body["result"][0]["id"] == job
    service.close_session(owner)


def test_slow_headers_are_dropped_and_slow_bodies_get_408(served):
    service, token, front = served
    server = front(limits=Limits(header_timeout=0.5, body_timeout=0.5))
    headers = _open_session(server.url, token)
    slow = _raw_socket(server.url)
    slow.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\n")
    assert _closed_by_server(slow) == b""
    mute = _raw_socket(server.url)  # never sends a byte
    assert _closed_by_server(mute) == b""
    body_less = _raw_socket(server.url)
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    body_less.sendall(
        f"POST /api/jobs HTTP/1.1\r\nHost: x\r\n{lines}Content-Length: 9\r\n\r\n{{".encode()
    )
    head, _, body = _closed_by_server(body_less).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert "did not arrive" in json.loads(body)["error"]["message"]
    assert _request(server.url, "POST", "/api/jobs", b"{}", headers)[0] == 200


def test_unauthenticated_requests_are_refused_before_their_body(served):
    service, token, front = served
    server = front(limits=Limits(body_timeout=T))
    sock = _raw_socket(server.url)
    sock.sendall(b"POST /api/send HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    sock.settimeout(T)
    head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 401")  # answered without waiting for the megabyte
    sock.close()


def test_sigterm_lets_a_call_in_progress_finish(tmp_path):
    daemon = Daemon(make_spool(str(tmp_path)))
    try:
        headers = _open_session(daemon.url, daemon.token)
        with connect(daemon.url, token=daemon.token) as client:
            (job,) = [client.send(text_pages(1), to="200", schedule=time.time() + 3600).id]
        answer: list = []
        body = json.dumps({"job_id": job, "timeout": 2}).encode()
        waiting = threading.Thread(
            target=lambda: answer.append(
                _request(daemon.url, "POST", "/api/wait_job", body, headers)
            )
        )
        waiting.start()
        time.sleep(0.5)  # the call is running (it answers after 2 s)
        daemon.proc.send_signal(signal.SIGTERM)
        waiting.join(T)
        code = daemon.proc.wait(T)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert code == 0
    status, _, result = answer[0]
    assert (
        status == 200 and result["result"]["id"] == job and result["result"]["state"] == "pending"
    )


# -- Server-Sent Events and Idempotency-Key ----------------------------------------------


def _sse_events(resp, count: int) -> list[tuple[str, str, dict]]:
    """``count`` (id, event, data) triples read from an SSE response."""
    out, fields = [], {}
    while len(out) < count:
        line = resp.readline().decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if not line:
            if "data" in fields:
                out.append((fields.get("id"), fields.get("event"), json.loads(fields["data"])))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return out


def test_events_as_server_sent_events(served):
    service, token, front = served
    server = front()
    parts = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=T)
    # a browser's EventSource: a token (cookie-less here) and no session header
    conn.request("GET", "/api/events", headers={"Authorization": f"Bearer {token}",
                                                "Accept": "text/event-stream"})  # fmt: skip
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    with connect(server.url, token=token) as client:
        only_sender(client, "lp/1")
        job = client.send(text_pages(1), to="200")
        got = []
        while not any(e == "completed" and d["job_id"] == job.id for _, e, d in got):
            got += _sse_events(resp, 1)
    conn.close()
    for seq, kind, data in got:
        event = from_wire(Event, data)
        assert int(seq) == event.seq and kind == event.kind.value
    assert EventKind.JOB_QUEUED.value in [kind for _, kind, _ in got]
    # resuming with Last-Event-ID replays what followed that event
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=T)
    conn.request("GET", "/api/events?format=sse", headers={"Authorization": f"Bearer {token}",
                                                           "Last-Event-ID": got[0][0]})  # fmt: skip
    again = _sse_events(conn.getresponse(), len(got) - 1)
    conn.close()
    assert [s for s, _, _ in again] == [s for s, _, _ in got[1:]]
    status, _, body = _request(server.url, "GET", "/api/events?format=xml",
                               None, {"Authorization": f"Bearer {token}"})  # fmt: skip
    assert status == 400 and "format" in body["error"]["message"]


@pytest.mark.skipif(not api.takes_request_id("send"), reason="send has no request_id yet")
def test_idempotency_key_header_is_the_request_id(served):
    service, token, front = served
    server = front()
    headers = _open_session(server.url, token)
    document = tiff.dumps(text_pages(1), "g4")
    args = {"document": {"$bytes": __import__("base64").b64encode(document).decode()},
            "to": "200", "schedule": time.time() + 3600}  # fmt: skip
    keyed = {**headers, "Idempotency-Key": "order-4711"}
    first = _request(server.url, "POST", "/api/send", json.dumps(args).encode(), keyed)
    again = _request(server.url, "POST", "/api/send", json.dumps(args).encode(), keyed)
    assert first[0] == again[0] == 200 and first[2]["result"] == again[2]["result"]
    other = _request(server.url, "POST", "/api/send", json.dumps(args).encode(), headers)
    assert other[2]["result"] != first[2]["result"]
    clash = {**args, "request_id": "something-else"}
    status, _, body = _request(server.url, "POST", "/api/send", json.dumps(clash).encode(), keyed)
    assert status == 400 and "Idempotency-Key" in body["error"]["message"]


# -- TLS ----------------------------------------------------------------------------------


def _certificate(folder) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fastfax test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


def test_https_with_a_certificate_made_here(served, tmp_path):
    service, token, front = served
    cert, key = _certificate(str(tmp_path))
    server = front(host="127.0.0.1", certificate=cert, key=key)
    assert server.url.startswith("https://127.0.0.1:")
    with connect(server.url, token=token, ca=cert) as client:
        only_sender(client, "lp/1")
        job = client.send(text_pages(1), to="200")
        assert job.wait(T).state is JobState.COMPLETED
    with pytest.raises(ssl.SSLCertVerificationError):  # a client without the CA refuses it
        _request(server.url, "POST", "/api/session", b"{}", {}, context=client_context())
    with pytest.raises(RemoteError, match="cannot reach"):  # so does fastfax.connect
        connect(server.url, token=token)
    plain = server.url.replace("https://", "http://")
    with pytest.raises((http.client.HTTPException, OSError)):  # no plain HTTP on that port
        _request(plain, "POST", "/api/session", b"{}", {})
    with pytest.raises(ConfigError, match="cannot be used"):
        front(certificate=key, key=key)


def test_serve_https_from_the_command_line(tmp_path):
    cert, key = _certificate(str(tmp_path))
    daemon = Daemon(make_spool(str(tmp_path)), "--certificate", cert, "--key", key)
    try:
        assert daemon.url.startswith("https://127.0.0.1:")
        status, _, body = _request(daemon.url, "POST", "/api/session", b"{}",
                                   {"Authorization": f"Bearer {daemon.token}"},
                                   context=client_context(cert))  # fmt: skip
        assert status == 200 and body["result"]["user"] == "admin"
    finally:
        code, err = daemon.stop()
    assert code == 0, err


def test_plain_http_only_on_loopback_unless_allowed(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("192.0.2.1")
    with pytest.raises(ConfigError, match="plain HTTP"):
        check_plain_http("0.0.0.0", tls=False, allow_plain_http=False)
    check_plain_http("0.0.0.0", tls=True, allow_plain_http=False)
    check_plain_http("0.0.0.0", tls=False, allow_plain_http=True)
    code = "import sys; from fastfax.service.http import serve_main; sys.exit(serve_main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "--spool", str(tmp_path / "s"), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=T,
    )  # fmt: skip
    assert done.returncode == 2 and "refusing to serve plain HTTP on '0.0.0.0'" in done.stderr
