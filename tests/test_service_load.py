"""The fax service under a gateway's load (issue 11): concurrent clients to the same few
numbers, embedded and over HTTP, every job completed; cancels racing the scheduler;
pause and delete of a job on the line."""

from __future__ import annotations

import os
import threading
import time

import pytest
from service_helpers import gateway_load, only_sender, text_pages

from fastfax.client import connect
from fastfax.service.errors import JobStateError
from fastfax.service.http import HttpService
from fastfax.service.model import EventKind, JobState
from fastfax.service.rights import ALL_RIGHTS
from fastfax.service.server import Service

T = 60


def gateway_spool(tmp: str, **configuration: object) -> str:
    """Two loopback pairs (100 <-> 200, 300 <-> 400), every line sending and receiving,
    as ``fastfax serve`` sets them up by default."""
    conf = {"retries": 2, "retry_delay": 0.05, "branding": False, **configuration}
    lines = ["[configuration]"]
    lines += [f"{k} = {v!r}".replace("True", "true").replace("False", "false")
              for k, v in conf.items()]  # fmt: skip
    for name, numbers in (("lp", '["100", "200"]'), ("lq", '["300", "400"]')):
        lines += ["[[devices]]", 'kind = "loopback-pair"', f'name = "{name}"',
                  f"numbers = {numbers}"]  # fmt: skip
    spool = os.path.join(tmp, "spool")
    os.makedirs(spool)
    with open(os.path.join(spool, "fastfax.toml"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return spool


class Gateway:
    """The service on ``spool``, reached by ``clients`` connections: embedded ones, or
    HTTP ones through :class:`HttpService` (``mode`` "remote")."""

    def __init__(self, spool: str, mode: str, clients: int) -> None:
        self.http = None
        if mode == "local":
            self.conns = [connect(spool=spool) for _ in range(clients)]
        else:
            self.service = Service(spool)
            owner = self.service.open_session(local=True)
            token = self.service.call(owner, "add_user", {"name": "gw", "rights": ALL_RIGHTS.value})
            self.service.close_session(owner)
            self.http = HttpService(self.service)
            self.conns = [connect(self.http.url, token=token) for _ in range(clients)]

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        if self.http is not None:
            self.http.close()
            self.service.close()


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_concurrent_clients_to_the_same_numbers_all_complete(tmp_path, mode):
    """Three clients at once, 15 faxes each, to numbers of the service's own lines: no job
    is put on the line that has the number, none fails, none is lost."""
    gw = Gateway(gateway_spool(str(tmp_path)), mode, 3)
    try:
        page = text_pages(1)
        numbers = ["200", "100", "400", "200", "300"]
        jobs: list = []
        errors: list[BaseException] = []

        def client(conn, n: int) -> None:
            try:
                for k in range(15):
                    jobs.append(conn.send(page, to=numbers[(n + k) % len(numbers)]))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(c, n)) for n, c in enumerate(gw.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        infos = [job.wait(T) for job in jobs]
        assert len(infos) == 45
        bad = [(i.id, i.number, i.state.value, i.cause) for i in infos
               if i.state is not JobState.COMPLETED]  # fmt: skip
        assert not bad
        line_of = {p.id: p.number for p in gw.conns[0].ports()}
        assert all(line_of[i.port] != i.number for i in infos)  # never dialled itself
        received = [j for j in gw.conns[0].jobs() if j.type.value == "receive"]
        assert len(received) == 45
        for number in set(numbers):  # each fax arrived on the line that has the number
            sent = sum(i.number == number for i in infos)
            assert sum(line_of[j.port] == number for j in received) == sent
    finally:
        gw.close()


def test_a_number_no_line_reaches_fails_at_once_and_one_a_disabled_line_reaches_waits(tmp_path):
    with connect(spool=gateway_spool(str(tmp_path))) as server:
        for port in server.ports():
            with server.port(port.id, modify=True) as handle:
                handle.update(send=port.id == "lp/2")
        gone = server.send(text_pages(1), to="555").wait(T)
        assert gone.state is JobState.FAILED and gone.attempts == 0 and "555" in gone.cause
        # only lp/2 sends, and it cannot dial its own number: the job waits for a line
        job = server.send(text_pages(1), to="200")
        deadline = time.monotonic() + T
        while job.status is not JobState.NOLINE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.info().attempts == 0 and "200" in job.info().cause
        with server.port("lq/1", modify=True) as handle:
            handle.update(send=True)
        assert job.wait(T).state is JobState.COMPLETED
        assert job.info().port == "lq/1"


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_cancelling_a_broadcast_while_the_scheduler_runs_never_fails(tmp_path, mode):
    """Every job of a 20-job broadcast is cancelled as the scheduler claims them: each
    cancel either wins before the call or aborts it; only a job that was already
    completed refuses."""
    gw = Gateway(gateway_spool(str(tmp_path)), mode, 1)
    try:
        server = gw.conns[0]
        jobs = server.broadcast(text_pages(1), ["200", "400", "100", "300"] * 5)
        said = {}
        for job in jobs:
            try:
                said[job.id] = job.cancel().state
            except JobStateError:
                said[job.id] = None
        for job in jobs:
            final = job.wait(T).state
            if said[job.id] is JobState.CANCELED:  # won before the call
                assert final is JobState.CANCELED
            elif said[job.id] in (JobState.INPROGRESS, JobState.COMPLETED):
                # its call was aborted, or had delivered the fax before the answer to the
                # cancel was read
                assert final in (JobState.CANCELED, JobState.COMPLETED)
            else:  # refused: only a job that had already finished
                assert said[job.id] is None and final is JobState.COMPLETED
        # the queue still works afterwards
        assert server.send(text_pages(1), to="200").wait(T).state is JobState.COMPLETED
    finally:
        gw.close()


def test_pause_and_delete_a_job_on_the_line(tmp_path):
    spool = gateway_spool(str(tmp_path))
    with open(os.path.join(spool, "fastfax.toml"), "a") as fh:
        fh.write('[[devices]]\nkind = "loopback-pair"\nname = "slow"\n'
                 'numbers = ["500", "600"]\npage_delay = 0.3\n')  # fmt: skip
    with connect(spool=spool) as server:
        only_sender(server, "slow/1")  # the slow pair's page delay is its sender's
        events = server.events()
        job = server.send(text_pages(4), to="600")
        for event in events:
            if event.kind is EventKind.SENDING and event.job_id == job.id:
                break
        assert job.pause().state is JobState.INPROGRESS  # held once this call ends
        assert job.wait(T).state is JobState.COMPLETED  # the call went through
        other = server.send(text_pages(4), to="600")
        for event in events:
            if event.kind is EventKind.SENDING and event.job_id == other.id:
                break
        assert other.delete()
        for event in events:
            if event.kind is EventKind.DELETED and event.job_id == other.id:
                break
        assert other.id not in {j.id for j in server.jobs()}
        done = server.send(text_pages(1), to="600")
        assert done.wait(T).state is JobState.COMPLETED
        done.delete()  # (removed once its call's worker has let go)
        for event in events:
            if event.kind is EventKind.DELETED and event.job_id == done.id:
                break
        assert done.id not in {j.id for j in server.jobs()}


def test_three_clients_through_the_daemon_killed_midway_every_fax_exactly_once(tmp_path):
    """3 clients x 40 faxes through ``fastfax serve``, SIGKILL once half are submitted,
    restart: every job completed, every fax stored once at the far line, pixel-exact."""
    figures = gateway_load(str(tmp_path), clients=3, jobs=40, kill=True)
    assert figures["jobs"] == 120


def test_a_receive_in_progress_can_be_aborted(tmp_path):
    spool = gateway_spool(str(tmp_path), retries=3)
    with open(os.path.join(spool, "fastfax.toml"), "a") as fh:
        fh.write('[[devices]]\nkind = "loopback-pair"\nname = "slow"\n'
                 'numbers = ["500", "600"]\npage_delay = 0.3\n')  # fmt: skip
    with connect(spool=spool) as server:
        only_sender(server, "slow/1")
        events = server.events()
        with pytest.raises(JobStateError, match="not receiving"):
            server.port("slow/2").abort_receive()
        job = server.send(text_pages(4), to="600")
        for event in events:
            if event.kind is EventKind.SENDING and event.job_id == job.id:
                break
        server.port("slow/2").abort_receive()
        for event in events:
            if event.job_id == job.id and event.kind is EventKind.DISCONNECTED:
                break
        info = job.wait(T)  # the sender saw the line drop, and tried again
        assert info.state is JobState.COMPLETED and info.attempts == 2
        received = [j for j in server.jobs() if j.type.value == "receive"]
        assert len(received) == 1 and received[0].pages == 4  # only the whole fax
