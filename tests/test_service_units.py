"""Pieces of the fax service on their own: safe routing file names, the TOML file,
the wire format, the spool lock, plug-in device kinds; what the scheduler makes of a
SIP call's refusals (SIPp as the far end) and of a voice call on a Class 1 line
(tests/peers/faxline.c)."""

from __future__ import annotations

import datetime as dt
import os
import time
from importlib.metadata import EntryPoint

import pytest
import sipp_peer
from service_helpers import make_spool, only_sender, text_pages

from fastfax import tiff
from fastfax.client import connect
from fastfax.devices.loopback import LoopbackPair
from fastfax.service import devices
from fastfax.service.config import in_window, load_toml
from fastfax.service.errors import ConfigError, RequestError, SpoolBusy
from fastfax.service.model import EventKind, JobState
from fastfax.service.routing import PrintMethod, ReceivedFax, StoreMethod, safe_name
from fastfax.service.server import Service
from fastfax.service.wire import decode, encode


def _fax(tmp_path, remote_id: str) -> ReceivedFax:
    path = tmp_path / "in.tif"
    tiff.write(path, text_pages(1), "g4")
    return ReceivedFax(7, str(path), 1, "lp/2", remote_id, "100", time.time())


@pytest.mark.parametrize("remote_id", ["../../etc/passwd", "/abs", "a\0b", "..", "x" * 300, ""])
def test_store_never_writes_outside_its_folder(tmp_path, remote_id):
    folder = tmp_path / "faxes"
    fax = _fax(tmp_path, remote_id)
    name = safe_name(fax, ".tif")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    written = StoreMethod().route(fax, {"folder": str(folder), "format": "pdf"})
    assert os.path.dirname(written) == str(folder) and written.endswith(".pdf")
    assert sorted(os.listdir(tmp_path)) == ["faxes", "in.tif"]  # nothing else appeared
    assert os.listdir(folder) == [os.path.basename(written)]


def test_routing_data_is_checked():
    with pytest.raises(ConfigError):
        StoreMethod().check({"folder": "relative"})
    with pytest.raises(ConfigError):
        StoreMethod().check({"folder": "/tmp", "format": "gif"})
    with pytest.raises(ConfigError):
        PrintMethod().check({"printer": "x; rm -rf /"})
    with pytest.raises(ConfigError):
        PrintMethod({"command": []})


def test_print_failure_raises(tmp_path):
    method = PrintMethod({"command": ["false"]})
    with pytest.raises(OSError, match="status 1"):
        method.route(_fax(tmp_path, "x"), {"printer": "p"})


@pytest.mark.parametrize(
    "text, message",
    [
        ("[http]\nport = 70000\n", "port"),
        ("[bogus]\n", "unknown section"),
        ("[configuration]\nretries = -1\n", "retries"),
        ("[configuration]\ninterrupted = 'drop'\n", "interrupted must be one of .*'hold'"),
        ("[[devices]]\nname = 'x'\n", "kind and a name"),
        ("not toml ===\n", "not valid TOML"),
        ("cpus = []\n", "cpus must be a non-empty list"),
        ("cpus = [-1]\n", "cpus must be a non-empty list"),
        ("cpus = '0'\n", "cpus must be a non-empty list"),
        ("cpus = [true]\n", "cpus must be a non-empty list"),
    ],
)
def test_bad_toml(tmp_path, text, message):
    path = tmp_path / "f.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_toml(path)


def test_discount_window_wraps_midnight():
    at = dt.datetime(2024, 1, 1, 23, 30)
    assert in_window("20:00", "07:00", at)
    assert in_window("20:00", "07:00", at.replace(hour=3))
    assert not in_window("20:00", "07:00", at.replace(hour=12))
    assert in_window("09:00", "17:00", at.replace(hour=9, minute=0))
    assert not in_window("09:00", "17:00", at.replace(hour=17, minute=0))


def test_wire_roundtrip_and_bad_base64():
    value = {"a": [b"\x00\xff", {"b": b""}], "c": "text"}
    assert decode(encode(value)) == value
    with pytest.raises(RequestError):
        decode({"$bytes": "not base64!"})


def test_spool_is_locked_against_a_second_service(tmp_path):
    spool = make_spool(str(tmp_path))
    with connect(spool=spool) as first, connect(spool=spool) as second:
        assert first._backend.service is second._backend.service  # shared in-process
        with pytest.raises(SpoolBusy):
            Service(spool)


