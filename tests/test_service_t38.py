"""The fax service over T.38 (the ``t38`` device kind, fastfax.devices.t38): lines on
UDP ports of 127.0.0.1 calling static peers, through the service's API.

- One device whose lines call each other (100, 101 send; 200, 201 answer): several faxes
  sent at once, every job COMPLETED, every fax stored pixel for pixel.
- The service and SpanDSP's T.38 terminal (tests/peers/t38peer) both ways: the oracle is
  the TIFF file SpanDSP wrote or read (through libtiff, by Pillow).
- Nobody answering, an abort and a close mid-call; TOML fields checked.

Lines and peers run their line clocks ``SPEED`` times faster than wall time (the
device's ``speed`` option; SpanDSP's ``--speed``). Until the lead registers the kind in
pyproject.toml the tests add its entry point themselves (``t38_kind``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence
from service_helpers import job_page

from fastfax import connect, tiff
from fastfax.devices.contract import INBOUND_LOGGER
from fastfax.devices.t38 import T38Device
from fastfax.page import Page
from fastfax.service import devices
from fastfax.service.errors import ConfigError
from fastfax.service.model import DeviceState, EventKind, JobState, JobType
from fastfax.service.server import Service

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from t38peer import PeerUnavailable, T38Peer, build  # noqa: E402

SPEED = 20
T = 60  # seconds a job may take before a test fails

pytestmark = pytest.mark.usefixtures("t38_kind", "no_thread_left")


@pytest.fixture
def t38_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed device kinds plus ``t38`` (not yet in pyproject.toml)."""
    real = devices.entry_points
    ep = EntryPoint("t38", "fastfax.devices.t38:T38Device", "fastfax.devices")

    def entry_points(group: str) -> list[EntryPoint]:
        found = list(real(group=group))
        if group == ep.group and not any(e.name == ep.name for e in found):
            found.append(ep)
        return found

    monkeypatch.setattr(devices, "entry_points", entry_points)


