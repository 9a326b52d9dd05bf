"""The ``t38`` device kind: fax over IP without call set-up. Each line owns a local UDP
port; each number it can call has a static peer address (the far end's UDPTL media
address, as SDP would give it). A send runs a T.38 call from the line's port to the
number's peer; a line set to receive answers the first peer whose well-formed UDPTL
datagram reaches its port (:mod:`fastfax.transport.t38`, :mod:`fastfax.t38.terminal`).

One asyncio event loop thread per device carries every call of its lines (each call a
:class:`~fastfax.transport.t38.T38Endpoint` over its line's socket): the many-calls-on-one-
loop building block of :mod:`fastfax.transport.t38`, under the service.

TOML::

    [[devices]]
    kind = "t38"
    name = "ip"
    lines = [{ number = "100", local = "127.0.0.1:4100" },
             { number = "101", local = "127.0.0.1:4101" }]
    peers = { "200" = "127.0.0.1:4200", "201" = "[::1]:4201" }
    version = 0                        # T.38 version, 0..3
    error_correction = "redundancy"    # "redundancy", "fec" or "none"
    redundancy = 3                     # earlier IFPs repeated in each datagram
    fec_span = 3                       # parity FEC: span and entries
    fec_entries = 3
    rate_management = "transferredTCF" # or "localTCF"
    fill_bit_removal = false
    max_datagram = 400                 # the peers' T38FaxMaxDatagram (octets)
    ecm = true                         # error correction offered when answering
    max_rate = 14400                   # bit/s cap, both ways
    speed = 1.0                        # line clock speed-up (tests; the peer must match)

Addresses are IP literals with a port (``host:port``, ``[v6]:port``; a line's local port 0:
any, for a line that only sends). Every bad field is
a :class:`~fastfax.errors.ConfigError` naming it; a local port that cannot be bound is one
too, raised when the service starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, FaxError
from ..t30.events import Negotiated, PageReceived, PageSent
from ..t30.result import Cause, Result, SessionError
from ..t30.station import create
from ..t38.sdp import T38Params
from ..t38.terminal import T38Terminal
from ..t38.udptl import UdptlEncoder, decode_datagram
from ..transport.t38 import T38Endpoint, small_reads
from .contract import INBOUND_LOGGER, Call, DeviceState, Hooks, Line, Outcome

__all__ = ["T38Device"]

Address = tuple[str, int]

#: Wall seconds an aborted call has to end with DCN before its line is dropped.
ABORT_GRACE = 0.5
#: Wall seconds between looks at a receive's abort flag.
ABORT_POLL = 0.1
#: Wall seconds :meth:`T38Device.close` lets calls end after dropping them.
CLOSE_WAIT = 5.0
#: Wall seconds after a call during which its peer's datagrams that continue the call's
#: numbering are taken as stragglers of that call, not as a new call.
QUIET = 3.0
#: A datagram from the last peer numbered this many after its last one, or up to
#: :data:`BEHIND` before it, continues the old call.
AHEAD, BEHIND = 4096, 4

#: How a call that did not complete shows in the device state.
_CALL_STATES = {
    Cause.T1_EXPIRED: DeviceState.NO_ANSWER,  # nothing answered the calling tone
    Cause.CALLDROPPED: DeviceState.DISCONNECTED,
}

_OPTIONS = {
    "lines", "peers", "version", "error_correction", "redundancy", "fec_span", "fec_entries",
    "rate_management", "fill_bit_removal", "max_datagram", "ecm", "max_rate", "speed",
}  # fmt: skip


def _address(device: str, field: str, text: Any, low: int = 1) -> Address:
    """``host:port`` / ``[v6]:port`` (an IP literal, a port from ``low``) as a socket
    address."""
    if not isinstance(text, str):
        raise ConfigError(f"t38 device {device!r}: {field} must be 'host:port', not {text!r}")
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        ip, number = None, 0
    if not sep or ip is None or not low <= number < 65536 or not port.isdigit():
        raise ConfigError(
            f"t38 device {device!r}: {field} must be an IP address and a port {low}-65535 "
            f"('127.0.0.1:4000', '[::1]:4000'), not {text!r}"
        )
    return str(ip), number


def _number(device: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value or not value.isprintable() or value.strip() != value:
        raise ConfigError(f"t38 device {device!r}: {field} must be a non-empty string, "
                          f"not {value!r}")  # fmt: skip
    return value


def _check_number(device: str, options: dict[str, Any], key: str, kind: type, low: float,
                  high: float) -> None:  # fmt: skip
    if key not in options:
        return
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise ConfigError(f"t38 device {device!r}: {key} must be a number, not {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"t38 device {device!r}: {key} must be {low}-{high}, not {value!r}")


@dataclass
class _Straggler:
    """The last call's peer and its last sequence number on a line, and when it ended."""

    peer: Address
    seq: int
    ended: float


