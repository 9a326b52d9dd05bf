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

Each call keeps its own socket (below): one datagram is one ``recvfrom``. A shared socket
with ``recvmmsg``/``sendmmsg`` would save system calls but needs demultiplexing by peer
address and breaks the one-port-per-SDP-stream model; at 1,000 calls the figures in
``bench/test_t38_gateway_bench.py`` did not call for it.

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
import itertools
import os
import socket
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


class _Deadlines:
    """The next deadlines of every :class:`T38Endpoint` on one event loop, under one asyncio
    timer. Entries are ``(when, serial, endpoint)``; an entry whose ``when`` is no longer
    the endpoint's ``_timer_at`` is stale and skipped (and purged when they pile up)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, T38Endpoint]] = []
        self._serial = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed = float("inf")
        self._purge_at = 1024

    def set(self, endpoint: T38Endpoint, when: float) -> None:
        heapq.heappush(self._heap, (when, next(self._serial), endpoint))
        if len(self._heap) > self._purge_at:
            self._heap = [e for e in self._heap if e[2]._timer_at == e[0]]
            heapq.heapify(self._heap)
            self._purge_at = max(1024, 4 * len(self._heap))
        if when < self._armed:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._armed = float("inf")
        heap = self._heap
        now = self._loop.time()
        horizon = now + EARLY_S
        pop = heapq.heappop
        while heap and heap[0][0] <= horizon:
            when, _, endpoint = pop(heap)
            if endpoint._timer_at == when:
                endpoint._timer_at = None
                endpoint._wake(when if when > now else now)
        if heap:
            self._arm(heap[0][0])


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
        for k, datagram in enumerate(datagrams):
            if sock is None or transport.get_write_buffer_size():
                transport.sendto(datagram, peer)
                continue
            try:
                sock.sendto(datagram, peer)
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


async def run_call(
    terminal: T38Terminal,
    *,
    bind: Address = ("0.0.0.0", 0),
    peer: Address | None = None,
    wait_for_call: float | None = None,
    timeout: float | None = None,
    on_bound: Callable[[Any], object] | None = None,
) -> Result:
    """Run one call: bind a UDP socket to ``bind``, carry ``terminal``'s call to ``peer``
    (an IP address and port), or without one answer the first peer that sends (waiting at
    most ``wait_for_call`` seconds, None: for ever; then the result's cause is
    ``Cause.NO_CALL``). ``timeout``: wall seconds after which a call still running is
    cancelled (DCN, ``Cause.CANCELLED``); None: only T.30's timers and the terminal's
    ``max_seconds`` end it. ``on_bound`` is called with the socket's address once bound
    (for port 0). The socket is closed on return, also when the task is cancelled."""
    if terminal.started:
        raise T38Error("run_call needs a terminal that has not been started")
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(bind)
    except BaseException:
        sock.close()
        raise

    try:
        _, endpoint = await loop.create_datagram_endpoint(
            lambda: T38Endpoint(terminal, peer=peer, sock=sock), sock=sock
        )
    except BaseException:
        sock.close()
        raise
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