@pytest.fixture(scope="module")
def spandsp() -> None:
    try:
        build()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def udp_ports(count: int) -> list[int]:
    """``count`` distinct UDP ports free on 127.0.0.1 just now."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def spool_for(tmp: Path, lines: dict[str, int], peers: dict[str, int], **extra: object) -> str:
    """A spool with one t38 device ``ip`` (``lines``: number -> local port, ``peers``:
    number -> port, all on 127.0.0.1); its last line stores in ``tmp/inbox``."""
    table = ", ".join(f'{{ number = "{n}", local = "127.0.0.1:{p}" }}' for n, p in lines.items())
    known = ", ".join(f'"{n}" = "127.0.0.1:{p}"' for n, p in peers.items())
    toml = ["[configuration]", "retries = 0", "retry_delay = 0.2", "branding = false",
            "[[devices]]", 'kind = "t38"', 'name = "ip"', f"lines = [{table}]",
            f"peers = {{ {known} }}", f"speed = {SPEED}", f"store = {str(tmp / 'inbox')!r}"]
    toml += [f"{k} = {v!r}".replace("True", "true").replace("False", "false")
             for k, v in extra.items()]  # fmt: skip
    spool = tmp / "spool"
    spool.mkdir()
    (spool / "fastfax.toml").write_text("\n".join(toml) + "\n")
    return str(spool)


def roles(server, senders: set[str]) -> None:
    for port in server.ports():
        with server.port(port.id, modify=True) as handle:
            handle.update(send=port.id in senders, receive=port.id not in senders)


def received(server, count: int) -> list:
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        got = [j for j in server.jobs() if j.type is JobType.RECEIVE]
        if len(got) >= count and all(j.state.final for j in got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"{count} fax(es) not received and routed in {T} s")


def pages(count: int, seed: int) -> list[Page]:
    """``count`` small pages, each telling its number (``seed`` + k) by its blocks."""
    return [job_page(seed + k) for k in range(count)]


def tiff_arrays(path: Path) -> list[np.ndarray]:
    """The pages of a TIFF file as libtiff (Pillow) reads them, True = black."""
    with Image.open(path) as im:
        return [np.array(p.convert("1")) == 0 for p in ImageSequence.Iterator(im)]


def test_lines_of_one_device_fax_each_other(tmp_path: Path) -> None:
    a, b, c, d = udp_ports(4)
    spool = spool_for(tmp_path, {"100": a, "101": b, "200": c, "201": d},
                      {"100": a, "101": b, "200": c, "201": d})  # fmt: skip
    faxes = {n: pages(1 + n % 2, seed=10 * n) for n in range(4)}
    with connect(spool=spool) as server, server.events() as stream:
        roles(server, {"ip/1", "ip/2"})
        assert {p.id: p.number for p in server.ports()} == {
            "ip/1": "100", "ip/2": "101", "ip/3": "200", "ip/4": "201"}  # fmt: skip
        jobs = {n: server.send(faxes[n], to=("200", "201")[n % 2]) for n in faxes}
        infos = {n: job.wait(timeout=T) for n, job in jobs.items()}
        for n, info in infos.items():
            assert info.state is JobState.COMPLETED, info
            assert info.port in ("ip/1", "ip/2") and info.remote_id == ("200", "201")[n % 2]
        rx = received(server, 4)
        assert len(rx) == 4 and all(j.state is JobState.COMPLETED for j in rx)
        by_pages = {}
        for job in rx:
            got = server.job(job.id).pages()
            (n,) = [n for n, sent in faxes.items() if sent == got]  # pixel for pixel
            by_pages[n] = job
        assert sorted(by_pages) == [0, 1, 2, 3]
        for n, job in by_pages.items():
            assert job.port == ("ip/3", "ip/4")[n % 2]
            assert job.number == {"ip/1": "100", "ip/2": "101"}[infos[n].port]  # caller
        kinds = {(e.kind, e.port) for e in stream_until(stream, 4)}
        assert {(EventKind.DIALING, "ip/1"), (EventKind.RINGING, "ip/3"),
                (EventKind.RECEIVING, "ip/4")} <= kinds  # fmt: skip
        for port in server.ports():
            assert server.port(port.id).status().state is DeviceState.AVAILABLE
    stored = sorted(f for f in os.listdir(tmp_path / "inbox") if f.endswith(".tif"))
    assert sorted(len(tiff.read(tmp_path / "inbox" / f)) for f in stored) == [2, 2]
    for name in stored:  # line 201 stores: faxes 1 and 3, as libtiff reads them too
        arrays = tiff_arrays(tmp_path / "inbox" / name)
        assert any(all(np.array_equal(g, p.to_array()) for g, p in zip(arrays, faxes[n],
                                                                        strict=True))
                   for n in (1, 3))  # fmt: skip


def stream_until(stream, completed: int) -> list:
    """Events until ``completed`` COMPLETED ones were seen."""
    out, seen = [], 0
    deadline = time.monotonic() + T
    while seen < completed and time.monotonic() < deadline:
        event = stream.get(timeout=0.5)
        if event is not None:
            out.append(event)
            seen += event.kind is EventKind.COMPLETED
    return out


@pytest.mark.usefixtures("spandsp")
@pytest.mark.parametrize("options", [{}, {"version": 3, "error_correction": "fec"}],
                         ids=["v0-redundancy", "v3-fec"])  # fmt: skip
def test_service_sends_to_spandsp(tmp_path: Path, options: dict) -> None:
    (local,) = udp_ports(1)
    sent = pages(2, seed=3)
    ec = options.get("error_correction", "redundancy")
    with T38Peer(receive=tmp_path / "rx.tif", speed=SPEED, timeout=60,
                 version=options.get("version", 0), ec=ec,
                 log_path=tmp_path / "peer.log") as peer:  # fmt: skip
        spool = spool_for(tmp_path, {"100": local}, {"300": peer.port}, **options)
        with connect(spool=spool) as server:
            roles(server, {"ip/1"})
            info = server.send(sent, to="300", tsid="FASTFAX").wait(timeout=T)
            assert info.state is JobState.COMPLETED, (info, peer.log()[-3000:])
            assert info.remote_id == "T38PEER"
        result = peer.wait(60)
    assert result["ok"] and result["pages"] == 2
    assert result["remote_ident"].strip() == "FASTFAX"
    got = tiff_arrays(tmp_path / "rx.tif")
    assert all(np.array_equal(g, p.to_array()) for g, p in zip(got, sent, strict=True))


@pytest.mark.usefixtures("spandsp")
def test_service_answers_spandsp(tmp_path: Path) -> None:
    (local,) = udp_ports(1)
    want = pages(2, seed=7)
    images = [Image.fromarray(~p.to_array()) for p in want]
    images[0].save(tmp_path / "tx.tif", compression="group4", dpi=(204, 98), save_all=True,
                   append_images=images[1:])  # libtiff writes what SpanDSP sends
    spool = spool_for(tmp_path, {"100": local}, {})
    with connect(spool=spool) as server:
        with T38Peer(send=tmp_path / "tx.tif", calling=True, remote=("127.0.0.1", local),
                     speed=SPEED, timeout=60, log_path=tmp_path / "peer.log") as peer:
            (rx,) = received(server, 1)
            result = peer.wait(60)
        assert result["ok"], peer.log()[-3000:]
        assert rx.state is JobState.COMPLETED and rx.port == "ip/1" and rx.pages == 2
        assert rx.remote_id == "T38PEER"
        assert rx.number == f"127.0.0.1:{peer.port}"  # a caller not in peers: its address
        got = server.job(rx.id).pages()
    assert [p.to_array().shape for p in got] == [w.to_array().shape for w in want]
    assert all(np.array_equal(p.to_array(), w.to_array()) for p, w in zip(got, want, strict=True))


def test_nobody_answers_then_abort_then_close(tmp_path: Path) -> None:
    """A peer port where nothing listens: NO_ANSWER after T1 (35 line s); an abort ends a
    call at once; a close mid-call puts the job back in the queue."""
    local, nowhere = udp_ports(2)
    spool = spool_for(tmp_path, {"100": local}, {"300": f"{nowhere}"})
    with connect(spool=spool) as server, server.events() as stream:
        roles(server, {"ip/1"})
        info = server.send(pages(1, seed=1), to="300").wait(timeout=T)
        assert info.state is JobState.RETRIES_EXCEEDED and info.cause == "T1_EXPIRED"
        events = []
        while not any(e.kind is EventKind.NO_ANSWER for e in events):
            events.append(stream.get(timeout=T))
            assert events[-1] is not None, "no NO_ANSWER event"
        assert events[-1].port == "ip/1"
        server.set_configuration(retries=0)
        job = server.send(pages(1, seed=2), to="300")
        while server.job(job.id).info().state is not JobState.INPROGRESS:
            time.sleep(0.01)
        job.abort()
        aborted = job.wait(timeout=T)
        assert aborted.state is JobState.CANCELED and aborted.cause == "aborted"
        assert server.send(pages(1, seed=4), to="999").wait(timeout=T).state is JobState.FAILED
        job = server.send(pages(1, seed=3), to="300")
        while server.job(job.id).info().state is not JobState.INPROGRESS:
            time.sleep(0.01)
        server.set_configuration(pause_queue=True)
    with connect(spool=spool) as server:
        info = server.job(job.id).info()
        assert info.state is JobState.PENDING and info.cause.startswith("interrupted")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "lines must be a list"),
        ({"lines": [{"number": "1"}]}, r"lines\[1\] must be a table"),
        ({"lines": [{"number": "", "local": "127.0.0.1:0"}]}, r"lines\[1\].number"),
        ({"lines": [{"number": "1", "local": "localhost:4000"}]}, r"lines\[1\].local"),
        ({"lines": [{"number": "1", "local": "127.0.0.1:70000"}]}, r"lines\[1\].local"),
        ({"peers": {"2": "127.0.0.1"}}, r"peers.2 must be"),
        ({"peers": ["127.0.0.1:4000"]}, "peers must be a table"),
        ({"version": 4}, "version must be 0-3"),
        ({"version": "0"}, "version must be a number"),
        ({"error_correction": "parity"}, "error_correction must be"),
        ({"redundancy": 200}, "redundancy must be"),
        ({"fec_span": 0}, "fec_span must be"),
        ({"rate_management": "local"}, "rate_management must be"),
        ({"max_datagram": 0}, "max_datagram must be"),
        ({"speed": 0}, "speed must be"),
        ({"ecm": 1}, "ecm must be true or false"),
        ({"max_rate": 100000}, "max_rate"),
        ({"colour": True}, r"unknown option\(s\) \['colour'\]"),
    ],
)
def test_bad_toml_fields_are_named(options: dict, message: str) -> None:
    base = {"lines": [{"number": "1", "local": "127.0.0.1:0"}]} if "lines" not in options else {}
    if options == {}:
        base = {}
    with pytest.raises(ConfigError, match=f"t38 device 'ip': {message}"):
        T38Device("ip", {**base, **options})


def test_a_port_in_use_and_can_reach(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        spool = spool_for(tmp_path, {"100": port}, {})
        with pytest.raises(ConfigError, match=f"ip/1 cannot bind 127.0.0.1:{port}"):
            Service(spool)
    device = T38Device("ip", {"lines": [{"number": "1", "local": "127.0.0.1:0"}],
                              "peers": {"1": "127.0.0.1:9", "2": "127.0.0.1:9",
                                        "6": "[::1]:9"}})  # fmt: skip
    try:
        assert [device.can_reach("ip/1", n) for n in ("1", "2", "3", "6")] == [
            False, True, False, False]  # fmt: skip
    finally:
        device.close()


class RecordingHooks:
    """The service's side of the contract, recorded: a line that answers when
    ``receive``, claims granted while ``free``."""

    def __init__(self) -> None:
        self.receive = False
        self.free = True
        self.claims: list[str] = []
        self.released: list[str] = []
        self.states: list[DeviceState] = []
        self.aborts: list[threading.Event] = []

    def settings(self, line_id: str) -> dict:
        return {"receive": self.receive, "rings": 1, "tsid": "", "csid": "ANSWER"}

    def claim(self, line_id: str) -> bool:
        self.claims.append(line_id)
        return self.free

    def release(self, line_id: str) -> None:
        self.released.append(line_id)

    def receiving(self, line_id: str, abort: threading.Event) -> None:
        self.aborts.append(abort)

    def status(self, line_id: str, state: DeviceState, **fields: object) -> None:
        self.states.append(state)

    def find_line(self, number: str, kind: str) -> None:
        return None

    def received(self, *args: object, **kw: object) -> None:
        raise AssertionError("no fax can arrive here")


def test_answering_rules() -> None:
    """A line answers only when set to receive and free; it never takes the late
    datagrams of its last call for a new one, but answers the same peer calling again."""
    from fastfax.t38.ifp import Indicator, encode_indicator
    from fastfax.t38.udptl import encode_datagram

    (port,) = udp_ports(1)
    hooks = RecordingHooks()
    device = T38Device("ip", {"lines": [{"number": "1", "local": f"127.0.0.1:{port}"}],
                              "speed": 1000})  # fmt: skip
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))

    def send(seq: int) -> None:
        caller.sendto(encode_datagram(seq, encode_indicator(Indicator.NO_SIGNAL)),
                      ("127.0.0.1", port))  # fmt: skip

    def until(check) -> None:  # noqa: ANN001
        deadline = time.monotonic() + T
        while not check():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def settle() -> None:  # a datagram sent to the line is handled once its answer to
        caller.sendto(b"\xff", ("127.0.0.1", port))  # a junk one is known to be dropped
        time.sleep(0.1)

    try:
        device.start(hooks)
        send(100)
        caller.sendto(b"not udptl", ("127.0.0.1", port))
        settle()
        assert hooks.claims == []  # not set to receive
        hooks.receive, hooks.free = True, False
        send(100)
        until(lambda: len(hooks.claims) == 1)
        settle()
        assert hooks.released == []  # the claim was refused: nothing to give back
        hooks.free = True
        send(101)  # answered: the terminal runs 1000 times faster, and T1 ends the call
        until(lambda: hooks.released == ["ip/1"])
        assert DeviceState.ANSWERED in hooks.states and len(hooks.claims) == 2
        caller.settimeout(1)
        assert caller.recv(2000)  # the line answered the caller (no-signal, CED...)
        send(102)  # late: the old call's numbering goes on
        send(101)
        settle()
        assert len(hooks.claims) == 2
        send(0)  # a new call numbers from 0
        until(lambda: len(hooks.claims) == 3)
    finally:
        device.close()
        caller.close()
    assert hooks.released == ["ip/1", "ip/1"]


def test_a_user_aborts_a_receive(caplog: pytest.LogCaptureFixture) -> None:
    """The answered call ends when the service sets the receive's abort flag (at line
    speed 1 it would otherwise wait 35 s for T1)."""
    from fastfax.t38.ifp import Indicator, encode_indicator
    from fastfax.t38.udptl import encode_datagram

    caplog.set_level(logging.WARNING, logger=INBOUND_LOGGER)  # (a service may have raised it)
    (port,) = udp_ports(1)
    hooks = RecordingHooks()
    hooks.receive = True
    device = T38Device("ip", {"lines": [{"number": "1", "local": f"127.0.0.1:{port}"}]})
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        device.start(hooks)
        caller.sendto(encode_datagram(0, encode_indicator(Indicator.CNG)), ("127.0.0.1", port))
        deadline = time.monotonic() + T
        while not hooks.aborts:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        hooks.aborts[0].set()
        while not hooks.released:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        device.close()
        caller.close()
    causes = [r.getMessage().rsplit(": ", 1)[-1] for r in caplog.records
              if "ended without a page" in r.getMessage()]  # fmt: skip
    assert causes in (["CANCELLED"], ["CALLDROPPED"]), causes
