"""Fax over IP: T.38 calls over UDP with asyncio, around the sans-I/O
:class:`fastfax.t38.terminal.T38Terminal`.

:class:`T38Endpoint` is the thin adapter: an asyncio datagram protocol that owns one UDP
socket for one call, feeds the socket's datagrams to the terminal, sends what the terminal
returns and wakes up at its deadlines (on the loop's monotonic clock). It is the building
block for many calls on one event loop: each call gets its own socket (its own media port,
as SDP gives each T.38 stream), so nothing is demultiplexed and one call's peer can never
reach another call; run them side by side with :func:`run_call` under ``asyncio.gather``
or a ``TaskGroup``.

**Many calls, one loop.** Per call the work is a few datagrams every 30 ms, so what the
event loop does per datagram decides how many calls a core carries. Two things keep it small:

- *One timer for all calls of a loop* (:class:`_Deadlines`): the endpoints' next deadlines
  are kept in one heap of plain tuples under a single asyncio timer; when it fires, every
  endpoint due within the next millisecond (:data:`EARLY_S`) is served in the same pass, its
  terminal polled at its own deadline. Per packet this replaces an asyncio ``TimerHandle``
  (made, compared in asyncio's heap, cancelled) by a tuple in our heap.
- *Sends go straight to the socket*: the endpoint makes its own non-blocking socket and
  calls its ``sendto`` while the transport has nothing queued (asyncio's own ``sendto`` is
  the fallback when the kernel's buffer is full).

- *One socket for many calls* (:class:`T38Port`, optional): calls whose far ends have
  distinct addresses can share one local UDP port (one media port in every call's SDP),
  the port demultiplexing by the peer's address. Each time the loop finds the socket
  readable the port reads everything queued (up to :data:`DRAIN`) in one pass: one
  selector event and callback per batch of datagrams instead of per datagram, for one
  extra ``recvfrom`` (the one that finds the queue empty) per batch. In
  ``bench/test_t38_gateway_bench.py`` (1,000 calls, receivers on one port or on a socket
  each) the CPU per page came out the same within the run-to-run spread: at 30 ms per
  packet per call a batch is a few datagrams. A call on its own socket (:func:`run_call`
  without ``port``) is one event per datagram, and keeps the one-port-per-SDP-stream model.

- With a ``peer`` the endpoint talks to that address from the start (the calling side).
  Without one it waits, its terminal not started, for the first datagram that is well-formed
  UDPTL, answers its sender and starts the terminal then (the answering side).
- Datagrams from any other address are dropped and counted (:attr:`T38Endpoint.foreign`);
  malformed datagrams and IFP packets are counted by the terminal and dropped. Nothing a
  peer sends raises out of the loop, and what is kept per call is bounded.

:func:`send_fax` and :func:`receive_fax` place or take one call and return the
:class:`~fastfax.t30.result.Result` (``.pages`` holds the pages received); they run their
own event loop, like :func:`fastfax.class1.send_fax`. :func:`send_fax_async` and
:func:`receive_fax_async` are the same inside a running loop.

``speed`` makes the terminal's line clock run that many times faster than the loop's
clock: signals are paced and T.30 timers run on the faster clock, so a call takes
1/``speed`` of its wall time. Both ends must run at the same speed (SpanDSP's test peer
``tests/peers/t38peer`` has ``--speed``); against real equipment keep 1.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import os
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ..errors import T38Error
from ..page import Page
from ..t30.events import Note
from ..t30.result import Cause, Result
from ..t30.station import create, load_pages
from ..t38.sdp import T38Params
from ..t38.terminal import T38Terminal
from ..t38.udptl import decode_datagram

__all__ = [
    "T38Endpoint",
    "T38Port",
    "small_reads",
    "run_call",
    "send_fax",
    "send_fax_async",
    "receive_fax",
    "receive_fax_async",
]

Address = tuple[str, int]

#: How early (loop seconds) an endpoint may be served when the shared timer fires for
#: another one: deadlines this close together are served in one pass.
EARLY_S = 0.001
#: The timer's buckets per second (one bucket spans EARLY_S).
TICKS_PER_S = 1000
#: Most datagrams a :class:`T38Port` reads in one pass when its socket is readable (the
#: rest wait for the loop's next pass, so other work is not held up).
DRAIN = 256
#: Largest datagram read (octets; UDP's own limit), see :func:`small_reads`.
MAX_READ = 65535
#: Seconds after a call on a :class:`T38Port` ended during which its peer's datagrams are
#: dropped (counted as :attr:`T38Port.stale`) rather than offered to a waiting call.
LINGER_S = 10.0


def small_reads(transport: asyncio.BaseTransport) -> None:
    """Make an asyncio datagram transport read into a buffer of :data:`MAX_READ` octets.

    asyncio's selector transports read each datagram with ``recvfrom(max_size)``, their
    ``max_size`` a class attribute of 256 KiB: a buffer that size is allocated and shrunk
    for every datagram. What that costs depends on the state of the allocator's heap: in a
    send/receive loop on 127.0.0.1 (fastfax imported) it was 26 us a datagram against 6 us
    with 64 KiB; in the 1,000-call gateway bench it made no difference that showed. UDP
    carries at most 65535 octets, so nothing is cut short. Transports without the
    attribute (uvloop's) are left as they are."""
    if getattr(transport, "max_size", 0) > MAX_READ:
        transport.max_size = MAX_READ  # type: ignore[attr-defined]


class _Deadlines:
    """The next deadlines of every :class:`T38Endpoint` on one event loop, under one asyncio
    timer.

    Deadlines are kept in buckets of one tick (:data:`TICKS_PER_S`; the bucket of a
    deadline ``when`` is ``ceil(when * TICKS_PER_S)``) and a heap of the ticks that have a
    bucket, so a deadline costs a list append (and a heap push only for a tick with no
    bucket yet), not a push into a heap of every endpoint. The timer is set for the
    earliest deadline of the first bucket; when it fires, every bucket whose deadlines are
    all within :data:`EARLY_S` of now is served whole, each endpoint polled at its own
    deadline. Entries are ``(when, endpoint)``; one whose ``when`` is no longer the
    endpoint's ``_timer_at`` is stale and skipped (and purged when they pile up)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[int, list[tuple[float, T38Endpoint]]] = {}
        self._first: dict[int, float] = {}  # the earliest deadline of each bucket
        self._ticks: list[int] = []
        self._handle: asyncio.TimerHandle | None = None
        self._armed = math.inf  # the tick the timer is set for
        self._firing = False
        self._entries = 0
        self._purge_at = 4096

    def set(self, endpoint: T38Endpoint, when: float) -> None:
        tick = math.ceil(when * TICKS_PER_S)
        bucket = self._buckets.get(tick)
        if bucket is None:
            self._buckets[tick] = [(when, endpoint)]
            self._first[tick] = when
            heapq.heappush(self._ticks, tick)
            if tick < self._armed and not self._firing:
                self._arm(tick)
        else:
            bucket.append((when, endpoint))
            if when < self._first[tick]:
                self._first[tick] = when
                if tick == self._armed and not self._firing:
                    self._arm(tick)
        self._entries += 1
        if self._entries > self._purge_at:
            self._purge()

    def _purge(self) -> None:
        buckets: dict[int, list[tuple[float, T38Endpoint]]] = {}
        for tick, bucket in self._buckets.items():
            live = [e for e in bucket if e[1]._timer_at == e[0]]
            if live:
                buckets[tick] = live
        self._buckets = buckets
        self._first = {tick: min(e[0] for e in b) for tick, b in buckets.items()}
        self._ticks = list(buckets)
        heapq.heapify(self._ticks)
        self._entries = sum(len(b) for b in buckets.values())
        self._purge_at = max(4096, 4 * self._entries)
        if not self._firing:
            self._armed = math.inf
            if self._ticks:
                self._arm(self._ticks[0])

    def _arm(self, tick: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = tick
        self._handle = self._loop.call_at(self._first[tick], self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed = math.inf
        self._firing = True
        ticks, buckets = self._ticks, self._buckets
        pop = heapq.heappop
        now = self._loop.time()
        # Buckets whose every deadline is at most one tick from now (with a hair of slack
        # for float seconds: the timer was set for the first bucket's earliest deadline).
        last = now * TICKS_PER_S + 1.000001
        try:
            while ticks and ticks[0] <= last:
                tick = pop(ticks)
                bucket = buckets.pop(tick)
                del self._first[tick]
                self._entries -= len(bucket)
                for when, endpoint in bucket:
                    if endpoint._timer_at == when:
                        endpoint._timer_at = None
                        endpoint._wake(when if when > now else now)
                ticks, buckets = self._ticks, self._buckets  # a purge may have made new ones
        finally:
            self._firing = False
            if self._ticks:
                self._arm(self._ticks[0])


_DEADLINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary()
)


def _deadlines(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    deadlines = _DEADLINES.get(loop)
    if deadlines is None:
        deadlines = _DEADLINES[loop] = _Deadlines(loop)
    return deadlines


class T38Endpoint(asyncio.DatagramProtocol):
    """One T.38 call on one UDP socket (see the module notes). Make it with
    ``loop.create_datagram_endpoint(lambda: T38Endpoint(terminal, peer=...), ...)`` or let
    :func:`run_call` do it; await :meth:`wait` for the result.

    ``sock``: the non-blocking socket the transport is made on, when the caller made it
    (:func:`run_call` does): datagrams are then sent on it directly while the transport
    has nothing queued.

    Counters: :attr:`foreign` (datagrams from an address other than the peer's),
    :attr:`rejected` (datagrams that were not UDPTL while no peer was known),
    :attr:`send_errors` (errors the socket reported, e.g. ICMP port unreachable);
    the terminal's own are ``endpoint.terminal.stats``.
    """

    def __init__(
        self,
        terminal: T38Terminal,
        *,
        peer: Address | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.terminal = terminal
        self.peer = peer
        self.foreign = 0
        self.rejected = 0
        self.send_errors = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._deadlines = _deadlines(self._loop)
        self._timer_at: float | None = None
        self._result: asyncio.Future[Result] = self._loop.create_future()
        self.answered: asyncio.Future[Address] = self._loop.create_future()

    # -- asyncio protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        small_reads(transport)
        if self.peer is not None:
            self._begin()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self._result.done():
            return
        if self.peer is None:
            try:
                decode_datagram(data)
            except T38Error:
                self.rejected += 1
                return
            self.peer = (addr[0], addr[1])
            self._begin()
        elif addr != self.peer and (addr[0], addr[1]) != self.peer:  # IPv6: 4-tuples
            self.foreign += 1
            return
        now = self._loop.time()
        terminal = self.terminal
        terminal.datagram_received(data, now)
        if not terminal.settled or self._timer_at is None:
            self._service(now)

    def error_received(self, exc: Exception) -> None:
        self.send_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._result.done():
            if self.terminal.started and not self.terminal.done:
                self.terminal.line_dropped(self._loop.time())
            self._finish()

    # -- the call -------------------------------------------------------------------------
    @property
    def local_address(self) -> Any:
        """The socket's own address (host, port[, ...])."""
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")

    async def wait(self) -> Result:
        """The call's result, once the terminal ended it."""
        return await asyncio.shield(self._result)

    def cancel(self) -> None:
        """End the call from our side: DCN, then the result (``Cause.CANCELLED``)."""
        if self.terminal.started and not self._result.done():
            self.terminal.cancel(self._loop.time())
            self._service()

    def close(self) -> None:
        """Close the socket (the call, if still running, ends as dropped)."""
        self._timer_at = None
        if self._transport is not None:
            self._transport.close()

    def _begin(self) -> None:
        if not self.answered.done():
            self.answered.set_result(self.peer)  # type: ignore[arg-type]
        now = self._loop.time()
        self.terminal.start(now)
        self._service(now)

    def _service(self, now: float | None = None) -> None:
        terminal = self.terminal
        out = terminal.poll(self._loop.time() if now is None else now)
        if out:
            self._send(out)
        if terminal.done:
            self._finish()
            return
        when = terminal.next_deadline
        # Only an earlier deadline is armed: one that moved later (the far end's signal
        # idle limit moves with every datagram) is found when the armed one fires, polls
        # nothing and arms the real one.
        if when is not None and (self._timer_at is None or when < self._timer_at):
            self._timer_at = when
            self._deadlines.set(self, when)

    def _send(self, datagrams: list[bytes]) -> None:
        transport, sock, peer = self._transport, self._sock, self.peer
        if transport is None or transport.is_closing():
            return
        if sock is None or transport.get_write_buffer_size():
            for datagram in datagrams:  # asyncio has some queued: keep the order
                transport.sendto(datagram, peer)
            return
        send = sock.sendto
        for k, datagram in enumerate(datagrams):
            try:
                send(datagram, peer)
            except (BlockingIOError, InterruptedError):
                for rest in datagrams[k:]:  # the kernel's buffer is full: asyncio queues
                    transport.sendto(rest, peer)
                return
            except OSError:
                self.send_errors += 1

    def _wake(self, now: float) -> None:
        if not self._result.done():
            self._service(now)

    def _finish(self) -> None:
        self._timer_at = None
        if not self._result.done():
            self._result.set_result(self.terminal.result)


class _PortTransport:
    """What a :class:`T38Endpoint` on a :class:`T38Port` sees as its transport: the port's
    socket, shared; ``close`` takes the call off the port only (and, as a closed socket
    would, tells the endpoint its connection was lost)."""

    def __init__(self, port: T38Port, endpoint: T38Endpoint) -> None:
        self._port = port
        self._endpoint = endpoint
        self._closed = False

    def sendto(self, data: bytes, addr: Any = None) -> None:
        transport = self._port.transport
        if not self._closed and transport is not None:
            transport.sendto(data, addr)

    def get_write_buffer_size(self) -> int:
        transport = self._port.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def is_closing(self) -> bool:
        transport = self._port.transport
        return self._closed or transport is None or transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self._port.transport
        return default if transport is None else transport.get_extra_info(name, default)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._port._detach(self._endpoint)
        self._endpoint._loop.call_soon(self._endpoint.connection_lost, None)


def _bound_udp(bind: Address) -> socket.socket:
    """A non-blocking UDP socket bound to ``bind`` (an IP address and port; port 0: any;
    IPv6 when the address has a colon)."""
    family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(bind)
    except BaseException:
        sock.close()
        raise
    return sock


class T38Port(asyncio.DatagramProtocol):
    """One local UDP socket carrying many calls, demultiplexed by the far end's address
    (see the module notes). Open it with :meth:`open`, run calls on it with
    ``run_call(terminal, port=port, ...)`` and :meth:`close` it when done.

    A datagram from the peer of a call on the port goes to that call. One from an unknown
    address is offered to the longest-waiting call that has no peer yet (an answering
    call, ``peer=None``), if it is well-formed UDPTL: that call answers it. Otherwise it is
    dropped and counted: :attr:`foreign` (no call waits), :attr:`rejected` (not UDPTL),
    :attr:`stale` (from the peer of a call that ended less than :data:`LINGER_S` ago).
    Errors the socket reports (e.g. ICMP port unreachable) are counted in
    :attr:`send_errors` of the port, not of a call: the socket does not say whose they are.
    Two calls on one port cannot have the same peer address.
    """

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.foreign = 0
        self.rejected = 0
        self.stale = 0
        self.send_errors = 0
        self._sock: socket.socket | None = None
        self._calls: dict[Any, T38Endpoint] = {}
        self._waiting: list[T38Endpoint] = []
        self._ended: dict[Any, float] = {}
        self._view: memoryview | None = None

    @classmethod
    async def open(cls, bind: Address = ("0.0.0.0", 0)) -> T38Port:
        """Bind a UDP socket to ``bind`` (an IP address and port; port 0: any) and return
        the port on it (in the running event loop)."""
        loop = asyncio.get_running_loop()
        sock = _bound_udp(bind)
        try:
            port = cls()
            port._sock = sock
            await loop.create_datagram_endpoint(lambda: port, sock=sock)
        except BaseException:
            sock.close()
            raise
        return port

    @property
    def local_address(self) -> Any:
        """The socket's own address (host, port[, ...])."""
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")

    @property
    def calls(self) -> int:
        """Calls on the port now (with a peer, or waiting for one)."""
        return len(self._calls) + len(self._waiting)

    def close(self) -> None:
        """Close the socket; calls still on it end as dropped."""
        if self.transport is not None:
            self.transport.close()

    # -- asyncio protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        small_reads(transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._dispatch(data, addr)
        # The loop read one datagram; take what else is queued now, in this pass.
        sock = self._sock
        if sock is None:
            return
        view = self._view
        if view is None:
            view = self._view = memoryview(bytearray(MAX_READ))
        receive = sock.recvfrom_into
        dispatch = self._dispatch
        for _ in range(DRAIN):
            try:
                n, addr = receive(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_received(exc)
                return
            dispatch(bytes(view[:n]), addr)

    def error_received(self, exc: Exception) -> None:
        self.send_errors += 1  # the socket does not say which call's peer it was

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for endpoint in [*self._calls.values(), *self._waiting]:
            endpoint.connection_lost(exc)
        self._calls.clear()
        self._waiting.clear()

    # -- calls ----------------------------------------------------------------------------
    def _dispatch(self, data: bytes, addr: Any) -> None:
        endpoint = self._calls.get(addr)
        if endpoint is not None:
            endpoint.datagram_received(data, addr)
            return
        key = (addr[0], addr[1])  # IPv6 addresses come as 4-tuples
        endpoint = self._calls.get(key)
        if endpoint is not None:
            endpoint.datagram_received(data, addr)
            return
        ended = self._ended.get(key)
        if ended is not None:
            if time.monotonic() - ended < LINGER_S:
                self.stale += 1
                return
            del self._ended[key]
        if not self._waiting:
            self.foreign += 1
            return
        try:
            decode_datagram(data)
        except T38Error:
            self.rejected += 1
            return
        endpoint = self._waiting.pop(0)
        self._calls[key] = endpoint
        endpoint.datagram_received(data, addr)

    def _attach(self, endpoint: T38Endpoint) -> None:
        """Put ``endpoint``'s call on the port and start it (with its peer known) or let it
        wait for the first unknown peer."""
        if self.transport is None or self._sock is None:
            raise T38Error("the T.38 port is closed")
        peer = endpoint.peer
        if peer is not None:
            key = (peer[0], peer[1])
            if key in self._calls:
                raise T38Error(f"the T.38 port already carries a call with {key}")
            self._calls[key] = endpoint
            self._ended.pop(key, None)
        else:
            self._waiting.append(endpoint)
        endpoint._sock = self._sock
        endpoint.connection_made(_PortTransport(self, endpoint))  # type: ignore[arg-type]

    def _detach(self, endpoint: T38Endpoint) -> None:
        if endpoint in self._waiting:
            self._waiting.remove(endpoint)
        peer = endpoint.peer
        if peer is not None:
            key = (peer[0], peer[1])
            if self._calls.get(key) is endpoint:
                del self._calls[key]
                now = time.monotonic()
                if len(self._ended) > 4 * len(self._calls) + 1024:
                    self._ended = {k: t for k, t in self._ended.items() if now - t < LINGER_S}
                self._ended[key] = now


async def run_call(
    terminal: T38Terminal,
    *,
    bind: Address = ("0.0.0.0", 0),
    peer: Address | None = None,
    wait_for_call: float | None = None,
    timeout: float | None = None,
    on_bound: Callable[[Any], object] | None = None,
    port: T38Port | None = None,
) -> Result:
    """Run one call: bind a UDP socket to ``bind`` (or, with ``port``, run the call on that
    shared :class:`T38Port` and bind nothing), carry ``terminal``'s call to ``peer`` (an IP
    address and port), or without one answer the first peer that sends (waiting at most
    ``wait_for_call`` seconds, None: for ever; then the result's cause is
    ``Cause.NO_CALL``). ``timeout``: wall seconds after which a call still running is
    cancelled (DCN, ``Cause.CANCELLED``); None: only T.30's timers and the terminal's
    ``max_seconds`` end it. ``on_bound`` is called with the socket's address once bound
    (for port 0). The socket is closed on return (a port's: the call leaves it), also when
    the task is cancelled."""
    if terminal.started:
        raise T38Error("run_call needs a terminal that has not been started")
    if port is not None:
        endpoint = T38Endpoint(terminal, peer=peer)
        port._attach(endpoint)
        return await _carry(endpoint, terminal, peer, wait_for_call, timeout, on_bound)
    loop = asyncio.get_running_loop()
    sock = _bound_udp(bind)
    try:
        _, endpoint = await loop.create_datagram_endpoint(
            lambda: T38Endpoint(terminal, peer=peer, sock=sock), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    return await _carry(endpoint, terminal, peer, wait_for_call, timeout, on_bound)


async def _carry(
    endpoint: T38Endpoint,
    terminal: T38Terminal,
    peer: Address | None,
    wait_for_call: float | None,
    timeout: float | None,
    on_bound: Callable[[Any], object] | None,
) -> Result:
    """The rest of :func:`run_call` once ``endpoint`` is on its socket."""
    try:
        if on_bound is not None:
            on_bound(endpoint.local_address)
        if peer is None and wait_for_call is not None:
            try:
                await asyncio.wait_for(asyncio.shield(endpoint.answered), wait_for_call)
            except TimeoutError:
                engine = terminal.engine
                return Result(cause=Cause.NO_CALL, sending=engine.sending, calling=engine.calling)
        if timeout is None:
            return await endpoint.wait()
        try:
            return await asyncio.wait_for(endpoint.wait(), timeout)
        except TimeoutError:
            endpoint.cancel()
            return await endpoint.wait()
    finally:
        endpoint.close()


def _params(
    version: int,
    error_correction: str,
    rate_management: str,
    fill_bit_removal: bool,
    max_datagram: int,
) -> T38Params:
    return T38Params(
        version=version,
        error_correction=error_correction,  # type: ignore[arg-type]
        rate_management=rate_management,  # type: ignore[arg-type]
        fill_bit_removal=fill_bit_removal,
        max_datagram=max_datagram,
    )


async def _resolve(peer: Address, bind: Address) -> Address:
    if not (
        isinstance(peer, tuple)
        and len(peer) == 2
        and isinstance(peer[0], str)
        and isinstance(peer[1], int)
        and 0 < peer[1] < 65536
    ):
        raise T38Error(f"peer must be (host, port) with a port 1..65535, not {peer!r}")
    family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(peer[0], peer[1], family=family, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise T38Error(f"cannot resolve the peer {peer[0]!r}: {exc}") from None
    return infos[0][4][0], infos[0][4][1]


async def send_fax_async(
    peer: Address,
    pages: Sequence[Page] | str | os.PathLike[str],
    *,
    ecm: bool = True,
    ident: str = "",
    bind: Address = ("0.0.0.0", 0),
    version: int = 0,
    error_correction: Literal["none", "redundancy", "fec"] = "redundancy",
    redundancy: int = 3,
    fec_span: int = 3,
    fec_entries: int = 3,
    rate_management: Literal["transferredTCF", "localTCF"] = "transferredTCF",
    fill_bit_removal: bool = False,
    max_datagram: int = 400,
    speed: float = 1.0,
    timeout: float | None = None,
    on_event: Callable[[Note], object] | None = None,
    **options: Any,
) -> Result:
    """:func:`send_fax` inside a running event loop."""
    params = _params(version, error_correction, rate_management, fill_bit_removal, max_datagram)
    engine = create(calling=True, pages=load_pages(pages), ecm=ecm, ident=ident, **options)
    terminal = T38Terminal(
        engine, params=params, redundancy=redundancy, fec_span=fec_span,
        fec_entries=fec_entries, speed=speed, on_event=on_event,
    )  # fmt: skip
    address = await _resolve(peer, bind)
    return await run_call(terminal, bind=bind, peer=address, timeout=timeout)


async def receive_fax_async(
    bind: Address,
    *,
    timeout: float | None = 120.0,
    ecm: bool = True,
    ident: str = "",
    version: int = 0,
    error_correction: Literal["none", "redundancy", "fec"] = "redundancy",
    redundancy: int = 3,
    fec_span: int = 3,
    fec_entries: int = 3,
    rate_management: Literal["transferredTCF", "localTCF"] = "transferredTCF",
    fill_bit_removal: bool = False,
    max_datagram: int = 400,
    speed: float = 1.0,
    call_timeout: float | None = None,
    on_bound: Callable[[Any], object] | None = None,
    on_event: Callable[[Note], object] | None = None,
    **options: Any,
) -> Result:
    """:func:`receive_fax` inside a running event loop."""
    params = _params(version, error_correction, rate_management, fill_bit_removal, max_datagram)
    engine = create(calling=False, ecm=ecm, ident=ident, **options)
    terminal = T38Terminal(
        engine, params=params, redundancy=redundancy, fec_span=fec_span,
        fec_entries=fec_entries, speed=speed, on_event=on_event,
    )  # fmt: skip
    return await run_call(
        terminal, bind=bind, wait_for_call=timeout, timeout=call_timeout, on_bound=on_bound
    )


def send_fax(
    peer: Address,
    pages: Sequence[Page] | str | os.PathLike[str],
    **kwargs: Any,
) -> Result:
    """Call the T.38 endpoint at ``peer`` (``(host, port)``: its UDPTL media address, as SDP
    gives it) and send ``pages`` (a list of :class:`fastfax.Page`, or a TIFF-F path);
    return the :class:`~fastfax.t30.result.Result`.

    Keywords: ``ecm`` (use error correction when the far end offers it), ``ident`` (our
    TSI), ``bind`` (our local address, default ``("0.0.0.0", 0)``), the session's T.38
    parameters as negotiated in SDP: ``version`` (0..3), ``error_correction``
    (``"redundancy"``, ``"fec"`` or ``"none"``) with ``redundancy`` (copies of earlier IFP
    packets per datagram) or ``fec_span`` / ``fec_entries``, ``rate_management``
    (``"transferredTCF"`` or ``"localTCF"``), ``fill_bit_removal``, ``max_datagram`` (the
    peer's T38FaxMaxDatagram); ``speed`` (see the module notes), ``timeout`` (wall seconds
    before a call still running is cancelled; None: T.30's timers end a dead call),
    ``on_event`` (called with each progress note). Other keywords go to
    :func:`fastfax.t30.station.create`: ``max_rate`` (bit/s), ``modems``, ``codings``,
    ``resolutions``, ``nsf``, ``timers``, ``ecm_frame_size``.

    Bad pages or options raise :class:`~fastfax.t30.result.SessionError` or
    :class:`~fastfax.errors.T38Error` before anything is sent; a socket that cannot be
    bound raises :class:`OSError`.
    """
    return asyncio.run(send_fax_async(peer, pages, **kwargs))


def receive_fax(bind: Address, **kwargs: Any) -> Result:
    """Wait on UDP address ``bind`` for a T.38 call, answer the first peer that sends a
    UDPTL datagram and receive a fax; return the :class:`~fastfax.t30.result.Result`
    (``.pages`` are the pages received). Datagrams from any other address are ignored.

    Keywords: ``timeout`` (seconds to wait for the call, default 120, None: for ever; then
    the cause is ``Cause.NO_CALL``), ``call_timeout`` (wall seconds before a call still
    running is cancelled), ``on_bound`` (called with the bound address, for port 0),
    ``ecm`` (offer error correction), ``ident`` (our CSI), the T.38 parameters and
    ``speed`` as for :func:`send_fax`, ``on_event``; other keywords go to
    :func:`fastfax.t30.station.create` (``rnr_count`` too).
    """
    return asyncio.run(receive_fax_async(bind, **kwargs))
