"""What a new spool gives a newcomer: the test lines (a loopback pair answering on 100
and 200) when its TOML declares no devices, and :class:`NoLine` from ``Job.wait()`` at
once, embedded and over HTTP, for a job no line of such a spool can reach; a spool with
its own devices keeps answering such a job as failed."""

from __future__ import annotations

import os
import time

import pytest
from service_helpers import Daemon, make_spool, text_pages

from fastfax import connect
from fastfax.client import NoLine
from fastfax.service.config import DaemonConfig, default_lines, load_toml
from fastfax.service.model import JobState

T = 60.0


def _fresh_spool(tmp_path, toml: str | None = None) -> str:
    spool = str(tmp_path / "spool")
    os.makedirs(spool)
    if toml is not None:
        with open(os.path.join(spool, "fastfax.toml"), "w") as fh:
            fh.write(toml)
    return spool


def test_a_toml_without_devices_means_the_test_lines(tmp_path):
    assert DaemonConfig().devices == default_lines() and not DaemonConfig().own_devices
    path = tmp_path / "a.toml"
    path.write_text("[configuration]\nretries = 1\n")
    assert load_toml(path).devices == default_lines()
    path.write_text("devices = []\n")
    settings = load_toml(path)
    assert settings.devices == [] and not settings.own_devices
    path.write_text('[[devices]]\nkind = "loopback-pair"\nname = "lp"\n')
    settings = load_toml(path)
    assert settings.own_devices and [d["name"] for d in settings.devices] == ["lp"]
    default_lines()[0]["numbers"].append("300")  # a copy: the defaults stay as they are
    assert default_lines()[0]["numbers"] == ["100", "200"]


@pytest.mark.parametrize("mode", ["embedded", "remote"])
def test_a_new_spool_sends_on_its_test_lines_and_says_what_to_declare(tmp_path, mode):
    spool = _fresh_spool(tmp_path)
    daemon = Daemon(spool) if mode == "remote" else None
    try:
        server = (
            connect(daemon.url, token=daemon.token, timeout=T) if daemon else connect(spool=spool)
        )
        with server:
            ports = {(p.id, p.name, p.number, p.kind) for p in server.ports()}
            assert ports == {("test/1", "test line 1", "100", "loopback-pair"),
                             ("test/2", "test line 2", "200", "loopback-pair")}  # fmt: skip
            info = server.send(text_pages(2), to="200").wait(timeout=T)
            assert info.state is JobState.COMPLETED and info.port == "test/1", info
            received = [j for j in server.jobs() if j.type.value == "receive"]
            assert [(j.port, j.pages) for j in received] == [("test/2", 2)]

            job = server.send(text_pages(1), to="5551234")
            start = time.monotonic()
            with pytest.raises(NoLine) as caught:
                job.wait(timeout=T)
            assert time.monotonic() - start < T / 2  # at once, not at the timeout
            message = str(caught.value)
            assert "'5551234'" in message and "100 and 200" in message
            assert os.path.join(spool, "fastfax.toml") in message and "[[devices]]" in message
            info = job.info()  # the job itself: failed without a call
            assert info.state is JobState.FAILED and info.attempts == 0
    finally:
        if daemon:
            assert daemon.stop()[0] == 0


def test_a_spool_with_no_lines_at_all_says_so(tmp_path):
    spool = _fresh_spool(tmp_path, "devices = []\n")
    with connect(spool=spool) as server:
        assert server.ports() == []
        with pytest.raises(NoLine, match=r"'200'.*no lines .*devices = \[\]"):
            server.send(text_pages(1), to="200").wait(timeout=T)


def test_a_spool_with_its_own_devices_answers_an_unreachable_job_as_failed(tmp_path):
    with connect(spool=make_spool(str(tmp_path))) as server:
        assert not any(p.id.startswith("test/") for p in server.ports())
        info = server.send(text_pages(1), to="999").wait(timeout=T)
        assert info.state is JobState.FAILED and info.attempts == 0 and "999" in info.cause
