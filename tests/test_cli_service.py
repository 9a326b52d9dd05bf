"""The ``fastfax`` service commands (send, jobs, job, ports, events, users) against an
embedded spool with loopback pairs and against a daemon (``HttpService``): what they
print, their ``--json``, and the exit statuses a script relies on (0 ok, 1 a job or an
input failed, 2 usage, 3 unreachable / refused, 4 a ``--wait`` timed out).

The oracle for a sent fax is what the answering loopback line stored in its inbox
folder and the job records read back through :func:`fastfax.connect`, not the
command's own output.
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from service_helpers import free_port, make_pdf, make_spool, only_sender

from fastfax import tiff
from fastfax.cli import main
from fastfax.cli_service import parse_schedule
from fastfax.client import connect
from fastfax.document.convert import render_document
from fastfax.service.http import HttpService
from fastfax.service.rights import ALL_RIGHTS
from fastfax.service.server import Service


class Target:
    """A running service and the command-line options that reach it."""

    def __init__(self, mode, tmp):
        self.tmp = str(tmp)
        self.spool = make_spool(self.tmp)
        self.http = None
        if mode == "local":
            self.server = connect(spool=self.spool)  # held: the commands share its service
            self.args = ["--spool", self.spool]
        else:
            self.service = Service(self.spool)
            owner = self.service.open_session(local=True)
            token = self.service.call(
                owner, "add_user", {"name": "admin", "rights": ALL_RIGHTS.value}
            )
            self.service.close_session(owner)
            self.token_file = os.path.join(self.tmp, "admin.token")
            with open(self.token_file, "w") as fh:
                fh.write(token + "\n")
            self.http = HttpService(self.service)
            self.server = connect(self.http.url, token=token)
            self.args = ["--server", self.http.url, "--token-file", self.token_file]
        only_sender(self.server, "lp/1")

    def received(self, count=1, timeout=60.0):
        """The pages of the faxes the answering lines stored, once ``count`` received
        faxes are routed."""
        deadline = time.monotonic() + timeout
        while True:
            done = [j for j in self.server.jobs() if j.type.value == "receive" and j.state.final]
            if len(done) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        folder = os.path.join(self.tmp, "inbox")
        return [tiff.read(os.path.join(folder, name)) for name in sorted(os.listdir(folder))]

    def close(self):
        self.server.close()
        if self.http is not None:
            self.http.close()
            self.service.close()


@pytest.fixture(params=["local", "remote"])
def target(request, tmp_path):
    t = Target(request.param, tmp_path)
    yield t
    t.close()


def run(capsys, *argv):
    """``fastfax argv`` in this process: (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_send_wait_completes_and_jobs_lists_it(target, capsys, tmp_path):
    pdf = make_pdf(str(tmp_path / "letter.pdf"), 2)
    status, out, _ = run(capsys, "send", pdf, "--to", "200", "--wait", *target.args)
    assert status == 0
    job_id = int(out.split()[1])
    assert f"job {job_id} to 200: completed, 2 pages" in out
    # the far line stored a 2-page fax
    (stored,) = target.received()
    assert len(stored) == 2
    status, out, _ = run(capsys, "jobs", "--all", "--json", *target.args)
    jobs = {j["id"]: j for j in json.loads(out)}
    assert status == 0
    info = target.server.job(job_id).info()
    assert jobs[job_id]["state"] == info.state.value == "completed"
    assert jobs[job_id]["number"] == "200" and jobs[job_id]["pages"] == info.pages == 2
    assert jobs[job_id]["document_name"] == "letter.pdf"
    status, out, _ = run(capsys, "jobs", "--all", *target.args)
    head, *rows = out.splitlines()
    assert head.split() == ["ID", "TYPE", "STATE", "NUMBER", "PAGES", "ATTEMPTS", "OWNER", "CAUSE"]
    mine = next(r.split() for r in rows if r.split()[0] == str(job_id))
    assert mine[:6] == [str(job_id), "send", "completed", "200", "2", "1"]
    status, out, _ = run(capsys, "jobs", *target.args)  # the queue: finished jobs left out
    assert status == 0 and str(job_id) not in [r.split()[0] for r in out.splitlines()[1:]]


def test_several_files_go_as_one_fax_in_order(target, capsys, tmp_path):
    pdf = make_pdf(str(tmp_path / "a.pdf"), 2)
    text = tmp_path / "b.txt"
    text.write_text("second document\n" * 10)
    status, out, _ = run(capsys, "send", pdf, text, "--to", "200", "--wait", "--json", *target.args)
    (job,) = json.loads(out)
    assert status == 0 and job["state"] == "completed"
    expected = render_document(pdf, as_is=True) + render_document(str(text))
    assert job["pages"] == len(expected) == 3
    assert job["document_name"] == "a.pdf+b.txt"
    (got,) = target.received()
    assert len(got) == 3
    # the text page comes last: its rows match the text rendered on its own (the header
    # line, when branding adds one, is at the top: compare below it)
    assert got[2].to_array()[200:].tolist() == expected[2].to_array()[200:].tolist()


def test_a_job_that_fails_exits_1_and_broadcast_makes_a_job_each(target, capsys, tmp_path):
    pdf = make_pdf(str(tmp_path / "a.pdf"), 1)
    status, out, _ = run(
        capsys, "send", pdf, "--to", "200", "--to", "999", "--wait", "--json", *target.args
    )
    jobs = json.loads(out)
    assert status == 1
    assert [(j["number"], j["state"]) for j in jobs] == [("200", "completed"), ("999", "failed")]
    assert jobs[0]["group"] == jobs[1]["group"] is not None
    assert "999" in jobs[1]["cause"]


def test_job_pause_then_cancel(target, capsys, tmp_path):
    pdf = make_pdf(str(tmp_path / "a.pdf"), 1)
    status, out, err = run(
        capsys, "send", pdf, "--to", "200", "--schedule", "+60", "--json", *target.args
    )
    assert status == 0
    (job,) = json.loads(out)
    job_id = job["id"]
    status, out, _ = run(capsys, "job", job_id, "--pause", "--json", *target.args)
    assert status == 0 and json.loads(out)["state"] == "paused"
    assert target.server.job(job_id).status.value == "paused"
    status, out, _ = run(capsys, "job", job_id, "--cancel", *target.args)
    assert status == 0 and "canceled" in out.split()
    assert target.server.job(job_id).status.value == "canceled"
    status, _, err = run(capsys, "job", job_id, "--resume", *target.args)
    assert status == 1 and "canceled" in err  # the server refuses: a job failed
    status, _, err = run(capsys, "job", 424242, *target.args)
    assert status == 1 and "424242" in err


def test_wait_timeout_exits_4(target, capsys, tmp_path):
    pdf = make_pdf(str(tmp_path / "a.pdf"), 1)
    status, _, err = run(
        capsys,
        "send",
        pdf,
        "--to",
        "200",
        "--schedule",
        "+60",
        "--wait",
        "--timeout",
        "0.5",
        *target.args,
    )
    assert status == 4 and "not final after 0.5 s" in err
    (job,) = [j for j in target.server.jobs() if j.number == "200"]
    assert job.state.value == "pending"  # still queued: a timeout is not a failure


def test_users_add_list_remove(target, capsys, tmp_path):
    status, out, _ = run(
        capsys, "users", "add", "bob", "--rights", "job_query,port_query", *target.args
    )
    assert status == 0
    token = out.strip()
    assert len(token) >= 40
    status, out, _ = run(capsys, "users", "list", "--json", *target.args)
    users = {u["name"]: u["rights"] for u in json.loads(out)}
    assert users["bob"] == ["job_query", "port_query"]
    # the token works, with exactly those rights
    token_file = tmp_path / "bob.token"
    token_file.write_text(token)
    conn = list(target.args)
    if "--token-file" in conn:
        conn[conn.index("--token-file") + 1] = str(token_file)
    else:
        conn += ["--token-file", str(token_file)]
    assert run(capsys, "ports", *conn)[0] == 0
    pdf = make_pdf(str(tmp_path / "a.pdf"), 1)
    status, _, err = run(capsys, "send", pdf, "--to", "200", *conn)
    assert status == 3 and "job_submit" in err  # refused: no right to submit
    assert run(capsys, "users", "remove", "bob", *target.args)[0] == 0
    assert "bob" not in [u["name"] for u in target.server.users()]
    status, _, err = run(capsys, "users", "remove", "bob", *target.args)
    assert status == 1 and "bob" in err
    assert run(capsys, "ports", *conn)[0] == 3  # the token is gone with the user


def test_ports_table_and_json(target, capsys):
    status, out, _ = run(capsys, "ports", "--json", *target.args)
    assert status == 0
    ports = {p["id"]: p for p in json.loads(out)}
    assert {i: (p["number"], p["send"], p["receive"]) for i, p in ports.items()} == {
        p.id: (p.number, p.send, p.receive) for p in target.server.ports()
    }
    assert ports["lp/1"]["send"] and not ports["lp/2"]["send"]
    status, out, _ = run(capsys, "ports", *target.args)
    rows = [r.split() for r in out.splitlines()]
    assert rows[0] == ["ID", "KIND", "NUMBER", "STATE", "SEND", "RECEIVE", "NAME"]
    assert rows[1][:6] == ["lp/1", "loopback-pair", "100", "available", "yes", "yes"]
    assert rows[2][:6] == ["lp/2", "loopback-pair", "200", "available", "no", "yes"]


def test_events_count_replays_and_follows(target, capsys, tmp_path):
    pdf = make_pdf(str(tmp_path / "a.pdf"), 1)
    job = target.server.send(pdf, "200")
    job.wait(timeout=60)
    target.received()  # and routed: no event of it left to come
    status, out, _ = run(
        capsys, "events", "--since", "0", "--job", job.id, "--count", "2", "--json", *target.args
    )
    events = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and len(events) == 2
    assert events[0]["kind"] == "job_queued" and events[0]["job_id"] == job.id
    assert events[0]["seq"] < events[1]["seq"]
    # following: the command waits for events that have not happened yet
    box = {}
    follower = threading.Thread(
        target=lambda: box.update(status=main(["events", "--count", "1", *target.args]))
    )
    follower.start()
    while follower.is_alive():
        target.server.set_configuration(retries=2)  # publishes config_changed
        follower.join(0.2)
    assert box["status"] == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.split()[2] == "config_changed"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["send", "x.pdf"], "--to"),
        (["job", "abc"], "invalid int"),
        (["jobs", "--server", "http://127.0.0.1:1", "--spool", "/tmp"], "not both"),
        (["jobs", "--server", "localhost:8765"], "a URL like"),
        (["jobs", "--token-file", "/nonexistent/token"], "cannot read the token file"),
        (["users", "add", "bob"], "--rights"),
        (["users"], "required"),
        (["events", "--count", "0"], "--count"),
        (["job", "1", "--cancel", "--pause"], "not allowed with"),
        (["job", "1", "--confirm"], "--confirm goes with --restart"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTFAX_SPOOL", str(tmp_path / "spool"))
    status, _, err = run(capsys, *argv)
    assert status == 2 and message in err


def test_send_usage_errors_exit_2(capsys, tmp_path):
    pdf = make_pdf(str(tmp_path / "a.pdf"), 1)
    spool = ["--spool", str(tmp_path / "spool")]
    for argv, message in [
        ([pdf, "--to", "1", "--timeout", "3"], "--timeout goes with --wait"),
        ([pdf, "--to", "1", "--schedule", "soonish"], "--schedule is"),
        ([str(tmp_path / "none.pdf"), "--to", "1"], "no such file"),
    ]:
        status, _, err = run(capsys, "send", *argv, *spool)
        assert status == 2 and message in err, argv


def test_unreachable_or_refused_exits_3(capsys, tmp_path):
    status, _, err = run(capsys, "jobs", "--server", f"http://127.0.0.1:{free_port()}")
    assert status == 3 and "cannot reach" in err
    t = Target("remote", tmp_path)
    try:
        bad = tmp_path / "bad.token"
        bad.write_text("not-a-token")
        status, _, err = run(capsys, "jobs", "--server", t.http.url, "--token-file", bad)
        assert status == 3 and "not valid" in err
        # the daemon's process holds the spool: the embedded service cannot open it
        proc = subprocess.run(
            [sys.executable, "-m", "fastfax.cli", "jobs", "--spool", t.spool],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 3 and "--server" in proc.stderr
    finally:
        t.close()


def test_subprocess_send_and_events_against_a_daemon(tmp_path):
    t = Target("remote", tmp_path)
    try:
        with t.server.events() as stream:  # a known event to follow from: no race
            t.server.set_configuration(retries=2)
            since = stream.get(timeout=30).seq
        follow = subprocess.Popen(
            ["fastfax", "events", "--since", str(since), "--count", "3", "--json", *t.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        pdf = make_pdf(str(tmp_path / "a.pdf"), 1)
        proc = subprocess.run(
            ["fastfax", "send", pdf, "--to", "200", "--wait", "--timeout", "60", *t.args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "completed" in proc.stdout
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, err
        kinds = [json.loads(line)["kind"] for line in out.splitlines()]
        assert len(kinds) == 3 and "job_queued" in kinds
    finally:
        t.close()


def test_help_lists_commands_and_exit_statuses():
    proc = subprocess.run(["fastfax", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for word in ("send", "jobs", "ports", "events", "users", "convert", "exit status:"):
        assert word in proc.stdout
    assert "  3    the fax server cannot be reached" in proc.stdout


def test_the_command_imports_lazily():
    """Importing the command loads neither the service, the conversion pipeline, PDFium,
    Pillow nor tqdm; ``fastfax jobs --help`` not the conversion pipeline either."""
    code = (
        "import sys, fastfax.cli; from fastfax.cli import _parser; {}"
        "print(sorted(m for m in sys.modules if m.startswith(("
        "'fastfax.service', 'fastfax.document', 'fastfax.client', 'pypdfium2', 'PIL', 'tqdm',"
        "'sqlite3'))))"
    )
    for setup in ("", "_parser('jobs');"):
        proc = subprocess.run(
            [sys.executable, "-c", code.format(setup)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "[]", setup


def test_parse_schedule():
    import datetime as dt

    now = dt.datetime(2026, 3, 1, 12, 30)
    assert parse_schedule(None, now) is None and parse_schedule("discount", now) == "discount"
    assert parse_schedule("13:00", now) == dt.datetime(2026, 3, 1, 13, 0).timestamp()
    assert parse_schedule("08:15", now) == dt.datetime(2026, 3, 2, 8, 15).timestamp()
    assert parse_schedule("+90", now) == dt.datetime(2026, 3, 1, 14, 0).timestamp()
    assert parse_schedule("2026-04-01 09:00", now) == dt.datetime(2026, 4, 1, 9).timestamp()


def test_embedded_send_wait_lets_the_far_end_finish(capsys, tmp_path):
    """The command's own service closes when it exits: not before the answering line
    has stored the fax (closing would cut that call)."""
    spool = make_spool(str(tmp_path))
    with connect(spool=spool) as server:
        only_sender(server, "lp/1")
    pdf = make_pdf(str(tmp_path / "a.pdf"), 2)
    assert run(capsys, "send", pdf, "--to", "200", "--wait", "--spool", spool)[0] == 0
    with connect(spool=spool) as server:
        received = [j for j in server.jobs() if j.type.value == "receive"]
    assert [(j.state.value, j.pages, j.attempts, j.cause) for j in received] == [
        ("completed", 2, 1, "")
    ]


def test_request_id_queues_once_and_job_fields_are_kept(target, capsys, tmp_path):
    pdf = make_pdf(str(tmp_path / "a.pdf"), 1)
    argv = ["send", pdf, "--to", "200", "--schedule", "+60", "--json", "--request-id", "k-1"]
    argv += ["--billing-code", "B42", "--department", "Sales", *target.args]
    first = json.loads(run(capsys, *argv)[1])
    again = json.loads(run(capsys, *argv)[1])
    assert [j["id"] for j in first] == [j["id"] for j in again]
    assert len([j for j in target.server.jobs() if j.type.value == "send"]) == 1
    info = target.server.job(first[0]["id"]).info()
    assert (info.billing_code, info.sender_department) == ("B42", "Sales")
