"""fastfax.transport.t38 over real UDP on 127.0.0.1: our send_fax to our receive_fax, many
calls on one event loop, datagrams from strangers, and SpanDSP (tests/peers/t38peer: its
t38_terminal, and its t38_gateway fronting an audio fax machine) in both directions.

Calls run with ``speed`` > 1: both ends' line clocks (T.30 timers and pacing) run that
many times faster than wall time. The oracles are independent of the code under test: the
pages sent, and for SpanDSP the TIFF files it wrote or read, written and decoded by libtiff
(through Pillow).
"""

from __future__ import annotations

import asyncio
import random
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from fastfax import samples
from fastfax.errors import T38Error
from fastfax.page import Page
from fastfax.t30.result import Cause, SessionError
from fastfax.t30.station import create
from fastfax.t38.sdp import T38Params, format_media, negotiate, parse_media
from fastfax.t38.terminal import T38Terminal
from fastfax.t38.udptl import encode_datagram
from fastfax.transport.t38 import (
    T38Endpoint,
    T38Port,
    receive_fax,
    receive_fax_async,
    run_call,
    send_fax,
    send_fax_async,
)

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from t38peer import PeerUnavailable, T38Peer, build  # noqa: E402

SPEED = 20  # line clocks run 20 times faster than wall time (SpanDSP's --speed too)
LOCAL = ("127.0.0.1", 0)


def pages(count: int = 1, rows: int = 400, seed: int = 1) -> list[Page]:
    return [samples.text_page(resolution="fine", seed=seed + k, height=rows)
            for k in range(count)]


async def pair(tx_pages, *, tx=None, rx=None) -> tuple:
    """Our receive_fax_async on a fresh port, our send_fax_async calling it."""
    bound = asyncio.get_running_loop().create_future()
    receiving = asyncio.create_task(receive_fax_async(
        LOCAL, speed=SPEED, timeout=10, on_bound=bound.set_result, **(rx or {})))
    port = (await bound)[1]
    sent = await send_fax_async(("127.0.0.1", port), tx_pages, speed=SPEED, **(tx or {}))
    return sent, await receiving


@pytest.mark.parametrize(
    ("tx", "rx"),
    [
        ({"ecm": True}, {}),
        ({"ecm": False, "codings": ["mh"], "version": 3}, {"version": 3}),
        ({"error_correction": "fec", "version": 2}, {"error_correction": "fec", "version": 2}),
        ({"rate_management": "localTCF", "ecm": False}, {"rate_management": "localTCF"}),
    ],
    ids=["ecm", "mh-v3", "fec", "localtcf"],
)
def test_our_send_to_our_receive(tx, rx):
    sent_pages = pages(2, rows=300)
    sent, got = asyncio.run(pair(sent_pages, tx=tx, rx=rx))
    assert sent.ok and got.ok, (sent, got)
    assert got.pages == sent_pages
    assert got.ecm == tx.get("ecm", True)


def test_sync_calls_in_two_threads():
    sent_pages = pages(1, rows=200)
    bound = threading.Event()
    port: list[int] = []
    result: list = []

    def on_bound(address):
        port.append(address[1])
        bound.set()

    receiver = threading.Thread(target=lambda: result.append(
        receive_fax(LOCAL, speed=SPEED, timeout=10, on_bound=on_bound)))
    receiver.start()
    assert bound.wait(10)
    sent = send_fax(("127.0.0.1", port[0]), sent_pages, speed=SPEED, ident="SYNC TEST")
    receiver.join(30)
    assert sent.ok and result[0].ok
    assert result[0].pages == sent_pages and result[0].remote_id == "SYNC TEST"


def test_many_calls_on_one_loop():
    async def main():
        jobs = [pair(pages(1, rows=200, seed=k), tx={"ecm": k % 2 == 0}) for k in range(4)]
        return await asyncio.gather(*jobs)

    for k, (sent, got) in enumerate(asyncio.run(main())):
        assert sent.ok and got.ok
        assert got.pages == pages(1, rows=200, seed=k)


def test_closed_loops_are_not_kept():
    """What the transport keeps per event loop (its timer, its epoll set) lets a closed
    loop go once another loop places a call: sync calls, each on a loop of its own, do not
    pile up loops."""
    import gc
    import weakref

    loops = []

    async def one():
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return await pair(pages(1, rows=50))

    for _ in range(3):
        sent, got = asyncio.run(one())
        assert sent.ok and got.ok
    gc.collect()
    assert all(r() is None for r in loops[:-1])  # the last may wait for the next call


