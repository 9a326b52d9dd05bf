"""The ``sip`` device kind: fax lines on a SIP trunk or proxy, the calls carried in T.38
(:mod:`fastfax.transport.sip` over :mod:`fastfax.sip.ua`).

One asyncio event loop thread per device runs one :class:`~fastfax.transport.sip.SipAgent`
(one signalling socket) for every call of its lines; ``channels`` is how many calls it
holds at once, each a line of the service. Outbound jobs place INVITEs from the worker
thread the service gives them; inbound INVITEs for the numbers it answers are taken on a
free line set to receive and their pages handed to :meth:`Hooks.received`.

TOML::

    [[devices]]
    kind = "sip"
    name = "trunk"
    local = "0.0.0.0:5080"         # our signalling address (port 0: any)
    transport = "UDP"              # or "TCP" (a listener on the same port); media is UDP
    contact_host = "192.0.2.10"    # the address peers reach us at, when local is 0.0.0.0
    registrar = "sip.example.net"  # registered with (and refreshed) when given
    proxy = "sip.example.net:5060" # every request goes through it, when given
    gateway = "192.0.2.1:5060"     # without proxy or registrar: numbers are dialled here
    domain = "example.net"         # the domain of our address of record and of numbers
    user = "gw"                    # our user (the account at the registrar)
    password_file = "/etc/fastfax/sip.pass"   # or password = "..."
    channels = 4                   # simultaneous calls (lines)
    numbers = ["2000", "2001"]     # the numbers it answers (empty: every INVITE)
    t38_mode = "reinvite"          # "reinvite", "direct" (T.38 in the INVITE) or "on-request"
    setup_timeout = 60             # seconds from INVITE to T.38 media before giving up
    session_expires = 1800         # RFC 4028 interval asked for (0: none)
    ecm = true                     # error correction offered when answering
    max_rate = 14400               # bit/s cap, both ways
    speed = 1.0                    # T.38 line clock speed-up (tests; the peer must match)

A job's number is dialled at the proxy or registrar (``sip:<number>@<domain>`` through
them), else as ``sip:<number>@<gateway>``, else at ``domain``; a SIP URI given directly
(the transport's API) is dialled as it is. SIP outcomes become device states: 486/600 ``BUSY``
(retried), 404/484/604 ``BAD_ADDRESS`` (never retried), 408/480 and no answer in
``setup_timeout`` ``NO_ANSWER`` (retried), 488/606 to our T.38 offer ``NOT_FAX_CALL``
("far end refused T.38", ``Outcome.refused``: not retried), 401/403/407 after our
credentials ``CALL_BLACKLISTED`` ("refused by trunk", not retried). The outcome's cause
is the SIP cause's text with the status, e.g. "refused by trunk (403)"; the result's
T.30 cause names it too (``BUSY``, ``BAD_ADDRESS``, ``NO_ANSWER``, ``NO_T38``,
``REFUSED``). Every bad field is a :class:`~fastfax.errors.ConfigError` naming it; the
password never appears in one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FaxError
from ..sip.message import SipError, SipUri, parse_address, parse_uri
from ..t30.events import Negotiated, PageReceived, PageSent
from ..t30.result import Cause
from ..transport.sip import IncomingFax, SipAgent, SipResult
from ..transport.sip import parse_address as parse_hostport
from .contract import INBOUND_LOGGER, Call, DeviceState, Hooks, Line, Outcome

__all__ = ["SipDevice"]

_NUMBER = re.compile(r"[0-9A-Za-z+*#._~-]{1,64}")

#: The device state of a call that ended on the SIP side before any fax, by SIP cause.
_SIP_STATES = {
    "busy": DeviceState.BUSY,
    "bad_address": DeviceState.BAD_ADDRESS,
    "no_answer": DeviceState.NO_ANSWER,
    "no_t38": DeviceState.NOT_FAX_CALL,
    "refused_by_trunk": DeviceState.CALL_BLACKLISTED,
    "session_expired": DeviceState.DISCONNECTED,
    "normal": DeviceState.DISCONNECTED,
}

_KNOWN = {"local", "transport", "contact_host", "registrar", "proxy", "gateway", "domain",
          "user", "password", "password_file", "channels", "numbers", "t38_mode", "setup_timeout",
          "session_expires", "ecm", "max_rate", "speed", "register_retry"}


def outcome_of(result: SipResult, aborted: bool = False) -> Outcome:
    """The :class:`Outcome` of a SIP fax call's :class:`SipResult`."""
    if result.ok:
        return Outcome(DeviceState.COMPLETED, "", result)
    if aborted:
        return Outcome(DeviceState.ABORTING, "aborted by a user", result)
    sip = result.sip
    if sip is not None and result.rate == 0 and not result.pages:
        status = f" ({sip.status})" if sip.status else ""
        state = _SIP_STATES.get(sip.name, DeviceState.FATAL_ERROR)
        return Outcome(state, sip.text + status, result, refused=sip.name == "no_t38")
    if result.cause is Cause.CALLDROPPED:
        return Outcome(DeviceState.DISCONNECTED, str(result.cause), result)
    return Outcome(DeviceState.FATAL_ERROR, str(result.cause), result)


