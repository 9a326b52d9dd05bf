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
event loop does per datagram decides how many calls a core carries. The per-datagram part
is native (:mod:`fastfax.transport._t38io`, Linux epoll):

- *One reader for all calls' sockets*: a call of :func:`run_call` on a socket of its own
  is read through one epoll set per loop (:class:`~fastfax.transport._t38io.Poller`),
  itself the loop's only reader for them: one loop callback serves every socket that is
  readable, reading each dry with ``recvfrom`` in C; a datagram from the call's peer
  (compared as a socket address) goes straight to the terminal, any other to
  :meth:`T38Endpoint.datagram_received` (foreign, or the answering side's first).
- *One timer for all calls of a loop* (:class:`~fastfax.transport._t38io.Deadlines`):
  the endpoints' next deadlines are kept in buckets of a millisecond under a single
  asyncio timer; when it fires, every endpoint due within the next millisecond
  (:data:`~fastfax.transport._t38io.EARLY_S`) is served in the same pass, its terminal
  polled at its own deadline, instead of an asyncio ``TimerHandle`` per packet.
- *Sends go straight to the socket* with ``sendto`` in C while nothing is queued (what
  the kernel's buffer cannot take is queued and written when the socket is writable).

- *One socket for many calls* (:class:`T38Port`, optional): calls whose far ends have
  distinct addresses can share one local UDP port (one media port in every call's SDP),
  the port demultiplexing by the peer's address. The port's socket is in the same epoll
  set (a :class:`~fastfax.transport._t38io.PortSocket`): a datagram from a call's peer
  (looked up by its socket address) goes straight to that call, any other to the port's
  Python dispatch (an answering call takes it, or it is counted); each call on the port
  sends on the port's socket natively. Endpoints made with
  ``loop.create_datagram_endpoint`` are read by asyncio's transport (only the timer and
  the terminal's service are native for them).

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
from . import _t38io

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

#: Largest datagram read (octets; UDP's own limit), see :func:`small_reads`.
MAX_READ = 65535
#: Receive buffer asked for a :class:`T38Port`'s socket (octets; the kernel caps it at
#: ``net.core.rmem_max``): the datagrams of all its calls queue there while the loop is
#: busy. With the default (~208 KiB) 500 calls on one port lost datagrams to the buffer
#: whenever the loop was held up by some 10 ms (ECM then sends the frames again).
PORT_RCVBUF = 4 << 20
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


_DEADLINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _t38io.Deadlines] = (
    weakref.WeakKeyDictionary()
)


def _forget_closed_loops() -> None:
    """Drop what is kept for loops that were closed: it refers to its loop (its timer
    handle, the endpoints of its last calls), so the weak key alone would never let go."""
    for kept in (_DEADLINES, _POLLERS):
        for loop in [loop for loop in kept if loop.is_closed()]:
            del kept[loop]


def _deadlines(loop: asyncio.AbstractEventLoop) -> _t38io.Deadlines:
    deadlines = _DEADLINES.get(loop)
    if deadlines is None:
        _forget_closed_loops()
        deadlines = _DEADLINES[loop] = _t38io.Deadlines(loop)
    return deadlines


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _t38io.Poller] = (
    weakref.WeakKeyDictionary()
)


def _poller(loop: asyncio.AbstractEventLoop) -> _t38io.Poller:
    poller = _POLLERS.get(loop)
    if poller is None:
        _forget_closed_loops()
        poller = _POLLERS[loop] = _t38io.Poller(loop)
    return poller


class _SocketTransport:
    """The transport of a :class:`T38Endpoint` on a socket of its own (:func:`run_call`),
    or of a :class:`T38Port`: ``call_socket`` (its
    :class:`~fastfax.transport._t38io.CallSocket`, or the port's
    :class:`~fastfax.transport._t38io.PortSocket`) reads through the loop's
    :class:`~fastfax.transport._t38io.Poller` (one epoll set for all such sockets) and
    writes natively; queued here is only what the kernel's buffer cannot take (sent when
    the socket is writable again, in order). ``close`` closes the socket and, as asyncio's
    transports do, tells the ``protocol`` its connection was lost (on the next loop
    pass)."""

    def __init__(
        self,
        sock: socket.socket,
        protocol: T38Endpoint | T38Port,
        call_socket: _t38io.CallSocket,
    ) -> None:
        self._sock = sock
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._poller = _poller(self._loop)
        self._queue: list[tuple[bytes, Any]] = []
        self._closed = False
        self.call_socket = call_socket
        self._poller.add(call_socket)

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if self._closed:
            return
        self._queue.append((data, addr))
        self.call_socket.queued = len(self._queue)
        if len(self._queue) == 1:
            self._loop.add_writer(self._sock.fileno(), self._write_ready)

    def _write_ready(self) -> None:
        queue = self._queue
        while queue:
            data, addr = queue[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            del queue[0]
            self.call_socket.queued = len(queue)
        self._loop.remove_writer(self._sock.fileno())

    def get_write_buffer_size(self) -> int:
        return sum(len(data) for data, _ in self._queue)

    def is_closing(self) -> bool:
        return self._closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._sock.getsockname()
        if name == "socket":
            return self._sock
        return default

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._queue:
            self._loop.remove_writer(self._sock.fileno())
            self._queue.clear()
        self._poller.remove(self.call_socket)
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, None)


class T38Endpoint(_t38io.EndpointCore, asyncio.DatagramProtocol):
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
        self._fast: _t38io.CallSocket | None = None
        self._loop = asyncio.get_running_loop()
        self._deadlines = _deadlines(self._loop)
        self._result: asyncio.Future[Result] = self._loop.create_future()
        self.answered: asyncio.Future[Address] = self._loop.create_future()

    # -- asyncio protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        small_reads(transport)
        self._fast = getattr(transport, "call_socket", None)
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
        self._from_peer(data)

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
        if self._fast is not None:
            self._fast.set_peer(self.peer)
        if not self.answered.done():
            self.answered.set_result(self.peer)  # type: ignore[arg-type]
        now = self._loop.time()
        self.terminal.start(now)
        self._service(now)


class _PortTransport:
    """What a :class:`T38Endpoint` on a :class:`T38Port` sees as its transport: the port's
    socket, shared; ``close`` takes the call off the port only (and, as a closed socket
    would, tells the endpoint its connection was lost)."""

    def __init__(self, port: T38Port, endpoint: T38Endpoint) -> None:
        self._port = port
        self._endpoint = endpoint
        self._closed = False
        sock = port._sock
        assert sock is not None
        # The endpoint's native sends on the port's socket (not read: the port reads).
        self.call_socket = _t38io.CallSocket(sock.fileno(), sock.family, endpoint, port._reader)

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
        self.call_socket.close()
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
        self._reader: _t38io.PortSocket | None = None

    @classmethod
    async def open(cls, bind: Address = ("0.0.0.0", 0)) -> T38Port:
        """Bind a UDP socket to ``bind`` (an IP address and port; port 0: any) and return
        the port on it (in the running event loop)."""
        sock = _bound_udp(bind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PORT_RCVBUF)
            port = cls()
            port._sock = sock
            reader = _t38io.PortSocket(sock.fileno(), sock.family, port)
            port.connection_made(_SocketTransport(sock, port, reader))  # type: ignore[arg-type]
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
        self._reader = getattr(transport, "call_socket", None)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._dispatch(data, addr)

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
        if self._reader is not None:
            self._reader.attach(key, endpoint)
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
            if self._reader is not None:
                self._reader.attach(key, endpoint)
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
                if self._reader is not None:
                    self._reader.detach(key)
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
    sock = _bound_udp(bind)
    try:
        endpoint = T38Endpoint(terminal, peer=peer, sock=sock)
        call_socket = _t38io.CallSocket(sock.fileno(), sock.family, endpoint)
        endpoint.connection_made(_SocketTransport(sock, endpoint, call_socket))  # type: ignore[arg-type]
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
