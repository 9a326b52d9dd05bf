"""The SIP user agent core for fax calls, sans-I/O.

:class:`UserAgent` registers with a registrar, places and answers calls and switches them
to T.38. It owns the transactions (:mod:`.transaction`), dialogs (:mod:`.dialog`),
digest authentication (:mod:`.auth`) and offer/answer (:mod:`.sdp`); it does no I/O and
reads no clock. Its owner (a transport) feeds it:

- :meth:`UserAgent.receive` ``(data, source, now)``: a datagram (or one framed TCP
  message) from ``source`` = (host, port);
- :meth:`UserAgent.timer` ``(key, now)``: a timer it asked for came due;
- commands: :meth:`register`, :meth:`invite`, :meth:`ring`, :meth:`answer`,
  :meth:`reject`, :meth:`request_t38`, :meth:`hangup`;

and carries out the returned actions in order: :class:`Transmit` (bytes to an address;
hosts are as configured or as seen, name resolution is the owner's), :class:`SetTimer` /
:class:`ClearTimer` (absolute deadlines in the owner's clock, seconds), and the events
for the owner: :class:`Registered`, :class:`RegistrationFailed`, :class:`IncomingCall`,
:class:`CallProgress`, :class:`CallAnswered`, :class:`MediaReady` (where the peer's T.38
or audio packets go and with which parameters), :class:`CallEnded` (with a
:class:`Cause` from :data:`CAUSES`).

Behaviour a fax gateway needs:

- T.38 by re-INVITE (``t38_mode="reinvite"``: as soon as a call is up; ``"on-request"``:
  when the owner calls :meth:`request_t38`, e.g. on detecting a fax tone), or offered
  directly in the first INVITE (``"direct"``). A re-INVITE to T.38 from the far end is
  accepted. A 488/606 (or a port-0 answer) to our T.38 offer ends the call with the
  cause ``no_t38`` ("far end refused T.38") and a BYE: never a hanging call.
- Re-INVITE glare (RFC 3261 14.1): a re-INVITE arriving while ours is pending is
  answered 491 Request Pending; a 491 to ours is retried after a random 2.1-4 s when we
  placed the call (we own its Call-ID), else 0-2 s, unless the far end's re-INVITE has
  switched the call to T.38 meanwhile.
- Session timers (RFC 4028): refresh re-INVITEs carry the unchanged session description
  (same o= version, same ports and T.38 parameters, RFC 3264 section 8), so the fax
  media is not disturbed; an unrefreshed session is ended with a BYE.
- ``rport`` (RFC 3581) in our Via; responses go to ``received``/``rport`` of the request.
- Once registered with a trunk, requests from any other source than the registrar, the
  proxy and ``trusted`` hosts are answered 403 (RFC 3261 section 26.3: a UA may refuse
  requests it does not trust). OPTIONS is answered 200 with Allow and Accept; other
  known methods get 405, unknown ones 501; unparseable messages are dropped and
  malformed requests answered 400.
- Passwords are held in :class:`~fastfax.sip.auth.Credentials` and never shown.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..t38.sdp import T38Params
from . import auth
from . import sdp as sdpmod
from .dialog import Dialog, DialogState, SessionTimer
from .message import (
    Request,
    Response,
    SipError,
    SipUri,
    Via,
    canonical_name,
    number,
    parse,
    parse_address,
    parse_uri,
    split_list,
)
from .transaction import (
    AckReceived,
    ClientInvite,
    ClientNonInvite,
    Deliver,
    Received,
    Respond,
    Send,
    ServerInvite,
    ServerNonInvite,
    StartTimer,
    State,
    StopTimer,
    TimedOut,
    TimerFired,
    Timers,
    Transaction,
)

__all__ = [
    "UaConfig", "UserAgent", "Cause", "CAUSES", "cause_for_status", "Transmit", "SetTimer",
    "ClearTimer", "Registered", "RegistrationFailed", "IncomingCall", "CallProgress",
    "CallAnswered", "MediaReady", "CallEnded", "ALLOW", "CallState", "Datagram", "TimerExpired",
]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
_KNOWN_METHODS = {"REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER",
                  "MESSAGE", "UPDATE"}


# --- causes --------------------------------------------------------------------------

@dataclass(frozen=True)
class Cause:
    """Why a call ended: a stable ``name``, whether the job may be ``retry``-ed, a text,
    and the SIP status that caused it (``None`` when none did)."""

    name: str
    retry: bool
    text: str
    status: int | None = None

    def with_status(self, status: int | None) -> Cause:
        return Cause(self.name, self.retry, self.text, status)


#: The causes a call or registration ends with; the service maps them to its own.
CAUSES = {
    "normal": Cause("normal", False, "call completed"),
    "busy": Cause("busy", True, "busy"),
    "bad_address": Cause("bad_address", False, "bad address"),
    "no_answer": Cause("no_answer", True, "no answer"),
    "no_t38": Cause("no_t38", False, "far end refused T.38"),
    "refused_by_trunk": Cause("refused_by_trunk", False, "refused by trunk"),
    "canceled": Cause("canceled", False, "call canceled"),
    "caller_canceled": Cause("caller_canceled", False,
                             "the caller hung up (CANCEL) before we answered"),
    "session_expired": Cause("session_expired", True, "session timer expired"),
    "failed": Cause("failed", True, "call failed"),
}
_STATUS_CAUSE = {
    486: "busy", 600: "busy",
    404: "bad_address", 484: "bad_address", 604: "bad_address", 410: "bad_address",
    416: "bad_address",
    408: "no_answer", 480: "no_answer", 487: "canceled",
    488: "no_t38", 606: "no_t38",
    401: "refused_by_trunk", 403: "refused_by_trunk", 407: "refused_by_trunk",
}


def cause_for_status(status: int) -> Cause:
    """The :class:`Cause` of a final SIP ``status`` ending a call (401/407: after auth)."""
    return CAUSES[_STATUS_CAUSE.get(status, "failed")].with_status(status)


# --- actions -------------------------------------------------------------------------

@dataclass(frozen=True)
class Transmit:
    """Send ``data`` to ``destination`` (host, port) over the configured transport."""

    data: bytes
    destination: tuple[str, int]


@dataclass(frozen=True)
class SetTimer:
    """Call :meth:`UserAgent.timer` with ``key`` at ``deadline`` (owner's clock, s)."""

    key: tuple[Any, ...]
    deadline: float


@dataclass(frozen=True)
class ClearTimer:
    key: tuple[Any, ...]


@dataclass(frozen=True)
class Registered:
    expires: int


@dataclass(frozen=True)
class RegistrationFailed:
    cause: Cause


@dataclass(frozen=True)
class IncomingCall:
    call_id: str
    caller: str
    callee: str
    offers_t38: bool
    source: tuple[str, int]


@dataclass(frozen=True)
class CallProgress:
    call_id: str
    status: int
    reason: str


@dataclass(frozen=True)
class CallAnswered:
    call_id: str


@dataclass(frozen=True)
class MediaReady:
    """The peer's media: ``kind`` ``"t38"`` (``params`` agreed) or ``"audio"`` (``codec``),
    its ``address`` and ``port``, and our ``local_port``."""

    call_id: str
    kind: str
    address: str
    port: int
    local_port: int
    params: T38Params | None = None
    codec: str | None = None


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    cause: Cause


@dataclass(frozen=True)
class Datagram:
    """Event: ``data`` arrived from ``source`` (host, port)."""

    data: bytes
    source: tuple[str, int]


@dataclass(frozen=True)
class TimerExpired:
    """Event: the timer set with ``key`` came due."""

    key: tuple[Any, ...]


Action = Transmit | SetTimer | ClearTimer | Registered | RegistrationFailed | IncomingCall \
    | CallProgress | CallAnswered | MediaReady | CallEnded


# --- configuration ---------------------------------------------------------------------

@dataclass(frozen=True)
class UaConfig:
    """What the user agent is: its address, account, trunk and media preferences.

    ``host``/``port``: the address peers reach us at (written in Via and Contact; not
    ``0.0.0.0``, which is only for the owner's socket). ``registrar`` and
    ``proxy``: (host, port) or ``None``; with a proxy every request goes through it.
    ``t38_mode``: ``"reinvite"``, ``"on-request"`` or ``"direct"`` (see the module
    documentation). ``session_expires``: the RFC 4028 interval we ask for (``None``:
    none). ``trusted``: extra hosts allowed to send us requests once registered.
    ``max_calls``: calls held at once; a further INVITE is answered 486 Busy Here.
    """

    host: str
    port: int = 5060
    transport: str = "UDP"
    user: str = "fastfax"
    domain: str | None = None
    credentials: auth.Credentials | None = None
    registrar: tuple[str, int] | None = None
    proxy: tuple[str, int] | None = None
    register_expires: int = 3600
    audio_port: int = 0
    t38_port: int = 0
    media_host: str | None = None
    t38: T38Params = field(default_factory=lambda: T38Params(
        version=0, max_bit_rate=14400, max_buffer=2000, max_datagram=400,
        error_correction="redundancy"))
    t38_mode: str = "reinvite"
    session_expires: int | None = 1800
    min_se: int = 90
    trusted: tuple[str, ...] = ()
    max_calls: int = 64
    timers: Timers = Timers()
    user_agent: str = "fastfax"

    def __post_init__(self) -> None:
        if self.t38_mode not in ("reinvite", "on-request", "direct"):
            raise SipError(f"t38_mode must be reinvite, on-request or direct, not "
                           f"{self.t38_mode!r}", None)
        if self.transport.upper() not in ("UDP", "TCP"):
            raise SipError(f"transport must be UDP or TCP, not {self.transport!r}", None)


# --- calls -----------------------------------------------------------------------------

def _key(tx: Transaction) -> tuple[str, str, str]:
    """A transaction's key in the UA: role (``c`` client, ``s`` server), branch, method."""
    role = "s" if isinstance(tx, ServerInvite | ServerNonInvite) else "c"
    return (role, *tx.key)


class CallState(enum.Enum):
    """Where a call is: INVITE sent or received (CALLING), a provisional response with a
    tag seen (EARLY, RINGING for 180), established (UP), over (ENDED)."""

    CALLING = "calling"
    EARLY = "early"
    RINGING = "ringing"
    UP = "up"
    ENDED = "ended"


@dataclass
class _Call:
    call_id: str
    outbound: bool
    invite: Request
    local_tag: str
    audio_port: int
    t38_port: int
    dialog: Dialog | None = None
    tx: Transaction | None = None
    state: CallState = CallState.CALLING
    media: str | None = None
    local_sdp: sdpmod.SessionDescription | None = None
    remote_sdp: sdpmod.SessionDescription | None = None
    sdp_version: int = 1
    reinvite: ClientInvite | None = None
    reinvite_t38: bool = False
    server_reinvite: ServerInvite | None = None
    timer: SessionTimer | None = None
    auth_tries: int = 0
    nc: int = 0
    cancel_wanted: bool = False
    cancel_sent: bool = False
    source: tuple[str, int] | None = None
    cause: Cause | None = None
    acks: dict[tuple[int, str], tuple[bytes, tuple[str, int]]] = field(default_factory=dict)


class UserAgent:
    """A sans-I/O SIP user agent for fax; see the module documentation.

    ``token`` makes the random parts (tags, branches, Call-IDs, cnonces): a callable
    returning a fresh URL-safe string (default :func:`secrets.token_hex`).
    """

    def __init__(self, config: UaConfig, *, token: Callable[[], str] | None = None):
        self.config = config
        self._token = token or (lambda: secrets.token_hex(8))
        self._reliable = config.transport.upper() == "TCP"
        self._tx: dict[tuple[str, str, str], Transaction] = {}
        self._tx_dest: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._tx_user: dict[tuple[str, str, str], Callable[[Any, float, list[Action]], None]] = {}
        self.calls: dict[str, _Call] = {}
        self.registered = False
        self._reg_call_id = self._token() + "@" + config.host
        self._reg_cseq = 0
        self._reg_tag = self._token()
        self._reg_auth_tries = 0
        self._reg_challenge: auth.Challenge | None = None
        self._reg_nc = 0
        self.public: tuple[str, int] | None = None

    def __repr__(self) -> str:
        return (f"<UserAgent {self.config.user}@{self.config.host}:{self.config.port} "
                f"calls={len(self.calls)} registered={self.registered}>")

    # --- helpers -------------------------------------------------------------------

    @property
    def _domain(self) -> str:
        if self.config.domain:
            return self.config.domain
        if self.config.registrar:
            return self.config.registrar[0]
        return self.config.host

    def _contact(self) -> str:
        host, port = self.public or (self.config.host, self.config.port)
        transport = ";transport=tcp" if self._reliable else ""
        return f"<sip:{self.config.user}@{host}:{port}{transport}>"

    def _via(self) -> str:
        branch = "z9hG4bK" + self._token()
        return (f"SIP/2.0/{self.config.transport.upper()} {self.config.host}:{self.config.port}"
                f";branch={branch};rport")

    def _media_host(self) -> str:
        return self.config.media_host or self.config.host

    def _destination(self, uri: SipUri, routes: list[str] | None = None) -> tuple[str, int]:
        if self.config.proxy:
            return self.config.proxy
        if routes:
            first = parse_address(routes[0]).uri
            if isinstance(first, SipUri):
                uri = first
        host, port = uri.hostport
        if "maddr" in uri.params and uri.params["maddr"]:
            host = uri.params["maddr"] or host
        return host, port or (5061 if uri.scheme == "sips" else 5060)

    def _start_client(self, tx: ClientInvite | ClientNonInvite, dest: tuple[str, int],
                      user: Callable[[Any, float, list[Action]], None], now: float,
                      out: list[Action]) -> None:
        self._tx[_key(tx)] = tx
        self._tx_dest[_key(tx)] = dest
        self._tx_user[_key(tx)] = user
        self._apply(tx, tx.start(now), now, out)

    def _apply(self, tx: Transaction, actions: list, now: float, out: list[Action]) -> None:
        key = _key(tx)
        for action in actions:
            if isinstance(action, Send):
                dest = self._tx_dest.get(key)
                if dest is not None:
                    out.append(Transmit(action.data, dest))
            elif isinstance(action, StartTimer):
                out.append(SetTimer(("tx", key, action.name), action.deadline))
            elif isinstance(action, StopTimer):
                out.append(ClearTimer(("tx", key, action.name)))
            elif isinstance(action, Deliver):
                user = self._tx_user.get(key)
                if user is not None:
                    user(action.response, now, out)
            elif isinstance(action, TimedOut):
                user = self._tx_user.get(key)
                if user is not None:
                    user(None, now, out)
        if tx.terminated and self._tx.get(key) is tx:
            del self._tx[key]
            self._tx_dest.pop(key, None)
            self._tx_user.pop(key, None)

    def _new_request(self, method: str, uri: SipUri, headers: list[tuple[str, str]],
                     body: bytes = b"") -> Request:
        request = Request(method, uri, [("Via", self._via()), *headers], body)
        request.set("User-Agent", self.config.user_agent)
        return request

    # --- registration --------------------------------------------------------------

    def register(self, now: float, *, expires: int | None = None) -> list[Action]:
        """Send a REGISTER to the registrar (``expires`` 0 unregisters)."""
        if self.config.registrar is None:
            raise SipError("no registrar configured", None)
        out: list[Action] = []
        self._send_register(now, self.config.register_expires if expires is None else expires,
                            out)
        return out

    def _send_register(self, now: float, expires: int, out: list[Action]) -> None:
        self._reg_cseq += 1
        aor = f"<sip:{self.config.user}@{self._domain}>"
        uri = SipUri(self._domain)
        headers = [("Max-Forwards", "70"), ("From", f"{aor};tag={self._reg_tag}"), ("To", aor),
                   ("Call-ID", self._reg_call_id), ("CSeq", f"{self._reg_cseq} REGISTER"),
                   ("Contact", self._contact()), ("Expires", str(expires)), ("Allow", ALLOW)]
        request = self._new_request("REGISTER", uri, headers)
        if self._reg_challenge is not None and self.config.credentials is not None:
            self._reg_nc += 1
            self._add_auth(request, self._reg_challenge, self._reg_nc, self._reg_header)
        tx = ClientNonInvite(request, reliable=self._reliable, timers=self.config.timers)

        def user(response: Response | None, now: float, out: list[Action]) -> None:
            self._on_register_response(request, expires, response, now, out)

        assert self.config.registrar is not None
        self._start_client(tx, self.config.proxy or self.config.registrar, user, now, out)

    _reg_header = "Authorization"

    def _add_auth(self, request: Request, challenge: auth.Challenge, nc: int,
                  header: str) -> None:
        assert self.config.credentials is not None
        value = auth.authorization(challenge, self.config.credentials, request.method,
                                   str(request.uri), cnonce=self._token(), nc=nc)
        request.set(header, value)

    def _challenge_of(self, response: Response) -> tuple[auth.Challenge | None, str]:
        if response.status == 407:
            return auth.choose(response.get_all("Proxy-Authenticate")), "Proxy-Authorization"
        return auth.choose(response.get_all("WWW-Authenticate")), "Authorization"

    def _learn_public(self, response: Response) -> None:
        try:
            via = response.vias[0]
        except (SipError, IndexError):
            return
        received = via.params.get("received")
        rport = via.params.get("rport")
        if received or rport:
            port = number(rport, maximum=65535) or self.config.port
            self.public = (received or self.config.host, port)

    def _on_register_response(self, request: Request, expires: int,
                              response: Response | None, now: float, out: list[Action]) -> None:
        if response is None:
            self.registered = False
            out.append(RegistrationFailed(cause_for_status(408)))
            out.append(SetTimer(("register",), now + 60))
            return
        code = response.status
        if code < 200:
            return
        if code in (401, 407) and self.config.credentials is not None:
            challenge, header = self._challenge_of(response)
            if challenge is not None and (self._reg_auth_tries == 0 or challenge.stale):
                self._reg_auth_tries += 1
                self._reg_challenge, self._reg_header, self._reg_nc = challenge, header, 0
                self._send_register(now, expires, out)
                return
        minimum = number(response.get("Min-Expires"), digits=9)
        if code == 423 and minimum is not None:
            if expires < minimum <= 86400:
                self._send_register(now, minimum, out)
                return
        self._reg_auth_tries = 0
        if code >= 300:
            self.registered = False
            out.append(RegistrationFailed(cause_for_status(code)))
            if code >= 500 or code == 408:
                out.append(SetTimer(("register",), now + 60))
            return
        self._learn_public(response)
        granted = expires
        for contact in response.contacts:
            value = contact.params.get("expires")
            if number(value, digits=9) is not None:
                granted = number(value, digits=9) or 0
                break
        else:
            header = response.get("Expires")
            if number(header, digits=9) is not None:
                granted = number(header, digits=9) or 0
        self.registered = expires > 0
        out.append(Registered(granted if expires else 0))
        if expires > 0 and granted > 0:
            out.append(SetTimer(("register",), now + granted - min(granted / 2, 60)))

    # --- calls: outbound -----------------------------------------------------------

    def invite(self, target: str, now: float, *, audio_port: int | None = None,
               t38_port: int | None = None) -> tuple[str, list[Action]]:
        """Place a call to ``target`` (a SIP URI, or a user at the registrar's domain).

        Returns the call's id (its Call-ID) and the actions. The offer is audio, or T.38
        alone with ``t38_mode="direct"``.
        """
        if target.lower().startswith(("sip:", "sips:")):
            uri = parse_uri(target, allow_headers=False)
        else:
            uri = SipUri(self._domain, target)
        call_id = self._token() + "@" + self.config.host
        tag = self._token()
        call = _Call(call_id, True, Request("INVITE", uri), tag,
                     self.config.audio_port if audio_port is None else audio_port,
                     self.config.t38_port if t38_port is None else t38_port)
        if self.config.session_expires:
            call.timer = SessionTimer(self.config.session_expires, self.config.min_se, True)
        call.local_sdp = self._initial_offer(call, now)
        self.calls[call_id] = call
        out: list[Action] = []
        self._send_invite(call, 1, now, out)
        return call_id, out

    def _initial_offer(self, call: _Call, now: float) -> sdpmod.SessionDescription:
        if self.config.t38_mode == "direct":
            media = [sdpmod.t38_media(call.t38_port, self.config.t38)]
        else:
            media = [sdpmod.audio_media(call.audio_port, telephone_event=True)]
        return sdpmod.offer(self._media_host(), media, session_id=int(now) + 1)

    def _send_invite(self, call: _Call, cseq: int, now: float, out: list[Action],
                     challenge: tuple[auth.Challenge, str] | None = None) -> None:
        assert call.local_sdp is not None
        uri = call.invite.uri
        headers = [("Max-Forwards", "70"),
                   ("From", f"<sip:{self.config.user}@{self._domain}>;tag={call.local_tag}"),
                   ("To", f"<{uri}>"), ("Call-ID", call.call_id), ("CSeq", f"{cseq} INVITE"),
                   ("Contact", self._contact()), ("Allow", ALLOW)]
        if call.timer is not None:
            headers += call.timer.request_headers()
        headers.append(("Content-Type", "application/sdp"))
        request = self._new_request("INVITE", uri, headers, bytes(call.local_sdp))
        if challenge is not None:
            call.nc += 1
            self._add_auth(request, challenge[0], call.nc, challenge[1])
        call.invite = request
        tx = ClientInvite(request, reliable=self._reliable, timers=self.config.timers)
        call.tx = tx

        def user(response: Response | None, now: float, out: list[Action]) -> None:
            self._on_invite_response(call, tx, response, now, out)

        self._start_client(tx, self._destination(uri), user, now, out)

    def _on_invite_response(self, call: _Call, tx: ClientInvite, response: Response | None,
                            now: float, out: list[Action]) -> None:
        if call.state == CallState.ENDED:
            if response is not None and 200 <= response.status < 300:
                self._ack_and_bye(call, tx, response, now, out)
            elif response is not None and response.status < 200 and call.cancel_wanted:
                self._send_cancel(call, now, out)
            return
        if response is None:
            self._end(call, cause_for_status(408), now, out)
            return
        code = response.status
        if code < 200:
            if code > 100 and response.to.tag and call.dialog is None:
                try:
                    call.dialog = Dialog.as_caller(tx.request, response)
                except SipError:
                    pass
            if code > 100:
                call.state = CallState.RINGING if code == 180 else CallState.EARLY
                out.append(CallProgress(call.call_id, code, response.reason))
            return
        if code < 300:
            if tx.state is State.ACCEPTED and call.state == CallState.UP:
                if call.dialog is not None and response.to.tag == call.dialog.remote_tag:
                    self._ack(call, response, out)
                else:
                    self._ack_and_bye(call, tx, response, now, out)
                return
            self._on_invite_ok(call, tx, response, now, out)
            return
        if code in (401, 407) and self.config.credentials is not None and call.auth_tries == 0:
            challenge, header = self._challenge_of(response)
            if challenge is not None:
                call.auth_tries += 1
                call.nc = 0
                self._send_invite(call, tx.request.cseq[0] + 1, now, out, (challenge, header))
                return
        if code == 422 and call.timer is not None and call.timer.on_422(response):
            self._send_invite(call, tx.request.cseq[0] + 1, now, out)
            return
        self._end(call, cause_for_status(code), now, out, bye=False)

    def _on_invite_ok(self, call: _Call, tx: ClientInvite, response: Response, now: float,
                      out: list[Action]) -> None:
        try:
            dialog = Dialog.as_caller(tx.request, response)
        except SipError:
            self._ack_and_bye(call, tx, response, now, out)
            self._end(call, CAUSES["failed"], now, out, bye=False)
            return
        dialog.state = DialogState.CONFIRMED
        call.dialog = dialog
        call.state = CallState.UP
        self._ack(call, response, out)
        if call.cancel_wanted:
            self._end(call, CAUSES["canceled"], now, out)
            return
        out.append(CallAnswered(call.call_id))
        if call.timer is not None:
            try:
                call.timer.on_response(response, now)
            except SipError:
                call.timer.active = False
            self._arm_session_timer(call, out)
        if not self._take_answer(call, response.body, response.status, now, out):
            return
        if call.media == "audio" and self.config.t38_mode == "reinvite":
            self._send_reinvite(call, True, now, out)

    def _take_answer(self, call: _Call, body: bytes, status: int | None, now: float,
                     out: list[Action]) -> bool:
        """Read the SDP answer to our offer (in a 2xx, or in the ACK of a delayed offer);
        emit MediaReady. False if the call ended."""
        try:
            answer = sdpmod.parse(body)
        except SipError:
            self._end(call, CAUSES["failed"].with_status(status), now, out)
            return False
        call.remote_sdp = answer
        t38 = answer.first(True)
        audio = answer.first(False)
        assert call.local_sdp is not None
        offered_t38 = any(m.is_t38 and not m.rejected for m in call.local_sdp.media)
        if offered_t38 and t38 is not None and t38.t38 is not None:
            call.media = "t38"
            out.append(MediaReady(call.call_id, "t38", answer.media_address(t38) or "",
                                  t38.port, call.t38_port, params=t38.t38.params))
        elif offered_t38:
            self._end(call, CAUSES["no_t38"].with_status(status), now, out)
            return False
        elif audio is not None:
            call.media = "audio"
            codecs = [c for c in audio.codecs if c in ("PCMU", "PCMA")]
            out.append(MediaReady(call.call_id, "audio", answer.media_address(audio) or "",
                                  audio.port, call.audio_port,
                                  codec=codecs[0] if codecs else None))
        else:
            self._end(call, CAUSES["failed"].with_status(status), now, out)
            return False
        return True

    def _ack(self, call: _Call, response: Response, out: list[Action],
             dialog: Dialog | None = None) -> bool:
        """ACK a 2xx to our INVITE (the same ACK again for a retransmission, RFC 3261
        13.2.2.4). True when the 2xx was new."""
        key = (response.cseq[0], response.to.tag or "")
        known = call.acks.get(key)
        if known is not None:
            out.append(Transmit(*known))
            return False
        dialog = dialog or call.dialog
        if dialog is None:
            return False
        ack = dialog.request("ACK", cseq=key[0])
        ack.add("Via", self._via(), first=True)
        call.acks[key] = (bytes(ack), self._dialog_destination(dialog))
        out.append(Transmit(*call.acks[key]))
        return True

    def _ack_and_bye(self, call: _Call, tx: ClientInvite, response: Response, now: float,
                     out: list[Action]) -> None:
        """ACK and hang up a dialog we do not want: a 2xx after our CANCEL, or from a second
        fork of the INVITE (RFC 3261 13.2.2.4). Its retransmissions are only ACKed."""
        if (response.cseq[0], response.to.tag or "") in call.acks:
            self._ack(call, response, out)
            return
        try:
            dialog = Dialog.as_caller(tx.request, response)
        except SipError:
            return
        if call.dialog is None:
            call.dialog = dialog
        self._ack(call, response, out, dialog)
        self._send_bye(call, now, out, dialog)

    def _dialog_destination(self, dialog: Dialog) -> tuple[str, int]:
        routes = [str(r) for r in dialog.route_set]
        return self._destination(dialog.remote_target, routes)

    # --- re-INVITE (T.38 switch, session refresh) ------------------------------------

    def request_t38(self, call_id: str, now: float) -> list[Action]:
        """Switch an established audio call to T.38 by re-INVITE (e.g. a fax tone was heard)."""
        call = self._call(call_id)
        out: list[Action] = []
        if call.state == CallState.UP and call.media != "t38" and call.reinvite is None:
            self._send_reinvite(call, True, now, out)
        return out

    def _send_reinvite(self, call: _Call, t38: bool, now: float, out: list[Action],
                       challenge: tuple[auth.Challenge, str] | None = None) -> None:
        assert call.dialog is not None and call.local_sdp is not None
        if call.reinvite is not None:
            return  # one re-INVITE at a time (RFC 3261 14.1); a T.38 offer refreshes too
        if t38 and challenge is None:
            call.sdp_version += 1
            call.local_sdp = sdpmod.offer(
                self._media_host(), [sdpmod.t38_media(call.t38_port, self.config.t38)],
                session_id=call.local_sdp.session_id, version=call.sdp_version)
        headers = [("Contact", self._contact()), ("Allow", ALLOW)]
        if call.timer is not None and call.timer.active:
            headers += call.timer.request_headers()
        headers.append(("Content-Type", "application/sdp"))
        request = call.dialog.request("INVITE", headers=headers, body=bytes(call.local_sdp))
        request.add("Via", self._via(), first=True)
        if challenge is not None:
            call.nc += 1
            self._add_auth(request, challenge[0], call.nc, challenge[1])
        tx = ClientInvite(request, reliable=self._reliable, timers=self.config.timers)
        call.reinvite, call.reinvite_t38 = tx, t38

        def user(response: Response | None, now: float, out: list[Action]) -> None:
            self._on_reinvite_response(call, tx, t38, response, now, out)

        self._start_client(tx, self._dialog_destination(call.dialog), user, now, out)

    def _on_reinvite_response(self, call: _Call, tx: ClientInvite, t38: bool,
                              response: Response | None, now: float, out: list[Action]) -> None:
        if call.state == CallState.ENDED:
            if response is not None and 200 <= response.status < 300:
                self._ack(call, response, out)
            return
        if response is not None and response.status < 200:
            return
        if call.reinvite is tx:
            call.reinvite = None
        if response is None or response.status in (408, 481):
            self._end(call, cause_for_status(408 if response is None else response.status),
                      now, out)
            return
        code = response.status
        if code < 300:
            if not self._ack(call, response, out):
                return  # a retransmission
            assert call.dialog is not None
            try:
                call.dialog.refresh_target(response)
            except SipError:
                pass
            if call.timer is not None:
                try:
                    call.timer.on_response(response, now)
                except SipError:
                    call.timer.active = False
                self._arm_session_timer(call, out)
            if t38:
                self._take_answer(call, response.body, response.status, now, out)
            return
        if t38 and code in (488, 606):
            self._end(call, CAUSES["no_t38"].with_status(code), now, out)
            return
        if code in (401, 407) and self.config.credentials is not None and call.auth_tries < 2:
            challenge, header = self._challenge_of(response)
            if challenge is not None:
                call.auth_tries += 1
                self._send_reinvite(call, t38, now, out, (challenge, header))
                return
        if code == 491:  # glare: try again later, unless the far end's re-INVITE wins
            out.append(SetTimer(("reinvite", call.call_id, t38),
                                now + self._glare_delay(call.outbound)))
            return
        if t38:
            self._end(call, CAUSES["no_t38"].with_status(code), now, out)
        # a failed refresh leaves the session as it was (RFC 4028 section 10)

    def _glare_delay(self, owner: bool) -> float:
        """Seconds before retrying a re-INVITE refused 491 (RFC 3261 14.1): random in
        steps of 10 ms, 2.1-4 s when we own the Call-ID (we placed the call), else 0-2 s."""
        draw = int.from_bytes(hashlib.blake2s(self._token().encode(), digest_size=4).digest())
        return 2.1 + draw % 191 / 100 if owner else draw % 201 / 100

    def _arm_session_timer(self, call: _Call, out: list[Action]) -> None:
        timer = call.timer
        out.append(ClearTimer(("refresh", call.call_id)))
        out.append(ClearTimer(("expire", call.call_id)))
        if timer is None or not timer.active:
            return
        if timer.we_refresh and timer.refresh_at is not None:
            out.append(SetTimer(("refresh", call.call_id), timer.refresh_at))
        elif timer.expires_at is not None:
            out.append(SetTimer(("expire", call.call_id), timer.expires_at))

    # --- calls: inbound ------------------------------------------------------------

    def ring(self, call_id: str, now: float, *, status: int = 180) -> list[Action]:
        """Send a provisional response (180 Ringing or 183 Session Progress) to an INVITE."""
        call = self._call(call_id)
        if call.outbound or call.state != CallState.CALLING or not 100 < status < 200:
            raise SipError(f"cannot send {status} on call {call_id}", None)
        out: list[Action] = []
        response = self._response(call.invite, status, call.local_tag)
        response.set("Contact", self._contact())
        assert call.tx is not None
        self._apply(call.tx, call.tx.handle(Respond(response), now), now, out)
        return out

    def answer(self, call_id: str, now: float, *, audio_port: int | None = None,
               t38_port: int | None = None) -> list[Action]:
        """Answer an incoming call with 200 OK and an SDP answer to its offer."""
        call = self._call(call_id)
        if call.outbound or call.state is not CallState.CALLING:
            raise SipError(f"call {call_id} cannot be answered now", None)
        if audio_port is not None:
            call.audio_port = audio_port
        if t38_port is not None:
            call.t38_port = t38_port
        out: list[Action] = []
        assert call.tx is not None
        result: sdpmod.Answer | None = None
        if call.remote_sdp is None:  # a delayed offer: ours goes in the 200, theirs in the ACK
            call.local_sdp = self._initial_offer(call, now)
        else:
            try:
                result = sdpmod.answer(call.remote_sdp, self._media_host(),
                                       audio_port=call.audio_port or None,
                                       t38_port=call.t38_port or None, t38_local=self.config.t38,
                                       session_id=int(now) + 1)
            except SipError:
                result = None
            if result is None or (result.t38 is None and result.audio is None):
                self._apply(call.tx, call.tx.handle(
                    Respond(self._response(call.invite, 488, call.local_tag)), now), now, out)
                self._end(call, CAUSES["no_t38"].with_status(488), now, out, bye=False)
                return out
            call.local_sdp = result.description
        response = self._response(call.invite, 200, call.local_tag)
        response.set("Contact", self._contact())
        response.set("Allow", ALLOW)
        if call.timer is not None:
            for name, value in call.timer.answer_headers(now):
                response.set(name, value)
        response.set("Content-Type", "application/sdp")
        response.body = bytes(call.local_sdp)
        call.dialog = Dialog.as_callee(call.invite, call.local_tag)
        call.dialog.state = DialogState.CONFIRMED
        call.state = CallState.UP
        self._apply(call.tx, call.tx.handle(Respond(response), now), now, out)
        out.append(CallAnswered(call.call_id))
        self._arm_session_timer(call, out)
        if result is not None:
            self._media_from_answer(call, result, out)
        return out

    def _media_from_answer(self, call: _Call, result: sdpmod.Answer, out: list[Action]) -> None:
        if result.t38 is not None:
            call.media = "t38"
            out.append(MediaReady(call.call_id, "t38", result.peer_address or "",
                                  result.t38.port, call.t38_port, params=result.t38_params))
        elif result.audio is not None:
            call.media = "audio"
            out.append(MediaReady(call.call_id, "audio", result.peer_address or "",
                                  result.audio.port, call.audio_port, codec=result.codec))

    def reject(self, call_id: str, now: float, *, status: int = 486) -> list[Action]:
        """Refuse an incoming call that is not answered yet with ``status`` (300..699)."""
        call = self._call(call_id)
        if call.outbound or call.state != CallState.CALLING or not 300 <= status <= 699:
            raise SipError(f"cannot reject call {call_id} with {status}", None)
        out: list[Action] = []
        assert call.tx is not None
        self._apply(call.tx, call.tx.handle(
            Respond(self._response(call.invite, status, call.local_tag)), now), now, out)
        self._end(call, cause_for_status(status), now, out, bye=False)
        return out

    # --- hang up -------------------------------------------------------------------

    def hangup(self, call_id: str, now: float) -> list[Action]:
        """End a call: BYE when established, CANCEL while our INVITE is pending, 480 for an
        unanswered incoming call. The owner gets :class:`CallEnded` ("normal", "canceled" or,
        for an incoming call, the status it was refused with)."""
        call = self._call(call_id)
        out: list[Action] = []
        if call.state == CallState.ENDED:
            return out
        if call.state == CallState.UP:
            self._end(call, CAUSES["normal"], now, out)
        elif call.outbound:
            self._cancel(call, now, out)
        else:
            return self.reject(call_id, now, status=480)
        return out

    def _cancel(self, call: _Call, now: float, out: list[Action]) -> None:
        """CANCEL our pending INVITE; before any provisional response the CANCEL waits for
        one (RFC 3261 section 9.1). The call ends for the owner at once."""
        call.cancel_wanted = True
        self._send_cancel(call, now, out)
        self._end(call, CAUSES["canceled"], now, out, bye=False)

    def _send_cancel(self, call: _Call, now: float, out: list[Action]) -> None:
        tx = call.tx
        if tx is None or tx.state is not State.PROCEEDING or call.cancel_sent:
            return
        call.cancel_sent = True
        request = tx.request
        headers = [("Via", request.get_all("Via")[0]), ("Max-Forwards", "70"),
                   ("From", request.get("From") or ""), ("To", request.get("To") or ""),
                   ("Call-ID", request.call_id), ("CSeq", f"{request.cseq[0]} CANCEL")]
        headers += [("Route", r) for r in request.get_all("Route")]
        cancel = Request("CANCEL", request.uri, headers)
        ctx = ClientNonInvite(cancel, reliable=self._reliable, timers=self.config.timers)
        self._start_client(ctx, self._tx_dest.get(_key(tx)) or self._destination(request.uri),
                           lambda r, n, o: None, now, out)

    def _send_bye(self, call: _Call, now: float, out: list[Action],
                  dialog: Dialog | None = None) -> None:
        dialog = dialog or call.dialog
        if dialog is None:
            return
        bye = dialog.request("BYE")
        bye.add("Via", self._via(), first=True)
        tx = ClientNonInvite(bye, reliable=self._reliable, timers=self.config.timers)
        self._start_client(tx, self._dialog_destination(dialog), lambda r, n, o: None, now, out)

    def _end(self, call: _Call, cause: Cause, now: float, out: list[Action], *,
             bye: bool = True) -> None:
        if call.state == CallState.ENDED:
            return
        was_up = call.state == CallState.UP
        call.state, call.cause = CallState.ENDED, cause
        if bye and was_up:
            self._send_bye(call, now, out)
        out.append(ClearTimer(("refresh", call.call_id)))
        out.append(ClearTimer(("expire", call.call_id)))
        # keep the ended call a while for retransmissions, then drop it (bounded memory)
        out.append(SetTimer(("forget", call.call_id), now + 64 * self.config.timers.t1))
        out.append(CallEnded(call.call_id, cause))

    def _call(self, call_id: str) -> _Call:
        call = self.calls.get(call_id)
        if call is None:
            raise SipError(f"no call {call_id!r}", None)
        return call

    def forget(self, call_id: str) -> None:
        """Drop an ended call's state (the owner calls it when done with the call)."""
        call = self.calls.get(call_id)
        if call is not None and call.state == CallState.ENDED:
            del self.calls[call_id]

    # --- events --------------------------------------------------------------------

    def handle(self, event: Datagram | TimerExpired, now: float) -> list[Action]:
        """Feed one event (h11 style): :class:`Datagram` -> :meth:`receive`,
        :class:`TimerExpired` -> :meth:`timer`."""
        if isinstance(event, Datagram):
            return self.receive(event.data, event.source, now)
        if isinstance(event, TimerExpired):
            return self.timer(event.key, now)
        raise SipError(f"not a user agent event: {type(event).__name__}", None)

    def state_of(self, call_id: str) -> CallState:
        """The state of call ``call_id``."""
        return self._call(call_id).state

    def cause_of(self, call_id: str) -> Cause | None:
        """The :class:`Cause` call ``call_id`` ended with (None while it goes on)."""
        return self._call(call_id).cause

    # --- timers --------------------------------------------------------------------

    def timer(self, key: tuple[Any, ...], now: float) -> list[Action]:
        """A timer from :class:`SetTimer` fired."""
        out: list[Action] = []
        kind = key[0] if key else None
        if kind == "tx":
            tx = self._tx.get(key[1])
            if tx is not None:
                self._apply(tx, tx.handle(TimerFired(key[2]), now), now, out)
        elif kind == "register":
            self._reg_auth_tries = 0
            self._send_register(now, self.config.register_expires, out)
        elif kind == "refresh":
            call = self.calls.get(key[1])
            if call is not None and call.state == CallState.UP:
                self._send_reinvite(call, False, now, out)
        elif kind == "expire":
            call = self.calls.get(key[1])
            if call is not None and call.state == CallState.UP:
                self._end(call, CAUSES["session_expired"], now, out)
        elif kind == "forget":
            self.forget(key[1])
        elif kind == "reinvite":
            call = self.calls.get(key[1])
            if call is not None and call.state == CallState.UP and call.reinvite is None \
                    and not (key[2] and call.media == "t38"):
                self._send_reinvite(call, bool(key[2]), now, out)
        return out

    # --- receiving -----------------------------------------------------------------

    def receive(self, data: bytes, source: tuple[str, int], now: float) -> list[Action]:
        """Take one datagram (or framed stream message) from ``source``; never raises for
        bad input: unparseable data is dropped, a malformed request answered 400."""
        out: list[Action] = []
        try:
            message = parse(data, stream=self._reliable)
        except SipError as exc:
            self._answer_unparsed(data, exc, source, out)
            return out
        try:
            if isinstance(message, Response):
                self._receive_response(message, now, out)
            else:
                self._receive_request(message, source, now, out)
        except SipError as exc:
            if isinstance(message, Request) and message.method != "ACK" and exc.status:
                self._reply_stateless(message, exc.status, source, out)
        return out

    def _answer_unparsed(self, data: bytes, exc: SipError, source: tuple[str, int],
                         out: list[Action]) -> None:
        """Answer an unparseable request when its Via, From, To, Call-ID and CSeq can be read
        (RFC 3261 section 16.3 style minimal response); drop anything else."""
        if not exc.status:
            return
        head = bytes(data[:8192]).split(b"\r\n\r\n")[0]
        try:
            lines = head.decode("utf-8").split("\r\n")
        except UnicodeDecodeError:
            return
        if not lines or lines[0].startswith("SIP/") or " SIP/" not in lines[0]:
            return
        keep = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            canon = canonical_name(name.strip())
            if canon in ("Via", "From", "To", "Call-ID", "CSeq"):
                keep.append((canon, value.strip()))
        try:
            stub = Response(exc.status, headers=keep)
            data = bytes(stub)
            vias = parse(data).vias  # send only what parses: no injected header survives
        except SipError:
            return
        if lines[0].split(" ")[0] == "ACK":
            return
        out.append(Transmit(data, self._response_destination(vias[0], source)))

    def _receive_response(self, response: Response, now: float, out: list[Action]) -> None:
        vias = response.vias
        if len(vias) != 1:
            return  # RFC 3261 8.1.3.3: more than one Via in a response: discard
        key = ("c", vias[0].branch or "", response.cseq[1])
        tx = self._tx.get(key)
        if tx is None:
            self._stray_response(response, now, out)
            return
        self._apply(tx, tx.handle(Received(response), now), now, out)

    def _stray_response(self, response: Response, now: float, out: list[Action]) -> None:
        """A 2xx retransmission for an INVITE whose transaction is gone: ACK it again."""
        if not 200 <= response.status < 300 or response.cseq[1] != "INVITE":
            return
        call = self.calls.get(response.call_id)
        if call is not None and (response.cseq[0], response.to.tag or "") in call.acks:
            self._ack(call, response, out)

    def _response_destination(self, via: Via, source: tuple[str, int]) -> tuple[str, int]:
        if self._reliable:
            return source
        host = via.params.get("received") or via.host.strip("[]")
        rport = via.params.get("rport")
        port = number(rport, maximum=65535)
        if port:
            return host, port
        return host, via.port or 5060

    def _stamp_via(self, request: Request, source: tuple[str, int]) -> None:
        """RFC 3261 18.2.1 and RFC 3581: note the source in the top Via."""
        top = request.vias[0]
        params = dict(top.params)
        if top.host.strip("[]") != source[0] or "rport" in params:
            params["received"] = source[0]
        if "rport" in params:
            params["rport"] = str(source[1])
        stamped = str(Via(top.transport, top.host, top.port, params))
        for i, (name, value) in enumerate(request.headers):
            if name == "Via":
                request.headers[i] = ("Via", ", ".join([stamped, *split_list(value)[1:]]))
                break

    def _trusted(self, source: tuple[str, int]) -> bool:
        if not self.registered:
            return True
        allowed = set(self.config.trusted)
        for peer in (self.config.registrar, self.config.proxy):
            if peer is not None:
                allowed.add(peer[0])
        return source[0] in allowed

    def _response(self, request: Request, status: int, to_tag: str | None = None) -> Response:
        headers = [("Via", v) for v in request.get_all("Via")]
        to = request.get("To") or ""
        if to_tag and status > 100:
            try:
                address = request.to
                if address.tag is None:
                    to = str(address.with_params(tag=to_tag))
            except SipError:
                pass
        headers += [("From", request.get("From") or ""), ("To", to),
                    ("Call-ID", request.get("Call-ID") or ""), ("CSeq", request.get("CSeq") or "")]
        if request.method == "INVITE" and 100 < status < 300:
            # RFC 3261 12.1.1: a UAS copies the Record-Route of the request into its
            # dialog-creating responses (a record-routing proxy refuses in-dialog requests
            # of a dialog without them).
            headers += [("Record-Route", v) for v in request.get_all("Record-Route")]
        response = Response(status, headers=headers)
        response.set("Server", self.config.user_agent)
        return response

    def _reply_stateless(self, request: Request, status: int, source: tuple[str, int],
                         out: list[Action]) -> None:
        try:
            via = request.vias[0]
        except (SipError, IndexError):
            return
        response = self._response(request, status, self._token())
        if status == 405:
            response.set("Allow", ALLOW)
        out.append(Transmit(bytes(response), self._response_destination(via, source)))

    def _server_tx(self, request: Request, source: tuple[str, int], now: float,
                   out: list[Action]) -> ServerNonInvite:
        tx = ServerNonInvite(request, reliable=self._reliable, timers=self.config.timers)
        self._tx[_key(tx)] = tx
        self._tx_dest[_key(tx)] = self._response_destination(request.vias[0], source)
        self._apply(tx, tx.start(now), now, out)
        return tx

    def _respond(self, tx: Transaction, response: Response, now: float,
                 out: list[Action]) -> None:
        self._apply(tx, tx.handle(Respond(response), now), now, out)

    def _receive_request(self, request: Request, source: tuple[str, int], now: float,
                         out: list[Action]) -> None:
        self._stamp_via(request, source)
        request.from_, request.to  # noqa: B018 - both must parse (else 400)
        branch = request.vias[0].branch or ""
        method = request.method
        key = ("s", branch, "INVITE" if method == "ACK" else method)
        tx = self._tx.get(key)
        if tx is not None:
            if method == "ACK":
                self._apply(tx, tx.handle(Received(request), now), now, out)
                if isinstance(tx, ServerInvite) and tx.state is State.ACCEPTED:
                    self._on_ack(request, now, out)
                return
            self._apply(tx, tx.handle(Received(request), now), now, out)
            return
        if method == "ACK":
            self._on_ack(request, now, out)
            return
        if not self._trusted(source):
            self._reply_stateless(request, 403, source, out)
            return
        if method == "CANCEL":
            self._on_cancel(request, source, now, out)
            return
        if method == "INVITE":
            self._on_invite(request, source, now, out)
            return
        if method == "BYE":
            self._on_bye(request, source, now, out)
            return
        tx = self._server_tx(request, source, now, out)
        if method == "OPTIONS":
            response = self._response(request, 200, self._token())
            response.set("Allow", ALLOW)
            response.set("Accept", "application/sdp")
            response.set("Supported", "timer")
            self._respond(tx, response, now, out)
        elif method in _KNOWN_METHODS:
            response = self._response(request, 405, self._token())
            response.set("Allow", ALLOW)
            self._respond(tx, response, now, out)
        else:
            self._respond(tx, self._response(request, 501, self._token()), now, out)

    def _find_dialog_call(self, request: Request) -> _Call | None:
        call = self.calls.get(request.call_id)
        if call is None or call.dialog is None:
            return None
        to_tag = request.to.tag
        from_tag = request.from_.tag
        if to_tag != call.dialog.local_tag or from_tag != call.dialog.remote_tag:
            return None
        return call

    def _on_ack(self, request: Request, now: float, out: list[Action]) -> None:
        call = self.calls.get(request.call_id)
        if call is None:
            return
        number = request.cseq[0]
        for tx in (call.tx, call.server_reinvite):
            if isinstance(tx, ServerInvite) and tx.request.cseq[0] == number \
                    and tx.state is State.ACCEPTED:
                self._apply(tx, tx.handle(AckReceived(), now), now, out)
                if tx is call.tx and call.remote_sdp is None and call.state == CallState.UP \
                        and not self._take_answer(call, request.body, None, now, out):
                    return
                if tx is call.tx and call.media == "audio" and call.state == CallState.UP \
                        and self.config.t38_mode == "reinvite" and call.reinvite is None:
                    self._send_reinvite(call, True, now, out)

    def _on_cancel(self, request: Request, source: tuple[str, int], now: float,
                   out: list[Action]) -> None:
        key = ("s", request.vias[0].branch or "", "INVITE")
        invite_tx = self._tx.get(key)
        tx = self._server_tx(request, source, now, out)
        if not isinstance(invite_tx, ServerInvite):
            self._respond(tx, self._response(request, 481, self._token()), now, out)
            return
        self._respond(tx, self._response(request, 200), now, out)
        call = self.calls.get(request.call_id)
        if invite_tx.state is State.PROCEEDING and call is not None and call.state != CallState.UP:
            self._respond(invite_tx, self._response(invite_tx.request, 487, call.local_tag), now,
                          out)
            self._end(call, CAUSES["caller_canceled"].with_status(487), now, out, bye=False)

    def _on_bye(self, request: Request, source: tuple[str, int], now: float,
                out: list[Action]) -> None:
        tx = self._server_tx(request, source, now, out)
        call = self._find_dialog_call(request)
        if call is None:
            self._respond(tx, self._response(request, 481), now, out)
            return
        self._respond(tx, self._response(request, 200), now, out)
        self._end(call, CAUSES["normal"], now, out, bye=False)

    def _on_invite(self, request: Request, source: tuple[str, int], now: float,
                   out: list[Action]) -> None:
        tx = ServerInvite(request, reliable=self._reliable, timers=self.config.timers)
        self._tx[_key(tx)] = tx
        self._tx_dest[_key(tx)] = self._response_destination(request.vias[0], source)
        self._apply(tx, tx.start(now, self._response(request, 100)), now, out)
        if request.to.tag is not None:
            try:
                self._on_reinvite(request, tx, now, out)
            except SipError as exc:
                if tx.state is State.PROCEEDING:
                    self._respond(tx, self._response(request, exc.status or 400), now, out)
            return
        if request.call_id in self.calls:
            self._respond(tx, self._response(request, 482, self._token()), now, out)
            return
        if sum(c.state is not CallState.ENDED for c in self.calls.values()) \
                >= self.config.max_calls:
            self._respond(tx, self._response(request, 486, self._token()), now, out)
            return
        tag = self._token()
        unsupported = [o for o in request.get_all("Require") if o.lower() != "timer"]
        if unsupported:
            response = self._response(request, 420, tag)
            response.set("Unsupported", ", ".join(unsupported))
            self._respond(tx, response, now, out)
            return
        try:
            contacts = request.contacts
            offer = sdpmod.parse(request.body) if request.body else None
            if len(contacts) != 1:
                raise SipError("an INVITE needs one Contact")
        except SipError as exc:
            status = exc.status if exc.status and exc.status >= 400 else 400
            self._respond(tx, self._response(request, 488 if request.body and status == 400
                                             else status, tag), now, out)
            return
        call = _Call(request.call_id, False, request, tag, self.config.audio_port,
                     self.config.t38_port, tx=tx, remote_sdp=offer, source=source)
        if self.config.session_expires:
            call.timer = SessionTimer(self.config.session_expires, self.config.min_se, False)
            too_small = call.timer.on_request(request)
            if too_small is not None:
                response = self._response(request, 422, tag)
                response.set("Min-SE", str(self.config.min_se))
                self._respond(tx, response, now, out)
                return
        self.calls[call.call_id] = call
        self._tx_user[_key(tx)] = lambda response, now, out: self._no_ack(call, response, now, out)
        caller = str(request.from_.uri)
        callee = str(request.to.uri)
        offers_t38 = offer is not None and offer.first(True) is not None
        out.append(IncomingCall(call.call_id, caller, callee, offers_t38, source))

    def _no_ack(self, call: _Call, response: Response | None, now: float,
                out: list[Action]) -> None:
        """Our 2xx to an INVITE was never ACKed (timer L): end the call with a BYE
        (RFC 3261 13.3.1.4)."""
        if response is None and call.state == CallState.UP:
            self._end(call, CAUSES["failed"], now, out)

    def _on_reinvite(self, request: Request, tx: ServerInvite, now: float,
                     out: list[Action]) -> None:
        call = self._find_dialog_call(request)
        if call is None or call.state != CallState.UP:
            self._respond(tx, self._response(request, 481), now, out)
            return
        assert call.dialog is not None and call.local_sdp is not None
        if call.reinvite is not None or (call.server_reinvite is not None
                                         and not call.server_reinvite.terminated
                                         and call.server_reinvite.state is State.PROCEEDING):
            self._respond(tx, self._response(request, 491), now, out)
            return
        if not call.dialog.accept_request(request):
            self._respond(tx, self._response(request, 500), now, out)
            return
        call.server_reinvite = tx
        self._tx_user[_key(tx)] = lambda response, now, out: self._no_ack(call, response, now, out)
        if call.timer is not None:
            too_small = call.timer.on_request(request)
            if too_small is not None:
                response = self._response(request, 422)
                response.set("Min-SE", str(self.config.min_se))
                self._respond(tx, response, now, out)
                return
        answer_sdp = call.local_sdp
        new_media: sdpmod.Answer | None = None
        if request.body:
            offer = sdpmod.parse(request.body)
            if call.remote_sdp is not None and offer.version == call.remote_sdp.version \
                    and offer.session_id == call.remote_sdp.session_id:
                pass  # unchanged offer (a session refresh): answer with the same description
            else:
                try:
                    result = sdpmod.answer(offer, self._media_host(),
                                           audio_port=call.audio_port or None,
                                           t38_port=call.t38_port or None,
                                           t38_local=self.config.t38,
                                           session_id=call.local_sdp.session_id,
                                           version=call.sdp_version + 1)
                except SipError:
                    result = None
                if result is None or (result.t38 is None and result.audio is None):
                    self._respond(tx, self._response(request, 488), now, out)
                    return
                call.sdp_version += 1
                call.remote_sdp = offer
                answer_sdp = call.local_sdp = result.description
                new_media = result
        response = self._response(request, 200)
        response.set("Contact", self._contact())
        response.set("Allow", ALLOW)
        if call.timer is not None:
            for name, value in call.timer.answer_headers(now):
                response.set(name, value)
        response.set("Content-Type", "application/sdp")
        response.body = bytes(answer_sdp)
        self._respond(tx, response, now, out)
        self._arm_session_timer(call, out)
        if new_media is not None:
            self._media_from_answer(call, new_media, out)

