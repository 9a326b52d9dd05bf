"""Load: N simultaneous fax calls from SIPp into one fastfax service with a ``sip`` device.

SIPp (``sip-tester``) places N calls at a rate R (scenario ``tests/peers/sipp/uac_t38.xml``
with each call's T.38 port taken from a CSV file: audio INVITE, T.38 re-INVITE, our BYE).
The fax of each call is sent by a fastfax T.38 terminal in a separate process (one UDP
socket per call, on the port that call's SDP names; it answers the first UDPTL packet our
side sends, as SpanDSP's peer does). The service (in this process) answers every INVITE
on a device of N channels, receives the page and stores it as a receive job.

Figures: calls set up per second (first INVITE to the last call's T.38 media, from the
receive jobs' times), simultaneous calls held (the most receive calls in progress at
once, from the port states sampled every 50 ms), the service's CPU seconds per call
(this process's CPU time over the run / N: SIP, T.38, T.30, spooling), every fax checked
complete and pixel-exact.

Run: ``FASTFAX_SIP_CALLS=200 FASTFAX_SIP_RATE=50 python -m pytest bench/test_sip_load.py -s``
(defaults 50 calls at 25 calls/s, line clocks 10 times faster than real time).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from fastfax import samples, tiff
from fastfax.client import connect
from fastfax.service import devices
from fastfax.service.model import DeviceState, JobType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "peers"))
from sipp_peer import Sipp  # noqa: E402

CALLS = int(os.environ.get("FASTFAX_SIP_CALLS", "50"))
RATE = float(os.environ.get("FASTFAX_SIP_RATE", "25"))
SPEED = float(os.environ.get("FASTFAX_SIP_SPEED", "10"))

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None,
                                reason="sipp not installed (apt install sip-tester)")

SENDERS = textwrap.dedent("""
    import asyncio, sys
    from fastfax.t30.station import create
    from fastfax.t38.terminal import T38Terminal
    from fastfax.tiff import read
    from fastfax.transport.t38 import run_call

    ports = [int(p) for p in sys.argv[1].split(",")]
    pages = read(sys.argv[2])
    speed = float(sys.argv[3])

    async def one(port):
        terminal = T38Terminal(create(calling=True, pages=pages), speed=speed)
        return await run_call(terminal, bind=("127.0.0.1", port), wait_for_call=120)

    async def main():
        print("READY", flush=True)
        results = await asyncio.gather(*(one(p) for p in ports))
        print("OK", sum(r.ok for r in results), flush=True)

    asyncio.run(main())
""")


def free_ports(count: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def sip_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed device kinds plus ``sip`` (until pyproject.toml registers it)."""
    real = devices.entry_points
    ep = EntryPoint("sip", "fastfax.devices.sip:SipDevice", "fastfax.devices")

    def entry_points(group: str) -> list:
        found = list(real(group=group))
        if group == ep.group and not any(e.name == ep.name for e in found):
            found.append(ep)
        return found

    monkeypatch.setattr(devices, "entry_points", entry_points)


@pytest.mark.usefixtures("sip_kind")
def test_sip_load(tmp_path: Path) -> None:
    page = samples.text_page(resolution="fine", seed=3, height=600)
    tiff.write(tmp_path / "page.tif", [page])
    media = free_ports(CALLS)
    (sip_port,) = free_ports(1)
    # the scenario with each call's T.38 port from the CSV file (SEQUENTIAL: one a call)
    scenario = (ROOT / "tests/peers/sipp/uac_t38.xml").read_text().replace("[t38port]",
                                                                           "[field0]")
    (tmp_path / "uac_load.xml").write_text(scenario)
    (tmp_path / "ports.csv").write_text("SEQUENTIAL\n" + "".join(f"{p};\n" for p in media))
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "fastfax.toml").write_text(
        f'[configuration]\nbranding = false\n[[devices]]\nkind = "sip"\nname = "trunk"\n'
        f'local = "127.0.0.1:{sip_port}"\nchannels = {CALLS}\nspeed = {SPEED}\n'
        f'session_expires = 0\nt38_mode = "on-request"\n')
    senders = subprocess.Popen(
        [sys.executable, "-c", SENDERS, ",".join(map(str, media)), str(tmp_path / "page.tif"),
         str(SPEED)], stdout=subprocess.PIPE, text=True)
    assert senders.stdout is not None and senders.stdout.readline().strip() == "READY"
    with connect(spool=str(spool)) as server:
        for port in server.ports():
            with server.port(port.id, modify=True) as handle:
                handle.update(send=False, receive=True)
        cpu0, wall0 = time.process_time(), time.monotonic()
        peer = Sipp(str(tmp_path / "uac_load.xml"), tmp_path, remote=("127.0.0.1", sip_port),
                    calls=CALLS, rate=RATE, limit=CALLS, timeout=300,
                    extra=["-inf", str(tmp_path / "ports.csv")])
        held = 0
        deadline = time.monotonic() + 300
        while peer.proc.poll() is None and time.monotonic() < deadline:
            busy = sum(server.port(p.id).status().state in (
                DeviceState.RECEIVING, DeviceState.ANSWERED) for p in server.ports())
            held = max(held, busy)
            time.sleep(0.05)
        status = peer.wait(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rx = [j for j in server.jobs() if j.type is JobType.RECEIVE]
            if len(rx) >= CALLS and all(j.state.final for j in rx):
                break
            time.sleep(0.1)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        got = [server.job(j.id).pages() for j in rx]
    out, _ = senders.communicate(timeout=60)
    assert status == 0, peer.errors()[-3000:]
    assert out.strip().endswith(f"OK {CALLS}"), out
    assert len(got) == CALLS and all(g == [page] for g in got)
    submitted = sorted(j.submitted for j in rx)
    setup = (CALLS - 1) / max(submitted[-1] - submitted[0], 1e-9)
    print(f"\nSIP load: {CALLS} calls offered at {RATE:g}/s, speed {SPEED:g}: all completed "
          f"pixel-exact in {wall:.1f} s wall; calls completed per second (first to last "
          f"received fax) {setup:.1f}; most calls held at once {held}; service CPU "
          f"{cpu:.1f} s = {1000 * cpu / CALLS:.0f} ms per call")