def test_strangers_are_ignored_and_counted():
    """Once a caller is answered, datagrams from any other address (valid UDPTL or not) are
    dropped; a datagram that is not UDPTL never starts a call."""

    async def main():
        loop = asyncio.get_running_loop()
        rx = T38Terminal(create(calling=False), speed=SPEED)
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: T38Endpoint(rx), local_addr=LOCAL)
        target = endpoint.local_address
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.sendto(b"not udptl", target)
        await asyncio.sleep(0.05)
        assert endpoint.rejected == 1 and not endpoint.answered.done()
        tx = T38Terminal(create(calling=True, pages=pages(1, rows=200)), speed=SPEED)
        calling = asyncio.create_task(run_call(tx, bind=LOCAL, peer=target))
        await endpoint.answered
        rng = random.Random(1)
        while not calling.done():
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
            stranger.sendto(junk, target)
            stranger.sendto(encode_datagram(7, b"\x00", []), target)  # well-formed: no-signal
            await asyncio.sleep(0.01)
        sent = await calling
        got = await endpoint.wait()
        endpoint.close()
        transport.close()
        stranger.close()
        return sent, got, endpoint

    sent, got, endpoint = asyncio.run(main())
    assert sent.ok and got.ok and got.pages == pages(1, rows=200)
    assert endpoint.foreign > 10


def test_strangers_on_run_call_sockets_never_reach_the_call():
    """run_call's own sockets (read natively): garbage before the call does not answer it,
    and once answered nothing from a stranger reaches either terminal (well-formed UDPTL
    of a foreign numbering included, which would show in their counters)."""

    async def main():
        bound = asyncio.get_running_loop().create_future()
        rx = T38Terminal(create(calling=False), speed=SPEED)
        receiving = asyncio.create_task(
            run_call(rx, bind=LOCAL, wait_for_call=10, on_bound=bound.set_result))
        target = await bound
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.sendto(b"not udptl", target)
        await asyncio.sleep(0.05)
        assert not receiving.done() and rx.stats.datagrams_in == 0
        tx = T38Terminal(create(calling=True, pages=pages(1, rows=200)), speed=SPEED)
        calling = asyncio.create_task(run_call(tx, bind=LOCAL, peer=target))
        while not rx.started:  # answered (a well-formed stranger first would be answered)
            await asyncio.sleep(0.001)
        rng = random.Random(2)
        while not calling.done():
            stranger.sendto(bytes(rng.randrange(256) for _ in range(30)), target)
            stranger.sendto(encode_datagram(40000, b"\x00", []), target)
            await asyncio.sleep(0.005)
        stranger.close()
        return await calling, await receiving, tx, rx

    sent, got, tx, rx = asyncio.run(main())
    assert sent.ok and got.ok and got.pages == pages(1, rows=200)
    for terminal, peer in ((rx, tx), (tx, rx)):
        stats = terminal.stats
        assert stats.ifp_malformed == 0 and stats.udptl.malformed == 0
        assert stats.udptl.resyncs == 0 and stats.udptl.lost == 0
        assert stats.datagrams_in <= peer.stats.datagrams_out


def test_datagrams_queued_by_the_transport_keep_their_order():
    """run_call's socket transport: what it has queued (as when the kernel's buffer was
    full) goes out before anything the call sends after it, and the native sends resume
    once the queue is written."""
    from fastfax.transport._t38io import CallSocket

    from fastfax.transport.t38 import _bound_udp, _SocketTransport

    async def main():
        far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        far.bind(LOCAL)
        far.setblocking(False)
        terminal = T38Terminal(create(calling=True, pages=pages(1, rows=50)), speed=SPEED)
        sock = _bound_udp(LOCAL)
        endpoint = T38Endpoint(terminal, peer=far.getsockname(), sock=sock)
        reader = CallSocket(sock.fileno(), sock.family, endpoint)
        transport = _SocketTransport(sock, endpoint, reader)
        endpoint.connection_made(transport)  # starts the call: no-signal x 3 go out
        transport.sendto(b"queued", far.getsockname())
        assert transport.call_socket.queued == 1 and transport.get_write_buffer_size() == 6
        endpoint._send([b"after"])  # must not overtake the queued one
        assert transport.call_socket.queued == 2
        await asyncio.sleep(0.05)  # the socket is writable: the queue is written
        assert transport.call_socket.queued == 0 and transport.get_write_buffer_size() == 0
        endpoint._send([b"native"])
        got = []
        while True:
            try:
                got.append(far.recv(2048))
            except BlockingIOError:
                break
        endpoint.close()
        far.close()
        return got

    got = asyncio.run(main())
    mine = [d for d in got if d in (b"queued", b"after", b"native")]
    assert mine == [b"queued", b"after", b"native"]
    assert got.index(b"queued") >= 3  # after the call's opening no-signal copies