class _CallTransport:
    """What a :class:`T38Endpoint` sees as its transport: the line's socket, shared, whose
    ``close`` only takes the call off the line (as a closed socket would, the endpoint is
    told its connection was lost)."""

    def __init__(self, port: _LinePort, endpoint: T38Endpoint) -> None:
        self._port = port
        self._endpoint = endpoint
        self._closed = False

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if not self._closed and self._port.transport is not None:
            self._port.transport.sendto(data, addr)

    def is_closing(self) -> bool:
        return self._closed or self._port.transport is None or self._port.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self._port.transport is None:
            return default
        return self._port.transport.get_extra_info(name, default)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._port.detach(self._endpoint)
        asyncio.get_running_loop().call_soon(self._endpoint.connection_lost, None)


class _LinePort(asyncio.DatagramProtocol):
    """One line's UDP socket: datagrams go to the line's call, or ring the device."""

    def __init__(self, device: T38Device, line: Line, local: Address) -> None:
        self.device = device
        self.line = line
        self.local = local
        self.transport: asyncio.DatagramTransport | None = None
        self.call: T38Endpoint | None = None
        self.job_id: int | None = None  # the send job in progress on this line
        self.last_seq = -1  # the call's peer's last sequence number
        self.straggler: _Straggler | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        small_reads(transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        call = self.call
        if call is None:
            self.device._ring(self, data, (addr[0], addr[1]))
            return
        if len(data) >= 2 and call.peer is not None and (addr[0], addr[1]) == call.peer:
            self.last_seq = data[0] << 8 | data[1]
        call.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        if self.call is not None:
            self.call.error_received(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.call is not None:
            self.call.connection_lost(exc)

    def attach(self, endpoint: T38Endpoint) -> None:
        """Put ``endpoint``'s call on this line (its peer known) and start it."""
        self.call = endpoint
        self.last_seq = -1
        endpoint.connection_made(_CallTransport(self, endpoint))  # type: ignore[arg-type]

    def detach(self, endpoint: T38Endpoint) -> None:
        if self.call is endpoint:
            self.call = None
            if endpoint.peer is not None and self.last_seq >= 0:
                self.straggler = _Straggler(endpoint.peer, self.last_seq, time.monotonic())

    def continues_last_call(self, data: bytes, addr: Address) -> bool:
        """Whether ``data`` from ``addr`` is a late datagram of the line's last call."""
        last = self.straggler
        if last is None or addr != last.peer or len(data) < 2:
            return False
        if time.monotonic() - last.ended > QUIET:
            self.straggler = None
            return False
        step = ((data[0] << 8 | data[1]) - last.seq) % 65536
        return step <= AHEAD or step >= 65536 - BEHIND


class T38Device:
    """Lines on local UDP ports calling static peers over T.38 (see the module notes).

    Options: ``lines`` (a list of ``{number, local}`` tables: the line's own number and
    the ``host:port`` it binds), ``peers`` (a table number -> ``host:port``), the T.38
    session's ``version``, ``error_correction``, ``redundancy``, ``fec_span``,
    ``fec_entries``, ``rate_management``, ``fill_bit_removal``, ``max_datagram``; ``ecm``
    (offered when answering), ``max_rate`` (bit/s), ``speed`` (see
    :mod:`fastfax.transport.t38`; the peers must run as fast).

    A line calls only the numbers in ``peers`` (not its own). A line set to receive
    answers the first peer that sends a well-formed UDPTL datagram to its port, unless
    the line is in a call of its own (a send takes the line first: the answering gives
    way). Datagrams late from a line's last call are not taken for a new one. An abort
    (of a send, or of a receive through ``Hooks.receiving``) ends a call with DCN, or
    drops it after :data:`ABORT_GRACE` s; :meth:`close` ends every call so.
    """

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigError(f"t38 device {name!r}: unknown option(s) {sorted(unknown)}")
        self.name = name
        lines = options.get("lines")
        if not isinstance(lines, list) or not lines:
            raise ConfigError(
                f"t38 device {name!r}: lines must be a list of {{ number, local }} tables"
            )
        peers = options.get("peers", {})
        if not isinstance(peers, dict):
            raise ConfigError(f"t38 device {name!r}: peers must be a table number = 'host:port'")
        self.peers = {
            _number(name, f"peers key {k!r}", k): _address(name, f"peers.{k}", v)
            for k, v in peers.items()
        }
        specs: list[tuple[str, Address]] = []
        for n, spec in enumerate(lines, 1):
            if not isinstance(spec, dict) or set(spec) != {"number", "local"}:
                raise ConfigError(f"t38 device {name!r}: lines[{n}] must be a table with "
                                  f"number and local, not {spec!r}")  # fmt: skip
            number = _number(name, f"lines[{n}].number", spec["number"])
            local = _address(name, f"lines[{n}].local", spec["local"], low=0)
            if local[1] and any(local == other for _, other in specs):
                raise ConfigError(f"t38 device {name!r}: lines[{n}].local {spec['local']!r} "
                                  "is another line's too")  # fmt: skip
            specs.append((number, local))
        for key in ("version", "redundancy", "fec_span", "fec_entries", "max_datagram",
                    "max_rate"):  # fmt: skip
            _check_number(name, options, key, int, 0, 65535)
        _check_number(name, options, "speed", float, 0.01, 1000)
        for key in ("fill_bit_removal", "ecm"):
            if not isinstance(options.get(key, False), bool):
                raise ConfigError(f"t38 device {name!r}: {key} must be true or false")
        self.ecm: bool = options.get("ecm", True)
        self.max_rate: int = options.get("max_rate", 14400)
        self.speed = float(options.get("speed", 1.0))
        self.udptl = {k: options[k] for k in ("redundancy", "fec_span", "fec_entries")
                      if k in options}  # fmt: skip
        try:
            self.params = T38Params(
                version=options.get("version", 0),
                error_correction=options.get("error_correction", "redundancy"),
                rate_management=options.get("rate_management", "transferredTCF"),
                fill_bit_removal=options.get("fill_bit_removal", False),
                max_datagram=options.get("max_datagram", 400),
                max_bit_rate=max(self.max_rate, 2400),
            )
            if self.params.version > 3:
                raise FaxError(f"version must be 0-3, not {self.params.version}")
            UdptlEncoder(error_correction=self.params.error_correction,
                         max_datagram=self.params.max_datagram or 400, **self.udptl)  # fmt: skip
            create(calling=False, ecm=self.ecm, max_rate=self.max_rate)
        except (FaxError, SessionError, ValueError) as exc:
            raise ConfigError(f"t38 device {name!r}: {exc}") from None
        self.lines = [Line(f"{name}/{n}", f"{name} line {n}", "t38", number)
                      for n, (number, _) in enumerate(specs, 1)]  # fmt: skip
        self._hooks: Hooks | None = None
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ports: dict[str, _LinePort] = {}
        sockets = []
        try:
            for line, (_, local) in zip(self.lines, specs, strict=True):
                sock = socket.socket(socket.AF_INET6 if ":" in local[0] else socket.AF_INET,
                                     socket.SOCK_DGRAM)  # fmt: skip
                sockets.append(sock)
                try:
                    sock.bind(local)
                except OSError as exc:
                    raise ConfigError(
                        f"t38 device {name!r}: {line.id} cannot bind {local[0]}:{local[1]}: "
                        f"{exc.strerror}"
                    ) from None
                sock.setblocking(False)
                self._ports[line.id] = _LinePort(self, line, local)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name=f"fastfax-t38-{name}", daemon=True)  # fmt: skip
        self._thread.start()
        self._run(self._open(sockets))

    # -- the loop -----------------------------------------------------------------------
    def _run(self, coro: Any) -> Any:
        """Run ``coro`` on the device's loop and wait for its value."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _open(self, sockets: list[socket.socket]) -> None:
        for port, sock in zip(self._ports.values(), sockets, strict=True):
            await self._loop.create_datagram_endpoint(lambda p=port: p, sock=sock)

    def _terminal(self, engine: Any, on_event: Any) -> T38Terminal:
        return T38Terminal(engine, params=self.params, speed=self.speed, on_event=on_event,
                           **self.udptl)  # fmt: skip

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the contract -------------------------------------------------------------------
    def start(self, hooks: Hooks) -> None:
        self._hooks = hooks  # answering begins: _ring looks at the hooks

    def can_reach(self, line_id: str, number: str) -> bool:
        """A line reaches the numbers in ``peers`` (of its own address family), never its
        own number."""
        port = self._ports.get(line_id)
        peer = self.peers.get(number)
        if port is None or peer is None or number == port.line.number:
            return False
        return (":" in peer[0]) == (":" in port.local[0])

    def send(self, line_id: str, call: Call, hooks: Hooks) -> Outcome:
        port = self._ports[line_id]
        hooks.status(line_id, DeviceState.DIALING, job_id=call.job_id, number=call.number)
        if not self.can_reach(line_id, call.number):
            return Outcome(DeviceState.BAD_ADDRESS, f"no peer has the number {call.number!r}")
        try:
            rate = min(call.max_rate or self.max_rate, self.max_rate)
            engine = create(calling=True, pages=call.pages, ecm=call.ecm, ident=call.tsid,
                            max_rate=rate)  # fmt: skip
        except (SessionError, FaxError, ValueError) as exc:
            return Outcome(DeviceState.FATAL_ERROR, f"{type(exc).__name__}: {exc}")

        def on_event(event: Any) -> None:
            if isinstance(event, Negotiated):
                hooks.status(line_id, DeviceState.SENDING, job_id=call.job_id,
                             total_pages=len(call.pages), remote_id=event.remote_id)  # fmt: skip
            elif isinstance(event, PageSent):
                hooks.status(line_id, DeviceState.SENDING, job_id=call.job_id,
                             current_page=event.number)  # fmt: skip

        terminal = self._terminal(engine, on_event)
        started: concurrent.futures.Future[T38Endpoint] = concurrent.futures.Future()
        try:
            future = asyncio.run_coroutine_threadsafe(
                self._place(port, terminal, self.peers[call.number], call.job_id, started),
                self._loop,
            )
        except RuntimeError:  # the loop is closed: the device was closed
            return Outcome(DeviceState.ABORTING, "the device is closed")
        aborted_at: float | None = None
        while True:
            try:
                result = future.result(timeout=0.05)
                break
            except concurrent.futures.TimeoutError:
                pass
            if (call.abort.is_set() or self._stopping) and started.done():
                endpoint = started.result()
                if aborted_at is None:
                    aborted_at = time.monotonic()
                    self._loop.call_soon_threadsafe(endpoint.cancel)
                elif time.monotonic() - aborted_at > ABORT_GRACE:
                    self._loop.call_soon_threadsafe(endpoint.close)
        if result is None:
            return Outcome(DeviceState.BUSY, f"{line_id} is in another call")
        if call.abort.is_set() and not result.ok:
            return Outcome(DeviceState.ABORTING, "aborted by a user", result)
        if result.ok:
            return Outcome(DeviceState.COMPLETED, "", result)
        return Outcome(_CALL_STATES.get(result.cause, DeviceState.FATAL_ERROR),
                       str(result.cause), result)  # fmt: skip

    async def _place(self, port: _LinePort, terminal: T38Terminal, peer: Address, job_id: int,
                     started: concurrent.futures.Future[T38Endpoint]) -> Result | None:  # fmt: skip
        """A send's call on ``port`` to ``peer``; None if the line is in a call."""
        if port.call is not None or port.transport is None:
            return None
        endpoint = T38Endpoint(terminal, peer=peer)
        port.job_id = job_id
        try:
            port.attach(endpoint)
            started.set_result(endpoint)
            return await endpoint.wait()
        finally:
            port.job_id = None
            endpoint.close()

    # -- answering ----------------------------------------------------------------------
    def _ring(self, port: _LinePort, data: bytes, addr: Address) -> None:
        """A datagram reached an idle line: answer it if the line receives (loop thread)."""
        hooks = self._hooks
        line = port.line.id
        if hooks is None or self._stopping or port.continues_last_call(data, addr):
            return
        try:
            decode_datagram(data)
        except FaxError:
            return
        if not hooks.settings(line)["receive"] or not hooks.claim(line):
            return  # not answering, or the line was given to a send
        abort = threading.Event()  # set by the service when a user aborts the receive
        try:
            receiving = getattr(hooks, "receiving", None)  # (a service of the contract's
            if receiving is not None:  # first version does not abort receives)
                receiving(line, abort)
            settings = hooks.settings(line)
            engine = create(calling=False, ecm=self.ecm, ident=settings["csid"],
                            max_rate=self.max_rate)  # fmt: skip

            def on_event(event: Any) -> None:
                if isinstance(event, Negotiated):
                    hooks.status(line, DeviceState.RECEIVING, remote_id=event.remote_id)
                elif isinstance(event, PageReceived):
                    hooks.status(line, DeviceState.RECEIVING, current_page=event.number)

            endpoint = T38Endpoint(self._terminal(engine, on_event), peer=addr)
            caller = self._caller(addr)
            hooks.status(line, DeviceState.RINGING, caller_id=caller)
            hooks.status(line, DeviceState.ANSWERED, caller_id=caller)
            port.attach(endpoint)
            port.last_seq = data[0] << 8 | data[1]
            endpoint.datagram_received(data, addr)
        except Exception:
            logging.getLogger(INBOUND_LOGGER).exception("%s: cannot answer %s", line, addr)
            if port.call is not None:
                port.call.close()
            hooks.release(line)
            return
        self._spawn(self._answered(port, endpoint, caller, hooks, abort))

    def _caller(self, addr: Address) -> str:
        """The number of the peer at ``addr``, else the address as ``host:port``."""
        for number, peer in self.peers.items():
            if peer == addr:
                return number
        return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"

    async def _answered(self, port: _LinePort, endpoint: T38Endpoint, caller: str,
                        hooks: Hooks, abort: threading.Event) -> None:  # fmt: skip
        """Wait for an answered call's end (ending it when ``abort`` is set); hand what
        arrived to the service."""
        line = port.line.id
        try:
            aborted_at: float | None = None
            while True:
                try:
                    result = await asyncio.wait_for(endpoint.wait(), ABORT_POLL)
                    break
                except TimeoutError:
                    pass
                if not abort.is_set():
                    continue
                if aborted_at is None:
                    aborted_at = self._loop.time()
                    endpoint.cancel()
                elif self._loop.time() - aborted_at > ABORT_GRACE:
                    endpoint.close()
            endpoint.close()
            if result.pages:  # a call that failed after some pages keeps them
                jobs = [p.job_id for p in self._ports.values() if p.local == endpoint.peer]
                await self._loop.run_in_executor(
                    None, hooks.received, line, result, caller, jobs[0] if jobs else None
                )
            elif not result.ok:
                logging.getLogger(INBOUND_LOGGER).warning(
                    "%s: a call from %s ended without a page: %s", line, caller, result.cause)
        except Exception:
            logging.getLogger(INBOUND_LOGGER).exception("%s: the answered call failed", line)
        finally:
            endpoint.close()
            hooks.release(line)

    # -- closing ------------------------------------------------------------------------
    def close(self) -> None:
        """End every call (DCN, then dropped after :data:`ABORT_GRACE` s), hand what was
        received to the service, close the sockets and stop the loop thread."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        try:
            self._run(self._close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    async def _close(self) -> None:
        calls = [p.call for p in self._ports.values() if p.call is not None]
        for endpoint in calls:
            endpoint.cancel()
        if calls:
            await asyncio.wait([asyncio.ensure_future(e.wait()) for e in calls],
                               timeout=ABORT_GRACE)  # fmt: skip
        for endpoint in calls:
            endpoint.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_WAIT)
        for port in self._ports.values():
            if port.transport is not None:
                port.transport.close()
        await self._loop.shutdown_default_executor()