class SipDevice:
    """A SIP user agent with ``channels`` fax lines (see the module documentation)."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        unknown = set(options) - _KNOWN
        if unknown:
            raise ConfigError(f"sip device {name!r}: unknown option(s) {sorted(unknown)}")
        self.name = name

        def address(field: str, default_port: int) -> tuple[str, int] | None:
            value = options.get(field)
            if value is None:
                return None
            try:
                return parse_hostport(value, default_port)
            except (FaxError, TypeError, ValueError):
                raise ConfigError(f"sip device {name!r}: {field} must be 'host:port', "
                                  f"not {value!r}") from None

        self.local = address("local", 5080) or ("0.0.0.0", 5080)
        self.registrar = address("registrar", 5060)
        self.proxy = address("proxy", 5060)
        self.gateway = address("gateway", 5060)
        for field in ("contact_host", "domain", "user"):
            value = options.get(field)
            if value is not None and (not isinstance(value, str) or not value
                                      or any(c in value for c in " \t\r\n<>\"")):
                raise ConfigError(f"sip device {name!r}: {field} must be a plain string")
        self.contact_host = options.get("contact_host")
        self.domain = options.get("domain")
        self.user = options.get("user", "fastfax")
        self.password = self._password(name, options)
        channels = options.get("channels", 1)
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 1000:
            raise ConfigError(f"sip device {name!r}: channels must be 1-1000")
        numbers = options.get("numbers", [])
        if not isinstance(numbers, list) or not all(
                isinstance(n, str) and _NUMBER.fullmatch(n) for n in numbers):
            raise ConfigError(f"sip device {name!r}: numbers must be a list of numbers "
                              "(digits, letters, + * # . _ ~ -)")
        self.numbers = set(numbers)
        self.transport = options.get("transport", "UDP")
        if self.transport not in ("UDP", "TCP", "udp", "tcp"):
            raise ConfigError(f"sip device {name!r}: transport must be UDP or TCP")
        self.t38_mode = options.get("t38_mode", "reinvite")
        if self.t38_mode not in ("reinvite", "direct", "on-request"):
            raise ConfigError(f"sip device {name!r}: t38_mode must be reinvite, direct or "
                              "on-request")
        self.setup_timeout = self._number(name, options, "setup_timeout", 60.0, 1, 600)
        self.speed = self._number(name, options, "speed", 1.0, 0.01, 1000)
        self.register_retry = self._number(name, options, "register_retry", 60.0, 0.1, 3600)
        session = self._number(name, options, "session_expires", 1800, 0, 86400)
        if session and session < 90:
            raise ConfigError(f"sip device {name!r}: session_expires is 0 or at least 90")
        self.session_expires = int(session) or None
        self.max_rate = int(self._number(name, options, "max_rate", 14400, 2400, 14400))
        ecm = options.get("ecm", True)
        if not isinstance(ecm, bool):
            raise ConfigError(f"sip device {name!r}: ecm must be true or false")
        self.ecm = ecm
        first = numbers[0] if numbers else ""
        self.lines = [Line(f"{name}/{k + 1}", f"{name} channel {k + 1}", "sip", first)
                      for k in range(channels)]
        self._hooks: Hooks | None = None
        self._agent: SipAgent | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @staticmethod
    def _password(name: str, options: dict[str, Any]) -> str | None:
        if "password" in options and "password_file" in options:
            raise ConfigError(f"sip device {name!r}: give password or password_file, not both")
        if "password_file" in options:
            path = options["password_file"]
            if not isinstance(path, str):
                raise ConfigError(f"sip device {name!r}: password_file must be a path")
            try:
                return Path(path).read_text().strip("\r\n")
            except OSError as exc:
                raise ConfigError(f"sip device {name!r}: cannot read password_file "
                                  f"{path!r}: {exc.strerror}") from None
        password = options.get("password")
        if password is not None and not isinstance(password, str):
            raise ConfigError(f"sip device {name!r}: password must be a string")
        return password

    @staticmethod
    def _number(name: str, options: dict[str, Any], field: str, default: float,
                low: float, high: float) -> float:
        value = options.get(field, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not low <= value <= high:
            raise ConfigError(f"sip device {name!r}: {field} must be a number {low}-{high}")
        return float(value)

    # -- the loop thread ---------------------------------------------------------------------
    def start(self, hooks: Hooks) -> None:
        self._hooks = hooks
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name=f"fastfax-sip-{self.name}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise ConfigError(f"sip device {self.name!r}: cannot start: {self._error}")

    def _run_loop(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._open())
        except (OSError, FaxError) as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _open(self) -> None:
        agent = SipAgent(self.local, contact_host=self.contact_host, password=self.password,
                         registrar=self.registrar, proxy=self.proxy, user=self.user,
                         t38_mode=self.t38_mode, session_expires=self.session_expires,
                         transport=self.transport.upper(),
                         max_calls=2 * len(self.lines), **({"domain": self.domain}
                                                           if self.domain else {}))
        await agent.start()
        self._agent = agent
        self._spawn(self._accept())
        if self.registrar is not None:
            self._spawn(self._register())

    def _spawn(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _register(self) -> None:
        assert self._agent is not None and self._hooks is not None
        log = logging.getLogger(INBOUND_LOGGER)
        while True:
            try:
                await self._agent.register()
                return  # the user agent refreshes it from now on
            except FaxError as exc:
                log.error("%s: %s", self.name, exc)
                for line in self.lines:
                    self._hooks.status(line.id, DeviceState.OFFLINE)
            await asyncio.sleep(self.register_retry)
            for line in self.lines:
                self._hooks.status(line.id, DeviceState.AVAILABLE)

    # -- answering -----------------------------------------------------------------------------
    async def _accept(self) -> None:
        assert self._agent is not None
        while True:
            call = await self._agent.next_call()
            if call is not None:
                self._spawn(self._take(call))

    def _answers(self, callee: str) -> bool:
        if not self.numbers:
            return True
        uri = _uri_of(callee)
        return uri is not None and uri.user in self.numbers

    async def _take(self, call: IncomingFax) -> None:
        agent, hooks, loop = self._agent, self._hooks, self._loop
        assert agent is not None and hooks is not None and loop is not None
        if not self._answers(call.callee):
            agent.reject(call, 404)
            return
        line = next((ln.id for ln in self.lines
                     if hooks.settings(ln.id)["receive"] and hooks.claim(ln.id)), None)
        if line is None:
            agent.reject(call, 486)
            return
        caller = _user(call.caller)
        try:
            abort = threading.Event()
            hooks.receiving(line, abort)
            settings = hooks.settings(line)
            hooks.status(line, DeviceState.RINGING, caller_id=caller)
            hooks.status(line, DeviceState.ANSWERED, caller_id=caller)

            def on_event(event: Any) -> None:
                if isinstance(event, Negotiated):
                    hooks.status(line, DeviceState.RECEIVING, remote_id=event.remote_id)
                elif isinstance(event, PageReceived):
                    hooks.status(line, DeviceState.RECEIVING, current_page=event.number)

            result = await agent.answer(call, speed=self.speed, setup_timeout=self.setup_timeout,
                                        on_event=on_event, abort=abort.is_set,
                                        ident=settings.get("csid", ""), ecm=self.ecm,
                                        max_rate=self.max_rate)
            if result.pages:
                await loop.run_in_executor(None, hooks.received, line, result, caller)
        except Exception:  # one call's failure must not stop the device
            logging.getLogger(INBOUND_LOGGER).exception("%s: inbound call failed", line)
        finally:
            hooks.release(line)

    # -- sending --------------------------------------------------------------------------------
    def can_reach(self, line_id: str, number: str) -> bool:
        """A SIP URI is dialled as it is; a plain number needs a proxy, registrar, gateway
        or domain to be dialled at."""
        return self._target(number) is not None

    def _target(self, number: str) -> str | None:
        if not isinstance(number, str):
            return None
        if number.lower().startswith(("sip:", "sips:")):
            try:
                parse_uri(number, allow_headers=False)
            except SipError:
                return None
            return number
        if not _NUMBER.fullmatch(number):
            return None
        if self.proxy is not None or self.registrar is not None:
            return number
        if self.gateway is not None:
            host, port = self.gateway
            host = f"[{host}]" if ":" in host else host
            return f"sip:{number}@{host}:{port}"
        return None if self.domain is None else f"sip:{number}@{self.domain}"

    def send(self, line_id: str, call: Call, hooks: Hooks) -> Outcome:
        target = self._target(call.number)
        if target is None:
            return Outcome(DeviceState.BAD_ADDRESS, f"cannot dial {call.number!r} over SIP")
        if self._loop is None or self._agent is None:
            return Outcome(DeviceState.OFFLINE, "the SIP device is not started")
        hooks.status(line_id, DeviceState.DIALING, job_id=call.job_id, number=call.number)

        def on_event(event: Any) -> None:
            if isinstance(event, Negotiated):
                hooks.status(line_id, DeviceState.SENDING, job_id=call.job_id,
                             total_pages=len(call.pages), remote_id=event.remote_id)
            elif isinstance(event, PageSent):
                hooks.status(line_id, DeviceState.SENDING, job_id=call.job_id,
                             current_page=event.number)

        rate = min(call.max_rate or self.max_rate, self.max_rate)
        future = asyncio.run_coroutine_threadsafe(
            self._agent.send(target, call.pages, speed=self.speed,
                             setup_timeout=self.setup_timeout, on_event=on_event,
                             abort=call.abort.is_set, ident=call.tsid, ecm=call.ecm,
                             max_rate=rate), self._loop)
        try:
            result = future.result()
        except concurrent.futures.CancelledError:
            return Outcome(DeviceState.ABORTING, "the device closed during the call")
        except FaxError as exc:
            return Outcome(DeviceState.FATAL_ERROR, f"{type(exc).__name__}: {exc}")
        return outcome_of(result, call.abort.is_set())

    def close(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def shut() -> None:
            for task in list(self._tasks):
                task.cancel()
            if self._agent is not None:
                self._agent.close()

        if self._thread is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(shut(), loop).result(10)
            except (concurrent.futures.TimeoutError, RuntimeError):
                pass
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)
        if not loop.is_running():
            loop.close()


def _uri_of(address: str) -> SipUri | None:
    """The SIP URI of a header value (``<sip:...>;tag=...``) or of a bare URI."""
    try:
        uri = parse_address(address).uri if "<" in address else parse_uri(address)
    except SipError:
        return None
    return uri if isinstance(uri, SipUri) else None


def _user(address: str) -> str:
    """The user part of a SIP address (the caller's number), else the address."""
    uri = _uri_of(address)
    return uri.user if uri is not None and uri.user else address