def test_a_call_over_ipv6():
    """run_call's native socket path with IPv6 addresses (4-tuples from the socket)."""
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")

    async def main():
        bound = asyncio.get_running_loop().create_future()
        receiving = asyncio.create_task(receive_fax_async(
            ("::1", 0), speed=SPEED, timeout=10, on_bound=bound.set_result))
        port = (await bound)[1]
        sent = await send_fax_async(("::1", port), pages(1, rows=200), bind=("::1", 0),
                                    speed=SPEED)
        return sent, await receiving

    sent, got = asyncio.run(main())
    assert sent.ok and got.ok and got.pages == pages(1, rows=200)


def test_calls_sharing_one_port():
    """Three calls on one T38Port: two answering (each takes the next unknown peer), one
    calling out from it; strangers are counted at the port, garbage never answers."""

    async def main():
        port = await T38Port.open(LOCAL)
        target = port.local_address
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.sendto(encode_datagram(0, b"\x00", []), target)  # nobody waits yet
        await asyncio.sleep(0.05)
        assert port.foreign == 1
        answering = [
            asyncio.create_task(run_call(
                T38Terminal(create(calling=False), speed=SPEED), port=port, wait_for_call=10))
            for _ in range(2)
        ]  # fmt: skip
        await asyncio.sleep(0.05)
        assert port.calls == 2
        stranger.sendto(b"not udptl", target)  # calls wait, but this is no call
        await asyncio.sleep(0.05)
        assert port.rejected == 1 and port.calls == 2
        # A receive_fax elsewhere, called from the shared port.
        bound = asyncio.get_running_loop().create_future()
        far_rx = asyncio.create_task(receive_fax_async(
            LOCAL, speed=SPEED, timeout=10, on_bound=bound.set_result))
        far_address = await bound
        out = run_call(T38Terminal(create(calling=True, pages=pages(1, rows=120, seed=9)),
                                   speed=SPEED), port=port, peer=("127.0.0.1", far_address[1]))
        senders = [
            send_fax_async(target, pages(1, rows=150 + 20 * k), speed=SPEED, ecm=k == 0)
            for k in range(2)
        ]
        results = await asyncio.gather(out, *senders, *answering, far_rx)
        assert port.calls == 0
        port.close()
        stranger.close()
        return results

    out, *rest = asyncio.run(main())
    sent, got = rest[:2], rest[2:4]
    far_got = rest[4]
    assert out.ok and far_got.ok and far_got.pages == pages(1, rows=120, seed=9)
    assert all(r.ok for r in sent + got)
    # Which answering call took which caller is the order their first datagrams came in.
    by_height = sorted((r.pages for r in got), key=lambda ps: ps[0].height)
    assert by_height == [pages(1, rows=150), pages(1, rows=170)]


def test_no_call_within_the_timeout():
    got = asyncio.run(receive_fax_async(LOCAL, timeout=0.2))
    assert got.cause is Cause.NO_CALL and not got.sending


def test_a_peer_that_never_answers_ends_on_t1():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(LOCAL)
    try:
        sent = send_fax(silent.getsockname(), pages(1, rows=50), speed=100)
    finally:
        silent.close()
    assert sent.cause is Cause.T1_EXPIRED


def test_timeout_cancels_the_call():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(LOCAL)
    try:
        sent = send_fax(silent.getsockname(), pages(1, rows=50), timeout=0.3, speed=10)
    finally:
        silent.close()
    assert sent.cause is Cause.CANCELLED


@pytest.mark.parametrize(
    ("peer", "kw", "error"),
    [
        (("127.0.0.1", 0), {}, T38Error),
        (("127.0.0.1", "4000"), {}, T38Error),
        (("127.0.0.1", 4000), {"version": 7}, T38Error),
        (("127.0.0.1", 4000), {"error_correction": "parity"}, T38Error),
        (("127.0.0.1", 4000), {"speed": -1}, T38Error),
        (("127.0.0.1", 4000), {"max_rate": 100}, SessionError),
    ],
)
def test_bad_arguments_raise_before_sending(peer, kw, error):
    with pytest.raises(error):
        send_fax(peer, pages(1, rows=20), **kw)
    with pytest.raises(SessionError):
        send_fax(("127.0.0.1", 4000), [])


