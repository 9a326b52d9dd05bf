"""Fax calls over SIP with T.38 media, on asyncio, around the sans-I/O
:class:`fastfax.sip.ua.UserAgent`.

:class:`SipAgent` is the thin adapter: one UDP socket for SIP signalling, fed to the user
agent as :class:`~fastfax.sip.ua.Datagram` events with the loop's monotonic clock; the
agent's :class:`~fastfax.sip.ua.Transmit` actions go out on that socket (host names are
resolved here, once, and cached), its timers become ``loop.call_at`` handles. Each call
gets two media sockets bound before the INVITE or the 200 names their ports: an audio
port (RTP is received and dropped: there is no audio fax) and the T.38 port, on which a
:class:`~fastfax.transport.t38.T38Endpoint` runs the call's
:class:`~fastfax.t38.terminal.T38Terminal` once the user agent reports T.38
:class:`~fastfax.sip.ua.MediaReady`, talking to the address and port the peer's SDP named.

The two ends are tied: when the fax ends, the SIP call is hung up (BYE); when the SIP
call ends first (BYE, session expiry), the fax is given ``grace`` seconds to finish what
already arrived and is then dropped (``Cause.CALLDROPPED``).

A SIP failure before any T.38 media becomes a :class:`SipResult` whose ``cause`` is the
same in :class:`~fastfax.t30.result.Cause` (``BUSY`` for 486/600, ``BAD_ADDRESS`` for
404/484/604, ``NO_ANSWER`` for 408/480 and no answer in time, ``NO_T38`` for 488/606 to
our T.38 offer, ``REFUSED`` for 401/403/407 after our credentials, ``CANCELLED`` when we
cancelled, otherwise ``CALLDROPPED``, e.g. the caller's CANCEL before we answered) and
whose ``sip`` is the user agent's :class:`~fastfax.sip.ua.Cause` (``busy``,
``bad_address``, ``no_answer``, ``no_t38`` "far end refused T.38", ``refused_by_trunk``,
``caller_canceled``, ... with the SIP status and whether a retry may help): that is the
cause a service reports and retries by.

:func:`send_fax` and :func:`receive_fax` place or take one call on an agent of their own
and return the :class:`SipResult`; they run their own event loop, like
:func:`fastfax.transport.t38.send_fax`. ``speed`` is the T.38 terminal's line-clock
factor (both ends must use the same; keep 1 against real equipment). With
``transport="TCP"`` signalling goes over TCP (a listener on the same port number as the
UDP socket, connections opened on demand and reused both ways, messages framed by
Content-Length); media is UDP either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import T38Error
from ..page import Page
from ..sip import ua as U
from ..sip.auth import Credentials
from ..sip.message import Framer, SipError, parse_uri
from ..t30.events import Note
from ..t30.result import Cause, Result
from ..t30.station import create, load_pages
from ..t38.sdp import T38Params
from ..t38.terminal import T38Terminal
from .t38 import T38Endpoint

__all__ = [
    "SipAgent",
    "SipResult",
    "IncomingFax",
    "parse_address",
    "send_fax",
    "send_fax_async",
    "receive_fax",
    "receive_fax_async",
]

Address = tuple[str, int]
_PENDING = ("B", "F", "H")  # transaction timers running while an answer is awaited
_NUMBER = re.compile(r"[0-9A-Za-z+*#._~-]{1,64}")

_T30_CAUSE = {
    "busy": Cause.BUSY,
    "no_answer": Cause.NO_ANSWER,
    "bad_address": Cause.BAD_ADDRESS,
    "no_t38": Cause.NO_T38,
    "refused_by_trunk": Cause.REFUSED,
    "canceled": Cause.CANCELLED,  # we cancelled (our abort, or a 487 to our INVITE)
}


@dataclass(repr=False)
class SipResult(Result):
    """A :class:`~fastfax.t30.result.Result` with the SIP side's ending: ``sip`` is the
    :class:`~fastfax.sip.ua.Cause` the SIP call ended with (``None`` while it had not
    ended when the fax did, i.e. we hung up), ``call_id`` its Call-ID."""

    sip: U.Cause | None = None
    call_id: str = ""


@dataclass(frozen=True)
class IncomingFax:
    """An INVITE waiting for :meth:`SipAgent.answer` or :meth:`SipAgent.reject`."""

    call_id: str
    caller: str
    callee: str
    offers_t38: bool
    source: Address


def parse_address(value: str | Address, default_port: int = 5060) -> Address:
    """``"host:port"``, ``"host"``, ``"[v6]:port"`` or ``(host, port)`` as (host, port)."""
    if isinstance(value, tuple):
        host, port = value
    elif isinstance(value, str) and value:
        text = value.strip()
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
        elif text.count(":") == 1:
            host, _, tail = text.partition(":")
            if not tail.isascii() or not tail.isdigit():
                raise T38Error(f"bad port in address {value!r}")
            port = int(tail)
        else:
            host, port = text, default_port
    else:
        raise T38Error(f"an address is 'host:port' or (host, port), not {value!r}")
    if not isinstance(host, str) or not host or not isinstance(port, int) \
            or not 0 <= port <= 65535:
        raise T38Error(f"bad address {value!r}")
    return host, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Sink(asyncio.DatagramProtocol):
    """The audio port: RTP arrives and is dropped."""


class _Signalling(asyncio.DatagramProtocol):
    def __init__(self, agent: SipAgent) -> None:
        self.agent = agent

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.agent._feed(U.Datagram(data, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.agent.send_errors += 1


class _Stream(asyncio.Protocol):
    """One TCP connection: framed by Content-Length, each message fed to the agent as
    from the connection's peer; a stream that loses its framing is closed."""

    def __init__(self, agent: SipAgent) -> None:
        self.agent = agent
        self.framer = Framer()
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("peername")
        self.peer = (name[0], name[1])
        self.agent._streams[self.peer] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            self.framer.feed(data)
            while True:
                try:
                    message = self.framer.next_message()
                except SipError as exc:
                    if "limit" in str(exc) or "Content-Length" in str(exc):
                        raise  # the framing is lost
                    continue  # a malformed message was consumed: read on
                if message is None:
                    return
                self.agent._feed(U.Datagram(bytes(message), self.peer))
        except SipError:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.agent._streams.get(self.peer) is self:
            del self.agent._streams[self.peer]


