"""Structured logs (issue 15 item 8): the JSON-lines format, the ids it carries, the
``[logging] format`` key and ``--log-format``, and a daemon run whose whole log is
searched for the tokens it handled."""

from __future__ import annotations

import http.client
import json
import logging
import os
import subprocess
import sys
import urllib.parse

import pytest
from service_helpers import Daemon, make_pdf, make_spool, only_sender

from fastfax.client import connect
from fastfax.errors import ConfigError
from fastfax.service.config import load_toml
from fastfax.service.console import CSRF_HEADER
from fastfax.service.logs import JsonFormatter, redact, request_context
from fastfax.service.model import JobState
from fastfax.service.rights import Right

T = 60


def _record(msg, *args, exc_info=None, **extra):
    record = logging.LogRecord("fastfax.service.outbound", logging.INFO, __file__, 1, msg,
                               args, exc_info)  # fmt: skip
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_the_ids_where_known():
    fmt = JsonFormatter()
    line = json.loads(fmt.format(_record("job %d: sent to %s (%d pages)", 7, "200", 2)))
    assert line["message"] == "job 7: sent to 200 (2 pages)"
    assert line["job_id"] == 7 and line["level"] == "INFO"
    assert line["logger"] == "fastfax.service.outbound" and line["time"].endswith("Z")
    assert json.loads(fmt.format(_record("fax %d received on %s", 3, "lp/2")))["job_id"] == 3
    assert "job_id" not in json.loads(fmt.format(_record("jobs %d waiting", 4)))
    assert json.loads(fmt.format(_record("x", job_id=9)))["job_id"] == 9
    with request_context(call="job_control", request="ab12", user="alice", job_id=5):
        line = json.loads(fmt.format(_record("cannot %s", "pause")))
    assert (line["call"], line["request"], line["user"], line["job_id"]) == (
        "job_control", "ab12", "alice", 5,
    )  # fmt: skip
    assert "call" not in json.loads(fmt.format(_record("outside")))


def test_secrets_are_masked_in_messages_and_tracebacks():
    secret = "s3cr3t-Value_42"
    for text in (
        f"Authorization: Bearer {secret}",
        f"token={secret}",
        f'{{"password": "{secret}"}}',
        f"sip register password: {secret} done",
        f"Cookie: fastfax_console={secret}",
        f"secret = {secret}",
    ):
        assert secret not in redact(text), text
    assert redact("administrator token written to /spool/admin.token") == (
        "administrator token written to /spool/admin.token"
    )
    try:
        raise ValueError(f"bad token={secret}")
    except ValueError as exc:
        line = JsonFormatter().format(_record("failed", exc_info=(type(exc), exc, None)))
    assert secret not in line and "ValueError" in json.loads(line)["exception"]


def test_logging_format_in_the_toml(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text('[logging]\nformat = "json"\n')
    assert load_toml(path).log_format == "json"
    path.write_text("")
    assert load_toml(path).log_format == "text"
    for bad in ('[logging]\nformat = "xml"\n', '[logging]\nlevel = "debug"\n', "logging = 3\n"):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=r"\[logging\]"):
            load_toml(path)


def test_a_daemon_run_logs_json_lines_and_never_a_token(tmp_path):
    spool = make_spool(str(tmp_path))
    with open(os.path.join(spool, "fastfax.toml"), "a") as fh:
        fh.write('[logging]\nformat = "json"\n')
    daemon = Daemon(spool, "--log-level", "DEBUG")
    tokens = [daemon.token]
    try:
        with connect(daemon.url, token=daemon.token, timeout=T) as admin:
            admin.set_logging_categories(init_term="max", outbound="max", inbound="max",
                                         unknown="max")  # fmt: skip
            only_sender(admin, "lp/1")
            tokens.append(admin.add_user("clerk", Right.JOB_SUBMIT | Right.JOB_QUERY))
            with connect(daemon.url, token=tokens[-1], timeout=T) as clerk:
                job = clerk.send(make_pdf(str(tmp_path / "doc.pdf"), 1), to="200")
                assert job.wait(timeout=T).state is JobState.COMPLETED
            # the console: a login, a call, a refused guess of a token
            parts = urllib.parse.urlsplit(daemon.url)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=T)
            headers = {"Content-Type": "application/json", CSRF_HEADER: "1"}
            body = json.dumps({"token": daemon.token})
            conn.request("POST", "/console/login", body, headers)
            answer = conn.getresponse()
            answer.read()
            cookie = answer.getheader("Set-Cookie").split(";")[0]
            tokens.append(cookie.split("=", 1)[1])
            conn.request("POST", "/console/api/jobs", "{}", {**headers, "Cookie": cookie})
            assert conn.getresponse().read()
            conn.request("POST", "/console/login", json.dumps({"token": "guess" * 9}), headers)
            assert conn.getresponse().status == 401
            conn.close()
            with pytest.raises(Exception, match="not valid"):
                connect(daemon.url, token=tokens[1][::-1], timeout=T).jobs()
    finally:
        code, err = daemon.stop()
    assert code == 0
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # all JSON
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert any("administrator token written" in x["message"] for x in lines)
    sent = [x for x in lines if x["message"].startswith(f"job {job.id}: sent to 200")]
    assert sent and sent[0]["job_id"] == job.id
    assert any(x.get("job_id") == job.id and "calling" in x["message"] for x in lines)
    assert any(x.get("call") == "add_user" and x.get("user") == "admin" for x in lines)
    for secret in (*tokens, tokens[1][::-1], "guess" * 9):
        assert secret not in err


def test_a_refused_start_is_a_json_line_too(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[logging]\nformat = "json"\n[[devices]]\nkind = "warp-drive"\nname = "x"\n')
    code = "import sys; from fastfax.service.http import serve_main; sys.exit(serve_main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "--config", str(bad), "--spool", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=T,
    )  # fmt: skip
    assert done.returncode == 2
    (line,) = [json.loads(x) for x in done.stderr.splitlines()]
    assert line["level"] == "CRITICAL" and "unknown device kind 'warp-drive'" in line["message"]
