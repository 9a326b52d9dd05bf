"""fastfax.transport.sip against software nobody here wrote: SIPp (``sip-tester``) running
the scenarios in tests/peers/sipp as the far UAS or UAC, with the fax media carried by
SpanDSP's T.38 terminal (tests/peers/t38peer) on the port the SDP names; and kamailio as
registrar and proxy on 127.0.0.1.

Oracles: SIPp checks every message it expects arrives in order (exit status 0) and its
traces show what we sent; SpanDSP says whether its fax completed; pages are compared
pixel for pixel with TIFF files written or read by libtiff (Pillow), or with the pages we
sent. Both T.38 ends run their clocks SPEED times faster than wall time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from fastfax import samples
from fastfax.page import Page
from fastfax.sip.ua import CallState
from fastfax.t30.result import Cause
from fastfax.transport import sip
from fastfax.transport.sip import SipAgent

sys.path.insert(0, str(Path(__file__).parent / "peers"))
import kamailio  # noqa: E402
import sipp_peer  # noqa: E402
from sipp_peer import Sipp  # noqa: E402
from t38peer import PeerUnavailable, T38Peer, build  # noqa: E402

SPEED = 10

pytestmark = pytest.mark.skipif(not sipp_peer.available(),
                                reason="sipp not installed (apt install sip-tester)")


@pytest.fixture(scope="module", autouse=True)
def _t38peer() -> None:
    try:
        build()
    except PeerUnavailable as exc:
        pytest.skip(f"SpanDSP's t38peer cannot be built: {exc}")


def pages(count: int = 1, rows: int = 300, seed: int = 1) -> list[Page]:
    return [samples.text_page(resolution="fine", seed=seed + k, height=rows)
            for k in range(count)]


def tiff_pixels(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [np.array(p.convert("1")) == 0 for p in ImageSequence.Iterator(im)]


def write_tiff(path: Path, page_list: list[Page]) -> None:
    images = [Image.fromarray(~p.to_array()) for p in page_list]
    images[0].save(path, compression="group4", dpi=(204, 196), save_all=True,
                   append_images=images[1:])


def call_sipp(scenario: str, tmp_path: Path, *, fill=None, **kwargs):
    """Our send_fax to a SIPp UAS; returns (our result, SIPp's exit status, SIPp)."""
    peer = Sipp(scenario, tmp_path, fill=fill)
    try:
        result = sip.send_fax(f"sip:fax@127.0.0.1:{peer.port}", pages(1), local="127.0.0.1:0",
                              speed=SPEED, **{"setup_timeout": 15, **kwargs})
        return result, peer.wait(30), peer
    finally:
        peer.stop()


def test_we_call_sipp_and_spandsp_receives(tmp_path: Path) -> None:
    sent_pages = pages(2)
    with T38Peer(receive=tmp_path / "rx.tif", speed=SPEED, timeout=60) as media:
        peer = Sipp("uas_t38", tmp_path, keys={"t38port": media.port})
        try:
            result = sip.send_fax(f"sip:fax@127.0.0.1:{peer.port}", sent_pages,
                                  local="127.0.0.1:0", speed=SPEED, setup_timeout=15)
            status = peer.wait(30)
        finally:
            peer.stop()
        spandsp = media.wait(30)
    assert status == 0, peer.errors()
    assert result.ok and len(result.pages) == 2, result
    assert spandsp["ok"] and spandsp["pages"] == 2
    got = tiff_pixels(tmp_path / "rx.tif")
    assert all((g == p.to_array().astype(bool)).all() for g, p in zip(got, sent_pages,
                                                                          strict=True))
    trace = peer.messages()
    assert "m=image" in trace and "BYE sip:" in trace  # the T.38 re-INVITE, our BYE


def test_session_refresh_mid_fax_keeps_t38(tmp_path: Path) -> None:
    # SIPp re-INVITEs (refresher=uas) one second into the T.38 call, which runs for
    # several seconds at speed 4: the refresh lands mid-fax and must not disturb it
    with T38Peer(receive=tmp_path / "rx.tif", speed=4, timeout=60) as media:
        peer = Sipp("uas_t38_refresh", tmp_path, keys={"t38port": media.port})
        try:
            result = sip.send_fax(f"sip:fax@127.0.0.1:{peer.port}", pages(1, rows=1200),
                                  local="127.0.0.1:0", speed=4, setup_timeout=15)
            status = peer.wait(30)
        finally:
            peer.stop()
        spandsp = media.wait(30)
    assert status == 0, peer.errors()
    assert result.ok and spandsp["ok"] and spandsp["pages"] == 1
    trace = peer.messages()
    assert "refresher=uas" in trace
    # what we sent with T.38 in it: our re-INVITE's offer, then our 200 to the refresh,
    # which repeats the same description (same o= line: version unchanged, RFC 3264 8)
    ours = [block for block in re.split(r"\n-{20,}[^\n]*\n", trace)
            if "message received" in block and "m=image" in block]
    assert len(ours) == 2 and ours[0].lstrip().startswith("UDP message received")
    assert "INVITE sip:" in ours[0] and "SIP/2.0 200" in ours[1]
    origin = [re.search(r"^o=.*$", block, re.M).group(0) for block in ours]
    assert origin[0] == origin[1]


def test_we_refresh_the_session_mid_fax(tmp_path: Path) -> None:
    # SIPp's 200s say Session-Expires: 4;refresher=uac: we must re-INVITE every 2 s; the
    # page takes several seconds at speed 4, so the refreshes land mid-fax
    sent_pages = pages(1, rows=1200)
    with T38Peer(receive=tmp_path / "rx.tif", speed=4, timeout=60) as media:
        peer = Sipp("uas_t38_we_refresh", tmp_path, keys={"t38port": media.port})
        try:
            result = sip.send_fax(f"sip:fax@127.0.0.1:{peer.port}", sent_pages,
                                  local="127.0.0.1:0", speed=4, setup_timeout=15,
                                  sip={"session_expires": 90, "min_se": 4})
            status = peer.wait(30)
        finally:
            peer.stop()
        spandsp = media.wait(30)
    assert status == 0, peer.errors()
    assert result.ok and spandsp["ok"] and spandsp["pages"] == 1
    got = tiff_pixels(tmp_path / "rx.tif")
    assert (got[0] == sent_pages[0].to_array().astype(bool)).all()
    blocks = re.split(r"-{20,} [^\n]*\n", peer.messages())
    invites = [b for b in blocks if b.startswith("UDP message received")
               and b.split("\n")[2].startswith("INVITE sip:")]
    # the first INVITE (audio), the T.38 re-INVITE, then at least one refresh before
    # our BYE; every refresh repeats the T.38 description (same o= line, RFC 3264 8)
    assert len(invites) >= 3
    origin = [re.search(r"^o=.*$", b, re.M).group(0) for b in invites[1:]]
    assert all("m=image" in b and "Session-Expires: 4;refresher=uac" in b
               for b in invites[2:])
    assert len(set(origin)) == 1
    bye = next(k for k, b in enumerate(blocks) if b.startswith("UDP message received")
               and b.split("\n")[2].startswith("BYE sip:"))
    assert blocks.index(invites[-1]) < bye


def test_sipp_calls_us_and_switches_to_t38(tmp_path: Path) -> None:
    sent_pages = pages(2, seed=5)
    write_tiff(tmp_path / "tx.tif", sent_pages)

    async def main():
        agent = SipAgent("127.0.0.1:0", t38_mode="on-request", t38_wait=5.0)
        await agent.start()
        try:
            with T38Peer(send=tmp_path / "tx.tif", calling=True, speed=SPEED,
                         timeout=60) as media:
                peer = Sipp("uac_t38", tmp_path, keys={"t38port": media.port},
                            remote=agent.address)
                try:
                    call = await agent.next_call(10)
                    assert call is not None and call.callee.startswith("sip:fax@")
                    result = await agent.answer(call, speed=SPEED)
                    status = await asyncio.to_thread(peer.wait, 30)
                finally:
                    peer.stop()
                spandsp = await asyncio.to_thread(media.wait, 30)
            return result, status, spandsp, peer
        finally:
            agent.close()

    result, status, spandsp, peer = asyncio.run(main())
    assert status == 0, peer.errors()
    assert spandsp["ok"] and result.ok and len(result.pages) == 2
    expected = tiff_pixels(tmp_path / "tx.tif")
    assert all((p.to_array().astype(bool) == e).all()
               for p, e in zip(result.pages, expected, strict=True))


def answer_sipp(scenario: str, tmp_path: Path, *, media: dict | None = None,
                agent_options: dict | None = None, before_answer: float = 0.0):
    """SIPp (as UAC, running ``scenario``) calls our SipAgent, which answers after
    ``before_answer`` seconds; SpanDSP's t38peer (``media``: its options) sends the fax
    from the port the scenario names. Returns (our result, SIPp's status, SIPp,
    SpanDSP's result or None, the agent's user agent after the call)."""

    async def main():
        agent = SipAgent("127.0.0.1:0", **(agent_options or {}))
        await agent.start()
        try:
            with T38Peer(**(media or {"send": tmp_path / "tx.tif"}), calling=True, speed=SPEED,
                         timeout=60) as t38:
                peer = Sipp(scenario, tmp_path, keys={"t38port": t38.port},
                            remote=agent.address)
                try:
                    call = await agent.next_call(10)
                    assert call is not None and call.callee.startswith("sip:fax@")
                    await asyncio.sleep(before_answer)
                    result = await agent.answer(call, speed=SPEED, setup_timeout=15)
                    status = await asyncio.to_thread(peer.wait, 30)
                finally:
                    peer.stop()
                spandsp = await asyncio.to_thread(t38.wait, 30) if result.rate else None
            await agent.drain()
            return result, status, peer, spandsp, agent.ua
        finally:
            agent.close()

    return asyncio.run(main())


def test_glare_491_both_ways_then_our_retry_wins(tmp_path: Path) -> None:
    # our T.38 re-INVITE (we re-INVITE 0.3 s after answering) crosses SIPp's: each side
    # answers the other's 491 Request Pending; we do not own the Call-ID, so we retry
    # first (0-2 s; SIPp as owner would wait 2.1-4 s) and SIPp takes our retry
    sent_pages = pages(1, seed=7)
    write_tiff(tmp_path / "tx.tif", sent_pages)
    result, status, peer, spandsp, _ = answer_sipp(
        "uac_glare", tmp_path, agent_options={"t38_mode": "on-request", "t38_wait": 0.3})
    assert status == 0, peer.errors()
    assert result.ok and spandsp["ok"]
    assert all((p.to_array() == s.to_array()).all()
               for p, s in zip(result.pages, sent_pages, strict=True))
    trace = peer.messages()
    assert trace.count("SIP/2.0 491 Request Pending") == 2  # ours to SIPp, SIPp's to us
    blocks = re.split(r"-{20,} [^\n]*\n", trace)
    ours = [b for b in blocks if b.startswith("UDP message received")
            and b.split("\n")[2].startswith("INVITE sip:sipp@")]
    assert len(ours) == 2 and all("m=image" in b for b in ours)  # the crossed one, the retry


def test_sipp_offers_t38_in_its_invite(tmp_path: Path) -> None:
    sent_pages = pages(2, seed=9)
    write_tiff(tmp_path / "tx.tif", sent_pages)
    result, status, peer, spandsp, _ = answer_sipp("uac_t38_direct", tmp_path)
    assert status == 0, peer.errors()
    assert result.ok and spandsp["ok"] and len(result.pages) == 2
    assert all((p.to_array() == s.to_array()).all()
               for p, s in zip(result.pages, sent_pages, strict=True))
    trace = peer.messages()
    # no re-INVITE either way: the INVITE's T.38 offer was answered with T.38
    assert trace.count("INVITE sip:") == 1 and "CSeq: 2 INVITE" not in trace


def test_sipp_cancels_before_we_answer(tmp_path: Path) -> None:
    write_tiff(tmp_path / "tx.tif", pages(1))
    result, status, peer, _, ua = answer_sipp("uac_cancel", tmp_path, before_answer=1.5)
    assert status == 0, peer.errors()  # 200 to its CANCEL, 487 to its INVITE, its ACK taken
    assert not result.ok and result.cause is Cause.CALLDROPPED and not result.pages
    assert result.sip.name == "caller_canceled" and result.sip.status == 487
    assert not result.sip.retry
    assert ua.state_of(result.call_id) is CallState.ENDED
    trace = peer.messages()
    # the 487 went once: SIPp's ACK matched our INVITE transaction (nothing retransmitted)
    assert trace.count("SIP/2.0 487") == 1 and "SIP/2.0 200 OK" in trace
    assert "SIP/2.0 180" not in trace and "m=image" not in trace


@pytest.mark.parametrize(("status", "name", "cause", "retry"), [
    (486, "busy", Cause.BUSY, True), (600, "busy", Cause.BUSY, True),
    (404, "bad_address", Cause.BAD_ADDRESS, False), (484, "bad_address", Cause.BAD_ADDRESS, False),
    (604, "bad_address", Cause.BAD_ADDRESS, False), (480, "no_answer", Cause.NO_ANSWER, True),
    (408, "no_answer", Cause.NO_ANSWER, True), (403, "refused_by_trunk", Cause.REFUSED, False)])
def test_sipp_refuses(tmp_path: Path, status: int, name: str, cause: Cause, retry: bool) -> None:
    result, code, peer = call_sipp("uas_busy", tmp_path, fill={"status": status})
    assert code == 0, peer.errors()  # it got our ACK for its final response
    assert result.cause is cause and result.sip.name == name and result.sip.status == status
    assert result.sip.retry is retry and not result.ok


def test_sipp_refuses_t38_and_we_hang_up(tmp_path: Path) -> None:
    result, code, peer = call_sipp("uas_no_t38", tmp_path)
    assert code == 0, peer.errors()  # ... and our BYE after the 488
    assert result.sip.name == "no_t38" and result.sip.text == "far end refused T.38"
    assert result.sip.status == 488 and not result.sip.retry
    assert result.cause is Cause.NO_T38 and str(result.cause) == "NO_T38"
    assert result.cause.value == "the far end refused T.38"


def test_no_answer_is_cancelled(tmp_path: Path) -> None:
    result, code, peer = call_sipp("uas_cancel", tmp_path, setup_timeout=1.0)
    assert code == 0, peer.errors()  # CANCEL, then ACK for its 487
    assert result.cause is Cause.NO_ANSWER and result.sip.name == "no_answer"
    assert "CANCEL sip:" in peer.messages()


@pytest.mark.parametrize(("password", "ok"), [("s3cret", True), ("wrong", False)])
def test_digest_challenge(tmp_path: Path, password: str, ok: bool) -> None:
    with T38Peer(receive=tmp_path / "rx.tif", speed=SPEED, timeout=30) as media:
        peer = Sipp("uas_auth", tmp_path, keys={"t38port": media.port, "password": "s3cret"})
        try:
            result = sip.send_fax(f"sip:fax@127.0.0.1:{peer.port}", pages(1),
                                  local="127.0.0.1:0", speed=SPEED, user="gw",
                                  password=password)
            status = peer.wait(30)
        finally:
            peer.stop()
        if ok:
            assert media.wait(30)["ok"]
    assert status == 0, peer.errors()
    assert "Authorization: Digest" in peer.messages() and password not in peer.messages()
    if ok:
        assert result.ok
    else:
        assert result.sip.name == "refused_by_trunk" and result.sip.status == 403


class LossyRelay(asyncio.DatagramProtocol):
    """Forwards SIP between our agent and SIPp (its address in the request URI), dropping
    the first copy of every message (so each gets through only by retransmission)."""

    def __init__(self, far: tuple[str, int]) -> None:
        self.far = far
        self.near: tuple[str, int] | None = None
        self.seen: set[bytes] = set()
        self.dropped: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if data not in self.seen:
            self.seen.add(data)
            self.dropped.append(data.split(b" ", 1)[0] if not data.startswith(b"SIP/")
                                else data.split(b"\r\n", 1)[0])
            return
        if addr == self.far:
            if self.near is not None:
                self.transport.sendto(data, self.near)
        else:
            self.near = addr
            self.transport.sendto(data, self.far)


def test_retransmissions_through_loss(tmp_path: Path) -> None:
    async def main():
        with T38Peer(receive=tmp_path / "rx.tif", speed=SPEED, timeout=60) as media:
            peer = Sipp("uas_t38", tmp_path, keys={"t38port": media.port})
            loop = asyncio.get_running_loop()
            transport, relay = await loop.create_datagram_endpoint(
                lambda: LossyRelay(peer.address), local_addr=("127.0.0.1", 0))
            port = transport.get_extra_info("sockname")[1]
            try:
                result = await sip.send_fax_async(
                    f"sip:fax@127.0.0.1:{port}", pages(1), local="127.0.0.1:0", speed=SPEED,
                    setup_timeout=15)
                status = await asyncio.to_thread(peer.wait, 30)
            finally:
                transport.close()
                peer.stop()
            spandsp = await asyncio.to_thread(media.wait, 30)
        return result, status, spandsp, relay, peer

    result, status, spandsp, relay, peer = asyncio.run(main())
    assert status == 0, peer.errors()
    assert result.ok and spandsp["ok"]
    # the first copy of our INVITE (timer A resent it) and of SIPp's 180 and 200 (its
    # retransmission got our ACK) were lost; in-dialog requests go to SIPp's Contact,
    # not through the relay
    assert relay.dropped[:3] == [b"INVITE", b"SIP/2.0 180 Ringing", b"SIP/2.0 200 OK"]


def test_daemon_takes_simultaneous_calls_from_sipp(tmp_path: Path) -> None:
    # the short version of bench/test_sip_load.py: a `fastfax serve` process with a sip
    # device of 4 channels; SIPp calls it 4 times at once, SpanDSP sends each fax
    spec = importlib.util.spec_from_file_location(
        "fastfax_bench_sip_load", Path(__file__).parent.parent / "bench" / "test_sip_load.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.run_load(tmp_path, calls=4, rate=20, speed=SPEED)
    assert "every fax completed, pixel-exact: 4 completed receive jobs" in report


# --- kamailio ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_register_and_call_through_kamailio(tmp_path: Path, transport: str) -> None:
    if not kamailio.available():
        pytest.skip("kamailio not installed (apt install kamailio)")
    sent_pages = pages(2, seed=9)

    async def main(proxy: tuple[str, int]):
        rx = SipAgent("127.0.0.1:0", user="2000", password="secret", registrar=proxy,
                      proxy=proxy, t38_mode="on-request", transport=transport)
        tx = SipAgent("127.0.0.1:0", user="1000", password="secret", registrar=proxy,
                      proxy=proxy, transport=transport)
        await rx.start()
        await tx.start()
        try:
            registered = await rx.register()
            await tx.register()

            async def take():
                call = await rx.next_call(10)
                return call, await rx.answer(call, speed=SPEED)

            taker = asyncio.create_task(take())
            sent = await tx.send("2000", sent_pages, speed=SPEED)
            call, got = await taker
            unknown = await tx.send("3999", sent_pages, speed=SPEED)
            if transport == "TCP":  # every message went over the connections
                assert rx._streams and tx._streams and rx.send_errors == tx.send_errors == 0
            return registered, sent, call, got, unknown
        finally:
            rx.close()
            tx.close()

    with kamailio.Kamailio(tmp_path) as proxy:
        registered, sent, call, got, unknown = asyncio.run(main(proxy.address))
    assert registered.expires > 0
    assert call.caller.startswith("sip:1000@") or "1000" in call.caller
    assert sent.ok and got.ok
    assert all(bytes(a.data) == bytes(b.data) and a.height == b.height
               for a, b in zip(got.pages, sent_pages, strict=True))
    assert len(got.pages) == 2
    # a number nobody registered: kamailio answers 404, a bad address never retried
    assert unknown.sip.name == "bad_address" and unknown.sip.status == 404


def test_kamailio_refuses_a_wrong_password(tmp_path: Path) -> None:
    if not kamailio.available():
        pytest.skip("kamailio not installed (apt install kamailio)")

    async def main(proxy):
        agent = SipAgent("127.0.0.1:0", user="1000", password="guess", registrar=proxy)
        await agent.start()
        try:
            await agent.register()
        finally:
            agent.close()

    with kamailio.Kamailio(tmp_path) as proxy:
        with pytest.raises(Exception, match="registration failed: refused by trunk"):
            asyncio.run(main(proxy.address))




# --- the sip device kind under the service, with real peers ------------------------------

@pytest.fixture
def sip_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed device kinds plus ``sip`` (until pyproject.toml registers it)."""
    from importlib.metadata import EntryPoint

    from fastfax.service import devices

    real = devices.entry_points
    ep = EntryPoint("sip", "fastfax.devices.sip:SipDevice", "fastfax.devices")

    def entry_points(group: str) -> list:
        found = list(real(group=group))
        if group == ep.group and not any(e.name == ep.name for e in found):
            found.append(ep)
        return found

    monkeypatch.setattr(devices, "entry_points", entry_points)


def service_spool(tmp_path: Path, devices: list[dict]) -> str:
    lines = ["[configuration]", "retries = 1", "retry_delay = 0.2", "branding = false"]
    for device in devices:
        lines.append("[[devices]]")
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in device.items()]
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "fastfax.toml").write_text("\n".join(lines) + "\n")
    return str(spool)


@pytest.mark.usefixtures("sip_kind", "no_thread_left")
def test_service_devices_register_and_call_through_kamailio(tmp_path: Path) -> None:
    if not kamailio.available():
        pytest.skip("kamailio not installed (apt install kamailio)")
    from service_helpers import job_page

    from fastfax import connect
    from fastfax.service.model import JobState, JobType

    (tmp_path / "pass").write_text("secret\n")
    with kamailio.Kamailio(tmp_path) as proxy:
        trunk = f"127.0.0.1:{proxy.port}"
        common = {"kind": "sip", "local": "127.0.0.1:0", "registrar": trunk, "proxy": trunk,
                  "password_file": str(tmp_path / "pass"), "speed": float(SPEED)}
        spool = service_spool(tmp_path, [
            {**common, "name": "out", "user": "1000", "transport": "TCP"},
            {**common, "name": "in", "user": "2000", "numbers": ["2000"], "channels": 2,
             "t38_mode": "on-request"}])
        fax = [job_page(n) for n in (3, 4)]
        with connect(spool=spool) as server:
            for port in server.ports():
                with server.port(port.id, modify=True) as handle:
                    handle.update(send=port.id == "out/1", receive=port.id != "out/1")
            time.sleep(0.5)  # both registered
            info = server.send(fax, to="2000").wait(timeout=60)
            assert info.state is JobState.COMPLETED, info
            unknown = server.send(fax, to="3999").wait(timeout=60)
            assert unknown.state is JobState.FAILED and "bad address" in unknown.cause
            assert "(404)" in unknown.cause  # kamailio's answer, never retried
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rx = [j for j in server.jobs() if j.type is JobType.RECEIVE]
                if rx and all(j.state.final for j in rx):
                    break
                time.sleep(0.05)
            assert len(rx) == 1 and server.job(rx[0].id).pages() == fax
            assert rx[0].number == "1000" and rx[0].port in ("in/1", "in/2")


@pytest.mark.usefixtures("sip_kind", "no_thread_left")
def test_service_job_to_a_busy_sipp_is_retried_then_fails(tmp_path: Path) -> None:
    from service_helpers import job_page

    from fastfax import connect
    from fastfax.service.model import JobState

    peer = Sipp("uas_busy", tmp_path, fill={"status": 486}, calls=2)
    try:
        spool = service_spool(tmp_path, [{"kind": "sip", "name": "out",
                                          "local": "127.0.0.1:0",
                                          "gateway": f"127.0.0.1:{peer.port}"}])
        with connect(spool=spool) as server:
            info = server.send([job_page(1)], to="200").wait(timeout=60)
        assert peer.wait(20) == 0, peer.errors()  # two INVITEs: the first try and a retry
    finally:
        peer.stop()
    assert info.state is JobState.RETRIES_EXCEEDED and info.cause == "busy (486)"