class _Run:
    """One call's sockets and what the user agent reported about it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.t38_sock = socket.socket(family, socket.SOCK_DGRAM)
        self.audio_sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            for sock in (self.t38_sock, self.audio_sock):
                sock.bind((host, 0))
                sock.setblocking(False)
        except OSError:
            self.close()
            raise
        self.t38_port = self.t38_sock.getsockname()[1]
        self.audio_port = self.audio_sock.getsockname()[1]
        self.call_id = ""
        self.media: asyncio.Future[U.MediaReady] = loop.create_future()
        self.audio: asyncio.Future[U.MediaReady] = loop.create_future()
        self.ended: asyncio.Future[U.Cause] = loop.create_future()
        self.progress: list[int] = []
        self.timed_out = False
        self.audio_transport: asyncio.BaseTransport | None = None
        self.endpoint: T38Endpoint | None = None

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()
        else:
            self.t38_sock.close()
        if self.audio_transport is not None:
            self.audio_transport.close()
        else:
            self.audio_sock.close()


class SipAgent:
    """A SIP user agent on a UDP socket of an asyncio loop, carrying fax calls in T.38.

    ``bind``: the local (host, port) of the signalling socket (port 0: any; the agent's
    :attr:`address` then tells). ``contact_host``: the address written in Via, Contact and
    SDP when ``bind`` is a wildcard (default: the host the registrar or proxy is reached
    from, else 127.0.0.1). Keywords go to :class:`~fastfax.sip.ua.UaConfig` (``user``,
    ``domain``, ``registrar``, ``proxy``, ``t38_mode``, ``session_expires``,
    ``max_calls``, ``timers``, ``t38`` ...); ``user``/``password`` make the credentials.
    Make it, then ``await start()``; ``close()`` when done.
    """

    def __init__(
        self,
        bind: str | Address = ("0.0.0.0", 5080),
        *,
        contact_host: str | None = None,
        password: str | None = None,
        registrar: str | Address | None = None,
        proxy: str | Address | None = None,
        t38_wait: float = 2.0,
        **config: Any,
    ) -> None:
        self.bind = parse_address(bind, 5080)
        self.registrar = None if registrar is None else parse_address(registrar)
        self.proxy = None if proxy is None else parse_address(proxy)
        self.contact_host = contact_host
        self.password = password
        self.t38_wait = t38_wait
        self._config = config
        self.ua: U.UserAgent | None = None
        self.send_errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._timers: dict[tuple[Any, ...], asyncio.TimerHandle] = {}
        self._names: dict[str, str] = {}
        self._streams: dict[Address, _Stream] = {}
        self._server: asyncio.AbstractServer | None = None
        self.tcp = str(config.get("transport", "UDP")).upper() == "TCP"
        self._runs: dict[str, _Run] = {}
        self._incoming: asyncio.Queue[IncomingFax] = asyncio.Queue()
        self._registration: asyncio.Future[U.Registered | U.RegistrationFailed] | None = None
        self.accepting = True

    @property
    def address(self) -> Address:
        """The signalling socket's local (host, port)."""
        assert self._transport is not None
        name = self._transport.get_extra_info("sockname")
        return name[0], name[1]

    async def _resolve(self, host: str) -> str:
        if _is_ip(host):
            return host
        if host not in self._names:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM,
                                               family=socket.AF_INET)
            except OSError as exc:
                raise T38Error(f"cannot resolve {host!r}: {exc}") from None
            self._names[host] = infos[0][4][0]
        return self._names[host]

    async def start(self) -> None:
        """Bind the signalling socket and make the user agent."""
        loop = self._loop = asyncio.get_running_loop()
        for peer in (self.registrar, self.proxy):
            if peer is not None:
                await self._resolve(peer[0])
        family = socket.AF_INET6 if ":" in self.bind[0] else socket.AF_INET
        for attempt in range(20 if self.bind[1] == 0 else 1):
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Signalling(self), local_addr=self.bind, family=family)
            if not self.tcp:
                break
            try:  # the same port number for the stream listener
                self._server = await loop.create_server(
                    lambda: _Stream(self), self.bind[0], self.address[1], family=family)
                break
            except OSError:  # taken for TCP: with port 0, try another number
                self._transport.close()
                if attempt == 19 or self.bind[1] != 0:
                    raise
        host, port = self.address
        if self.contact_host:
            host = self.contact_host
        elif host in ("0.0.0.0", "::"):
            host = self._local_host_towards(self.proxy or self.registrar)
        self.media_bind = self.bind[0]
        config = dict(self._config)
        user = config.get("user", "fastfax")
        if self.password is not None:
            config["credentials"] = Credentials(user, self.password)
        try:
            self.ua = U.UserAgent(U.UaConfig(host, port, registrar=self.registrar,
                                             proxy=self.proxy, **config))
        except (SipError, TypeError) as exc:
            self.close()
            raise T38Error(f"bad SIP settings: {exc}") from None

    def _local_host_towards(self, peer: Address | None) -> str:
        if peer is None:
            return "127.0.0.1"
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect((self._names.get(peer[0], peer[0]), peer[1] or 5060))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"
        finally:
            probe.close()

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait (at most ``timeout`` s) until no transaction of ours waits for a final
        response or an ACK (a CANCEL's 487, a BYE's 200), so closing loses no answer."""
        deadline = self._now() + timeout
        while self._now() < deadline and any(
                key[0] == "tx" and key[2] in _PENDING for key in self._timers):
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """Close every socket and cancel the timers (calls in progress are dropped)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for run in list(self._runs.values()):
            if not run.ended.done():
                run.ended.set_result(U.CAUSES["failed"])
            run.close()
        self._runs.clear()
        if self._transport is not None:
            self._transport.close()
        for stream in list(self._streams.values()):
            if stream.transport is not None:
                stream.transport.close()
        if self._server is not None:
            self._server.close()

    # -- the user agent's events and actions -----------------------------------------------
    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _feed(self, event: U.Datagram | U.TimerExpired) -> None:
        assert self.ua is not None
        self._do(self.ua.handle(event, self._now()))

    def _fire(self, key: tuple[Any, ...]) -> None:
        self._timers.pop(key, None)
        self._feed(U.TimerExpired(key))

    def _do(self, actions: list[U.Action]) -> None:
        assert self._loop is not None
        for action in actions:
            if isinstance(action, U.Transmit):
                self._transmit(action.data, action.destination)
            elif isinstance(action, U.SetTimer):
                old = self._timers.pop(action.key, None)
                if old is not None:
                    old.cancel()
                self._timers[action.key] = self._loop.call_at(
                    action.deadline, self._fire, action.key)
            elif isinstance(action, U.ClearTimer):
                old = self._timers.pop(action.key, None)
                if old is not None:
                    old.cancel()
            else:
                self._event(action)

    def _transmit(self, data: bytes, destination: Address) -> None:
        host, port = destination
        host = self._names.get(host, host)
        if self._transport is None or self._transport.is_closing():
            return
        if self.tcp:
            self._send_stream(data, (host, port))
            return
        if _is_ip(host):
            self._transport.sendto(data, (host, port))
            return

        async def later() -> None:
            try:
                address = await self._resolve(host)
            except T38Error:
                return
            if self._transport is not None and not self._transport.is_closing():
                self._transport.sendto(data, (address, port))

        assert self._loop is not None
        self._loop.create_task(later())

    def _send_stream(self, data: bytes, destination: Address) -> None:
        """Send on the connection to ``destination``, opening one when there is none
        (responses go back on the connection their request came in on)."""
        stream = self._streams.get(destination)
        if stream is not None and stream.transport is not None \
                and not stream.transport.is_closing():
            stream.transport.write(data)
            return

        async def connect() -> None:
            loop = asyncio.get_running_loop()
            try:
                address = await self._resolve(destination[0])
                known = self._streams.get((address, destination[1]))
                if known is None or known.transport is None or known.transport.is_closing():
                    _, known = await loop.create_connection(
                        lambda: _Stream(self), address, destination[1])
                    self._streams[destination] = known
                assert known.transport is not None
                known.transport.write(data)
            except (OSError, T38Error):
                self.send_errors += 1  # the transaction times out and says so

        assert self._loop is not None
        self._loop.create_task(connect())

    def _event(self, event: object) -> None:
        if isinstance(event, U.Registered | U.RegistrationFailed):
            if self._registration is not None and not self._registration.done():
                self._registration.set_result(event)
            return
        if isinstance(event, U.IncomingCall):
            if not self.accepting:
                self._do(self.ua.reject(event.call_id, self._now(), status=486))  # type: ignore[union-attr]
                return
            self._incoming.put_nowait(IncomingFax(event.call_id, event.caller, event.callee,
                                                  event.offers_t38, event.source))
            return
        call_id = getattr(event, "call_id", None)
        run = self._runs.get(call_id) if call_id is not None else None
        if run is None:
            return
        if isinstance(event, U.CallProgress):
            run.progress.append(event.status)
        elif isinstance(event, U.MediaReady):
            target = run.media if event.kind == "t38" else run.audio
            if not target.done():
                target.set_result(event)
        elif isinstance(event, U.CallEnded):
            if not run.ended.done():
                run.ended.set_result(event.cause)

    # -- registration ----------------------------------------------------------------------
    async def register(self, timeout: float = 10.0) -> U.Registered:
        """REGISTER with the registrar (refreshed by the user agent after); raise
        :class:`~fastfax.errors.T38Error` naming the cause when refused or unanswered."""
        assert self.ua is not None and self._loop is not None
        self._registration = self._loop.create_future()
        try:
            self._do(self.ua.register(self._now()))
        except SipError as exc:
            raise T38Error(str(exc)) from None
        try:
            outcome = await asyncio.wait_for(asyncio.shield(self._registration), timeout)
        except TimeoutError:
            raise T38Error("the registrar did not answer") from None
        if isinstance(outcome, U.RegistrationFailed):
            status = f" ({outcome.cause.status})" if outcome.cause.status else ""
            raise T38Error(f"registration failed: {outcome.cause.text}{status}")
        return outcome

    # -- calls -----------------------------------------------------------------------------
    async def send(
        self,
        target: str,
        pages: Sequence[Page] | str | os.PathLike[str],
        *,
        speed: float = 1.0,
        setup_timeout: float = 60.0,
        timeout: float | None = None,
        grace: float = 2.0,
        on_event: Callable[[Note], object] | None = None,
        abort: Callable[[], bool] | None = None,
        redundancy: int = 3,
        **options: Any,
    ) -> SipResult:
        """Call ``target`` (a SIP URI, or a number at the registrar's or proxy's domain)
        and send ``pages``. ``setup_timeout``: seconds to wait for T.38 media after the
        INVITE (then the call is cancelled: ``no_answer``). ``timeout``: wall seconds the
        fax may run. ``abort``: polled every 0.2 s; True cancels the call. Other keywords
        go to :func:`fastfax.t30.station.create` (``ident``, ``ecm``, ``max_rate``, ...)."""
        assert self.ua is not None
        pages = load_pages(pages)
        create(calling=True, pages=pages, **options)  # bad options fail before the INVITE
        await self._check_target(target)
        run = _Run(asyncio.get_running_loop(), self.media_bind)
        try:
            call_id, actions = self.ua.invite(target, self._now(), audio_port=run.audio_port,
                                              t38_port=run.t38_port)
        except SipError as exc:
            run.close()
            raise T38Error(f"cannot call {target!r}: {exc}") from None
        return await self._carry(run, call_id, actions, True, pages, speed, setup_timeout,
                                 timeout, grace, on_event, abort, redundancy, options)

    async def _check_target(self, target: str) -> None:
        if not isinstance(target, str) or not target:
            raise T38Error(f"a call needs a SIP URI or a number, not {target!r}")
        if not target.lower().startswith(("sip:", "sips:")):
            if not _NUMBER.fullmatch(target):
                raise T38Error(f"{target!r} is neither a SIP URI nor a number")
            if self.proxy is None and self.registrar is None:
                raise T38Error(f"{target!r} is a number: a registrar or proxy is needed")
            return
        try:
            uri = parse_uri(target, allow_headers=False)
        except SipError as exc:
            raise T38Error(f"bad SIP URI {target!r}: {exc}") from None
        if self.proxy is None:
            await self._resolve(uri.hostport[0])

    async def next_call(self, timeout: float | None = None) -> IncomingFax | None:
        """The next incoming INVITE (None after ``timeout`` seconds)."""
        try:
            return await asyncio.wait_for(self._incoming.get(), timeout)
        except TimeoutError:
            return None

    def reject(self, call: IncomingFax, status: int = 486) -> None:
        """Refuse an incoming call with ``status``."""
        assert self.ua is not None
        try:
            self._do(self.ua.reject(call.call_id, self._now(), status=status))
        except SipError:
            pass  # it was cancelled meanwhile

    async def answer(
        self,
        call: IncomingFax,
        *,
        speed: float = 1.0,
        setup_timeout: float = 30.0,
        timeout: float | None = None,
        grace: float = 2.0,
        on_event: Callable[[Note], object] | None = None,
        abort: Callable[[], bool] | None = None,
        redundancy: int = 3,
        **options: Any,
    ) -> SipResult:
        """Answer ``call`` (180, then 200 with our SDP answer) and receive the fax; an
        audio call is switched to T.38 by our re-INVITE when the caller has not done so
        within ``t38_wait`` seconds. Keywords as for :meth:`send`."""
        assert self.ua is not None
        create(calling=False, **options)
        run = _Run(asyncio.get_running_loop(), self.media_bind)
        self._runs[call.call_id] = run
        now = self._now()
        try:
            actions = self.ua.ring(call.call_id, now)
            actions += self.ua.answer(call.call_id, now, audio_port=run.audio_port,
                                      t38_port=run.t38_port)
        except SipError:  # ended before we answered (the caller's CANCEL)
            actions = []
            if not run.ended.done():
                run.ended.set_result(self.ua.cause_of(call.call_id) or U.CAUSES["failed"])
        return await self._carry(run, call.call_id, actions, False, None, speed, setup_timeout,
                                 timeout, grace, on_event, abort, redundancy, options)

    async def _carry(self, run: _Run, call_id: str, actions: list[U.Action], calling: bool,
                     pages: list[Page] | None, speed: float, setup_timeout: float,
                     timeout: float | None, grace: float,
                     on_event: Callable[[Note], object] | None,
                     abort: Callable[[], bool] | None, redundancy: int,
                     options: dict[str, Any]) -> SipResult:
        loop = asyncio.get_running_loop()
        run.call_id = call_id
        self._runs[call_id] = run
        watcher = loop.create_task(self._watch_abort(run, abort)) if abort else None
        try:
            run.audio_transport, _ = await loop.create_datagram_endpoint(
                _Sink, sock=run.audio_sock)
            self._do(actions)
            media = await self._await_media(run, calling, setup_timeout)
            if media is None:
                cause = run.ended.result() if run.ended.done() else U.CAUSES["failed"]
                if run.timed_out:
                    cause = U.CAUSES["no_answer"]
                return self._failed(run, calling, cause)
            params = media.params or T38Params()
            rate = min(options.pop("max_rate", 14400), params.max_bit_rate)
            engine = create(calling=calling, pages=pages, max_rate=rate, **options)
            terminal = T38Terminal(engine, params=params, redundancy=redundancy, speed=speed,
                                   on_event=on_event)
            peer = (await self._resolve(media.address), media.port)
            _, run.endpoint = await loop.create_datagram_endpoint(
                lambda: T38Endpoint(terminal, peer=peer), sock=run.t38_sock)
            result = await self._fax(run, timeout, grace)
            sip = run.ended.result() if run.ended.done() else None
            if not run.ended.done() and self.ua is not None:
                self._do(self.ua.hangup(call_id, self._now()))
            return SipResult(**{f: getattr(result, f) for f in result.__dataclass_fields__},
                             sip=sip, call_id=call_id)
        finally:
            if watcher is not None:
                watcher.cancel()
            run.close()
            self._runs.pop(call_id, None)

    async def _watch_abort(self, run: _Run, abort: Callable[[], bool]) -> None:
        while True:
            await asyncio.sleep(0.2)
            if abort():
                if run.endpoint is not None:
                    run.endpoint.cancel()
                elif self.ua is not None and not run.ended.done():
                    try:
                        self._do(self.ua.hangup(run.call_id, self._now()))
                    except SipError:
                        pass
                return

    async def _await_media(self, run: _Run, calling: bool,
                           setup_timeout: float) -> U.MediaReady | None:
        deadline = self._now() + setup_timeout
        asked = False
        while not run.media.done() and not run.ended.done():
            wait = deadline - self._now()
            if wait <= 0:
                break
            if not calling and not asked and run.audio.done():
                wait = min(wait, self.t38_wait)
            await asyncio.wait({run.media, run.ended}, timeout=wait,
                               return_when=asyncio.FIRST_COMPLETED)
            if not calling and not asked and run.audio.done() and not run.media.done() \
                    and not run.ended.done() and self.ua is not None:
                asked = True
                self._do(self.ua.request_t38(run.call_id, self._now()))
        if run.media.done():
            return run.media.result()
        if not run.ended.done() and self.ua is not None:
            run.timed_out = True
            try:
                self._do(self.ua.hangup(run.call_id, self._now()))
            except SipError:
                pass
        return None

    async def _fax(self, run: _Run, timeout: float | None, grace: float) -> Result:
        endpoint = run.endpoint
        assert endpoint is not None
        fax = asyncio.ensure_future(endpoint.wait())
        await asyncio.wait({fax, run.ended}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        if not fax.done() and run.ended.done():
            await asyncio.wait({fax}, timeout=grace)
            if not fax.done():
                endpoint.close()  # the line is gone: the terminal ends as dropped
        elif not fax.done():
            endpoint.cancel()
        return await fax

    def _failed(self, run: _Run, calling: bool, cause: U.Cause) -> SipResult:
        return SipResult(cause=_T30_CAUSE.get(cause.name, Cause.CALLDROPPED), sending=calling,
                         calling=calling, sip=cause, call_id=run.call_id)


@contextlib.asynccontextmanager
async def _own_agent(local: str | Address, user: str | None, password: str | None,
                     registrar: str | Address | None, proxy: str | Address | None,
                     t38_mode: str, sip: dict[str, Any] | None) -> AsyncIterator[SipAgent]:
    """A :class:`SipAgent` of its own for one call: started, registered first when a
    registrar is given; afterwards its last transactions drained (the BYE's 200 ...) and
    it is closed."""
    agent = SipAgent(local, password=password, registrar=registrar, proxy=proxy,
                     t38_mode=t38_mode, **({"user": user} if user else {}), **(sip or {}))
    await agent.start()
    try:
        if registrar is not None:
            await agent.register()
        yield agent
        await agent.drain()
    finally:
        agent.close()


async def send_fax_async(
    uri: str,
    pages: Sequence[Page] | str | os.PathLike[str],
    *,
    local: str | Address = "0.0.0.0:5080",
    user: str | None = None,
    password: str | None = None,
    registrar: str | Address | None = None,
    proxy: str | Address | None = None,
    t38_mode: str = "reinvite",
    speed: float = 1.0,
    timeout: float | None = None,
    setup_timeout: float = 60.0,
    on_event: Callable[[Note], object] | None = None,
    sip: dict[str, Any] | None = None,
    **options: Any,
) -> SipResult:
    """:func:`send_fax` inside a running event loop."""
    async with _own_agent(local, user, password, registrar, proxy, t38_mode, sip) as agent:
        return await agent.send(uri, pages, speed=speed, timeout=timeout,
                                setup_timeout=setup_timeout, on_event=on_event, **options)


async def receive_fax_async(
    *,
    local: str | Address = "0.0.0.0:5080",
    timeout: float | None = 120.0,
    user: str | None = None,
    password: str | None = None,
    registrar: str | Address | None = None,
    proxy: str | Address | None = None,
    t38_mode: str = "on-request",
    speed: float = 1.0,
    call_timeout: float | None = None,
    on_event: Callable[[Note], object] | None = None,
    on_ready: Callable[[Address], object] | None = None,
    sip: dict[str, Any] | None = None,
    **options: Any,
) -> SipResult:
    """:func:`receive_fax` inside a running event loop."""
    async with _own_agent(local, user, password, registrar, proxy, t38_mode, sip) as agent:
        if on_ready is not None:
            on_ready(agent.address)
        call = await agent.next_call(timeout)
        if call is None:
            return SipResult(cause=Cause.NO_CALL, sending=False, calling=False)
        agent.accepting = False  # one call: later INVITEs are busy
        return await agent.answer(call, speed=speed, timeout=call_timeout, on_event=on_event,
                                  **options)


def send_fax(uri: str, pages: Sequence[Page] | str | os.PathLike[str],
             **kwargs: Any) -> SipResult:
    """Call ``uri`` (``"sip:200@192.0.2.1:5060"``, or a number at the registrar's or the
    proxy's domain) and send ``pages`` (a list of :class:`fastfax.Page`, or a TIFF-F path)
    in T.38; return the :class:`SipResult` (``.sip`` names a SIP failure).

    Keywords: ``local`` (our signalling address, default ``"0.0.0.0:5080"``), ``user`` /
    ``password`` (digest credentials, for the registrar and for challenged INVITEs),
    ``registrar`` (registered with first when given), ``proxy`` (every request goes
    through it), ``t38_mode`` (``"reinvite"``: audio offer, then T.38 by re-INVITE once
    answered; ``"direct"``: T.38 offered in the INVITE), ``speed``, ``timeout`` (wall
    seconds the fax may run), ``setup_timeout`` (seconds to T.38 media), ``on_event``,
    ``sip`` (more :class:`~fastfax.sip.ua.UaConfig` fields); other keywords go to
    :func:`fastfax.t30.station.create` (``ident``, ``ecm``, ``max_rate``, ...)."""
    return asyncio.run(send_fax_async(uri, pages, **kwargs))


def receive_fax(**kwargs: Any) -> SipResult:
    """Wait for an INVITE on ``local`` (default ``"0.0.0.0:5080"``), answer the first one
    and receive its fax in T.38; return the :class:`SipResult` (``.pages`` received).
    ``timeout``: seconds to wait for the call (default 120; then ``Cause.NO_CALL``);
    ``call_timeout``: wall seconds the fax may run; ``on_ready``: called with the bound
    signalling address; ``t38_mode`` default ``"on-request"`` (we re-INVITE to T.38 when the
    caller has not within two seconds); the rest as for :func:`send_fax`."""
    return asyncio.run(receive_fax_async(**kwargs))