# ---------------------------------------------------------------------------------------
# SpanDSP


@pytest.fixture(scope="module")
def peer_binary() -> Path:
    try:
        return build()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def arrays(path: Path) -> list[np.ndarray]:
    """Every page of a TIFF, decoded by libtiff (Pillow): True = black."""
    with Image.open(path) as im:
        return [np.array(p.convert("1")) == 0 for p in ImageSequence.Iterator(im)]


def write_tiff(path: Path, page_list: list[Page]) -> None:
    """A G4 TIFF of the pages, written by libtiff (Pillow)."""
    images = [Image.fromarray(~p.to_array()) for p in page_list]
    images[0].save(path, compression="group4", dpi=(204, 196), save_all=True,
                   append_images=images[1:])


WE_SEND = [
    pytest.param({}, {}, id="ecm-mmr-v0"),
    pytest.param({"ecm": False, "compressions": ["mh"]}, {"ecm": False}, id="mh-v0"),
    pytest.param({"version": 3, "ec": "fec"}, {"version": 3, "error_correction": "fec"},
                 id="ecm-v3-fec"),
    pytest.param({"ecm": False, "version": 3}, {"ecm": False, "version": 3}, id="mr-v3"),
    pytest.param({"gateway": True}, {}, id="gateway-ecm"),
    pytest.param({"gateway": True, "ecm": False, "version": 3}, {"ecm": False, "version": 3},
                 id="gateway-mr-v3"),
    pytest.param({"loss": 0.1, "seed": 3}, {}, id="ecm-peer-loses-10%"),
]


@pytest.mark.parametrize(("peer_kw", "kw"), WE_SEND)
def test_we_send_to_spandsp(peer_binary, tmp_path, peer_kw, kw):
    sent_pages = pages(2, rows=300, seed=20)
    received = tmp_path / "rx.tif"
    with T38Peer(receive=received, speed=SPEED, timeout=60, log_path=tmp_path / "peer.log",
                 **peer_kw) as peer:
        sent = send_fax(peer.address, sent_pages, speed=SPEED, ident="FASTFAX", **kw)
        result = peer.wait(60)
    assert sent.ok, (sent, peer.log()[-3000:])
    assert result["ok"] and result["pages"] == 2
    assert result["remote_ident"].strip() == "FASTFAX" and sent.remote_id == "T38PEER"
    assert result["ecm"] == kw.get("ecm", True)
    got = arrays(received)
    assert [g.shape for g in got] == [(300, 1728)] * 2
    assert all(np.array_equal(g, p.to_array()) for g, p in zip(got, sent_pages, strict=True))


IT_SENDS = [
    pytest.param({}, {}, id="ecm-v0"),
    pytest.param({"ecm": False, "compressions": ["mh"]}, {}, id="mh-v0"),
    pytest.param({"version": 3, "ec": "fec"}, {"version": 3, "error_correction": "fec"},
                 id="ecm-v3-fec"),
    pytest.param({"gateway": True, "version": 3}, {"version": 3}, id="gateway-ecm-v3"),
    pytest.param({"gateway": True, "ecm": False}, {}, id="gateway-mr"),
    pytest.param({"loss": 0.1, "reorder": 0.05, "seed": 4}, {}, id="ecm-10%-loss-reorder"),
]


@pytest.mark.parametrize(("peer_kw", "kw"), IT_SENDS)
def test_spandsp_sends_to_us(peer_binary, tmp_path, peer_kw, kw):
    sent_pages = pages(2, rows=300, seed=30)
    tiff = tmp_path / "tx.tif"
    write_tiff(tiff, sent_pages)
    want = arrays(tiff)

    async def main():
        bound = asyncio.get_running_loop().create_future()
        receiving = asyncio.create_task(receive_fax_async(
            LOCAL, speed=SPEED, timeout=20, ident="FASTFAX", on_bound=bound.set_result, **kw))
        port = (await bound)[1]
        with T38Peer(send=tiff, calling=True, remote=("127.0.0.1", port), speed=SPEED,
                     timeout=60, log_path=tmp_path / "peer.log", **peer_kw) as peer:
            got = await receiving
            result = await asyncio.to_thread(peer.wait, 60)
            return got, result, peer.log()

    got, result, log = asyncio.run(main())
    assert got.ok, (got, log[-3000:])
    assert result["ok"] and result["pages"] == 2 and result["remote_ident"].strip() == "FASTFAX"
    assert got.ecm == peer_kw.get("ecm", True) and got.remote_id == "T38PEER"
    assert [p.to_array().shape for p in got.pages] == [w.shape for w in want]
    assert all(np.array_equal(p.to_array(), w) for p, w in zip(got.pages, want, strict=True))