def test_device_kind_from_an_entry_point(tmp_path, monkeypatch):
    class Fake(LoopbackPair):
        """A third-party kind: here, a loopback pair under another name."""

    ep = EntryPoint("test-kind", f"{__name__}:Fake", "fastfax.devices")
    monkeypatch.setattr(devices, "entry_points", lambda group: [ep] if group == ep.group else [])
    monkeypatch.setitem(globals(), "Fake", Fake)
    assert devices.device_factory("test-kind") is Fake
    with pytest.raises(ConfigError, match="test-kind"):
        devices.device_factory("nope")


@pytest.mark.parametrize(
    ("setting", "message"),
    [("rings = 100", "rings must be"), ('tsid = "é"', "tsid must be"), ("send = 1", "send must")],
)
def test_initial_port_settings_from_toml(tmp_path, setting, message):
    spool = tmp_path / "spool"
    spool.mkdir()
    toml = '[[devices]]\nkind = "loopback-pair"\nname = "lp"\nreceive = false\npriority = 7\n'
    (spool / "fastfax.toml").write_text(toml)
    with connect(spool=str(spool)) as server:
        ports = {p.id: p for p in server.ports()}
        assert {(p.receive, p.send, p.priority) for p in ports.values()} == {(False, True, 7)}
        server.port("lp/1", modify=True).update(receive=True)
    with connect(spool=str(spool)) as server:  # initial values only: the change stays
        assert server.port("lp/1").info.receive and not server.port("lp/2").info.receive
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "fastfax.toml").write_text(toml + setting + "\n")
    with pytest.raises(ConfigError, match=f"device 'lp': {message}"):
        Service(str(tmp_path / "bad"))


def _until(stream, kind: EventKind, timeout: float = 60) -> list:
    """The events of ``stream`` up to and including the first of ``kind``."""
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = stream.get(timeout=0.5)
        if event is not None:
            out.append(event)
            if event.kind is kind:
                return out
    raise AssertionError(f"no {kind} event in {timeout} s: {[e.kind.value for e in out]}")


@pytest.mark.skipif(not sipp_peer.available(), reason="sipp not installed (apt install sip-tester)")
@pytest.mark.parametrize(
    ("scenario", "status", "state", "cause"),
    [  # a far end refusing T.38 or a trunk refusing the call refuses the next call too
        ("uas_no_t38", 488, JobState.FAILED, "far end refused T.38 (488)"),
        ("uas_busy", 403, JobState.FAILED, "refused by trunk (403)"),
        # a call that failed before any training: retried, at the same speed
        ("uas_busy", 500, JobState.RETRIES_EXCEEDED, "call failed (500)"),
    ],
)
def test_sip_refusals(tmp_path, scenario, status, state, cause):
    """A job on a ``sip`` line whose call SIPp refuses: not retried (FAILED, one attempt)
    with the SIP cause as the job's cause, or, for a failure before training, retried
    without lowering the speed (fallback 0)."""
    peer = sipp_peer.Sipp(scenario, tmp_path, fill={"status": status}, calls=2)
    try:
        spool = tmp_path / "spool"
        spool.mkdir()
        (spool / "fastfax.toml").write_text(
            '[configuration]\nretries = 1\nretry_delay = 0.05\n[[devices]]\nkind = "sip"\n'
            f'name = "trunk"\nlocal = "127.0.0.1:0"\ngateway = "127.0.0.1:{peer.port}"\n'
            "setup_timeout = 15\nreceive = false\n"
        )
        with connect(spool=str(spool)) as server, server.events() as stream:
            only_sender(server, "trunk/1")
            job = server.send(text_pages(1), to="2000")
            info = job.wait(30)
            refused = state is JobState.FAILED
            assert (info.state, info.cause, info.attempts) == (state, cause, 1 if refused else 2)
            assert info.fallback == 0
            kind = EventKind.FATAL_ERROR if status == 500 else (
                EventKind.NOT_FAX_CALL if status == 488 else EventKind.CALL_BLACKLISTED)
            event = _until(stream, kind)[-1]
            assert event.job_id == job.id and event.data["cause"] == cause
    finally:
        peer.stop()
    assert peer.messages().count("INVITE sip:2000@") == (1 if refused else 2)