class LossyRelay(asyncio.DatagramProtocol):
    """A UDP relay between us (the first sender) and a peer that drops a seeded share of
    our datagrams (the peer's come through untouched)."""

    def __init__(self, peer, loss: float, seed: int):
        self.peer, self.loss, self.rng = peer, loss, random.Random(seed)
        self.us = None
        self.dropped = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if addr[:2] == self.peer[:2]:
            if self.us is not None:
                self.transport.sendto(data, self.us)
            return
        self.us = addr
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.transport.sendto(data, self.peer)


def test_we_send_to_spandsp_through_a_lossy_relay(peer_binary, tmp_path):
    """10 % of our datagrams lost on the way: redundancy 3 carries the ECM page through."""
    sent_pages = pages(1, rows=400, seed=40)
    received = tmp_path / "rx.tif"

    async def main(peer):
        loop = asyncio.get_running_loop()
        relay_transport, relay = await loop.create_datagram_endpoint(
            lambda: LossyRelay(peer.address, 0.1, 5), local_addr=LOCAL)
        try:
            address = relay_transport.get_extra_info("sockname")
            sent = await send_fax_async(address, sent_pages, speed=SPEED)
        finally:
            relay_transport.close()
        return sent, relay.dropped

    with T38Peer(receive=received, speed=SPEED, timeout=60,
                 log_path=tmp_path / "peer.log") as peer:
        sent, dropped = asyncio.run(main(peer))
        result = peer.wait(60)
    assert dropped > 10
    assert sent.ok and result["ok"], peer.log()[-3000:]
    assert result["udptl"]["recovered"] > 0
    assert np.array_equal(arrays(received)[0], sent_pages[0].to_array())


def test_a_call_with_parameters_negotiated_in_sdp():
    """The caller offers in SDP, the answerer negotiates; both terminals run on the answer."""
    offer = parse_media(format_media(4000, T38Params(version=3, error_correction="fec",
                                                     max_datagram=300)))
    answer = negotiate(offer.params, T38Params(version=2, error_correction="fec"),
                       error_corrections=offer.error_corrections)
    assert answer.version == 2 and answer.error_correction == "fec"
    sent_pages = pages(1, rows=200, seed=50)

    async def main():
        rx = T38Terminal(create(calling=False), params=answer, speed=SPEED)
        tx = T38Terminal(create(calling=True, pages=sent_pages), params=answer, speed=SPEED)
        bound = asyncio.get_running_loop().create_future()
        receiving = asyncio.create_task(run_call(rx, bind=LOCAL, on_bound=bound.set_result))
        sent = await run_call(tx, bind=LOCAL, peer=(await bound)[:2])
        return sent, await receiving, tx, rx

    sent, got, tx, rx = asyncio.run(main())
    assert sent.ok and got.ok and got.pages == sent_pages
    assert tx.stats.udptl.malformed == rx.stats.udptl.malformed == 0


class _StuckClock:
    """A terminal whose deadline stays due when polled (as a line clock's rounding can
    leave it) until it has been polled ``polls`` times, then done; ``seen``: what
    ``mark()`` said at each poll."""

    started = True

    def __init__(self, polls: int, due: float, mark) -> None:  # noqa: ANN001
        self.polls, self.due, self.mark, self.seen = polls, due, mark, []
        self.result = "over"

    @property
    def done(self) -> bool:
        return len(self.seen) >= self.polls

    @property
    def next_deadline(self) -> float:
        return self.due

    def poll(self, now: float) -> list:
        self.seen.append(self.mark())
        return []


def test_a_deadline_that_stays_due_does_not_hold_the_loop():
    """The shared timer polls an endpoint whose deadline stays due once a loop pass:
    the loop runs between the polls (before, one timer callback polled it without end,
    holding the interpreter: a test hung for ten minutes)."""
    passes = [0]

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()

        def count() -> None:  # one a loop pass
            passes[0] += 1
            loop.call_soon(count)

        count()
        terminal = _StuckClock(50, loop.time(), lambda: passes[0])
        endpoint = T38Endpoint(terminal, peer=("127.0.0.1", 9))  # type: ignore[arg-type]
        endpoint._service()
        assert await asyncio.wait_for(endpoint.wait(), 10) == "over"
        return terminal.seen

    seen = asyncio.run(main())
    assert len(seen) == 50 and len(set(seen)) >= 25  # (one pass polled them all before)
