"""SIP dialogs (RFC 3261 section 12) and session timers (RFC 4028), sans-I/O.

A :class:`Dialog` holds what both ends agreed when an INVITE got a 1xx/2xx with a To
tag: Call-ID, the tags, the local and remote URIs, the remote target (the peer's
Contact), the route set (the Record-Route headers: reversed for the caller, in order for
the callee) and the CSeq counters. :meth:`Dialog.request` builds an in-dialog request
(re-INVITE, ACK, BYE) with loose or strict routing (section 12.2.1.1);
:meth:`Dialog.accept_request` checks an incoming one's CSeq and refreshes the target.

:class:`SessionTimer` keeps RFC 4028's state: the interval agreed, who refreshes, when
our refresh is due (half the interval) and when the session expires unrefreshed
(interval minus min(32, interval/3)); times in seconds on the caller's clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .message import (
    Address,
    Request,
    Response,
    SipError,
    SipUri,
    number,
    parse_address,
    parse_params,
)

__all__ = ["DialogState", "Dialog", "SessionTimer", "parse_session_expires", "MIN_SE"]

MIN_SE = 90


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def _target(message: Request | Response) -> SipUri:
    contacts = message.contacts
    if len(contacts) != 1 or not isinstance(contacts[0].uri, SipUri):
        raise SipError("a dialog needs exactly one SIP Contact")
    return contacts[0].uri


@dataclass
class Dialog:
    """One dialog; see the module documentation. ``local_cseq`` is the last CSeq we sent."""

    call_id: str
    local_tag: str
    remote_tag: str
    local: Address
    remote: Address
    remote_target: SipUri
    route_set: list[Address] = field(default_factory=list)
    local_cseq: int = 0
    remote_cseq: int | None = None
    state: DialogState = DialogState.EARLY
    invite_cseq: int = 0

    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag)."""
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def as_caller(cls, request: Request, response: Response) -> Dialog:
        """The dialog our ``request`` (INVITE) formed with ``response`` (1xx/2xx with a tag)."""
        remote_tag = response.to.tag
        local_tag = request.from_.tag
        if not remote_tag or not local_tag:
            raise SipError("a dialog needs From and To tags")
        routes = [parse_address(v) for v in reversed(response.get_all("Record-Route"))]
        state = DialogState.CONFIRMED if response.status < 300 else DialogState.EARLY
        return cls(request.call_id, local_tag, remote_tag, request.from_,
                   response.to, _target(response), routes, request.cseq[0], None, state,
                   request.cseq[0])

    @classmethod
    def as_callee(cls, request: Request, local_tag: str) -> Dialog:
        """The dialog we form by answering ``request`` (INVITE) with To tag ``local_tag``."""
        remote_tag = request.from_.tag
        if not remote_tag:
            raise SipError("an INVITE without a From tag")
        routes = [parse_address(v) for v in request.get_all("Record-Route")]
        return cls(request.call_id, local_tag, remote_tag, request.to.with_params(tag=local_tag),
                   request.from_, _target(request), routes, 0, request.cseq[0],
                   DialogState.EARLY, request.cseq[0])

    def request(self, method: str, *, cseq: int | None = None,
                headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> Request:
        """An in-dialog request without Via (the UA adds it). ``ACK`` reuses the INVITE's
        CSeq (give it as ``cseq``); other methods take the next local CSeq."""
        if method == "ACK":
            number = self.invite_cseq if cseq is None else cseq
        else:
            self.local_cseq += 1
            number = self.local_cseq
            if method == "INVITE":
                self.invite_cseq = number
        uri = self.remote_target
        routes = [str(r) for r in self.route_set]
        if self.route_set and isinstance(self.route_set[0].uri, SipUri) \
                and "lr" not in self.route_set[0].uri.params:
            uri = self.route_set[0].uri  # strict routing (RFC 3261 12.2.1.1)
            routes = routes[1:] + [f"<{self.remote_target}>"]
        out = [("Max-Forwards", "70"), ("From", str(self.local)), ("To", str(self.remote)),
               ("Call-ID", self.call_id), ("CSeq", f"{number} {method}")]
        out += [("Route", r) for r in routes]
        out += headers or []
        return Request(method, uri, out, body)

    def accept_request(self, request: Request) -> bool:
        """Take an in-dialog request: False when its CSeq is not above the last (answer 500).

        A target refresh (re-INVITE, UPDATE) with a Contact replaces the remote target.
        """
        number, method = request.cseq
        if method not in ("ACK", "CANCEL"):
            if self.remote_cseq is not None and number <= self.remote_cseq:
                return False
            self.remote_cseq = number
        if method in ("INVITE", "UPDATE") and request.get("Contact"):
            self.remote_target = _target(request)
        return True

    def refresh_target(self, response: Response) -> None:
        """Take a 2xx to our re-INVITE: its Contact is the new remote target."""
        if response.get("Contact"):
            self.remote_target = _target(response)


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """(delta seconds, refresher ``uac``/``uas``/``None``) of a Session-Expires value."""
    delta, _, params = value.partition(";")
    delta = delta.strip()
    seconds = number(delta, digits=9)
    if seconds is None or seconds < 1:
        raise SipError(f"bad Session-Expires {value[:40]!r}")
    refresher = parse_params(params).get("refresher") if params.strip() else None
    if refresher is not None and refresher.lower() not in ("uac", "uas"):
        raise SipError(f"bad refresher {refresher[:20]!r}")
    return seconds, refresher.lower() if refresher else None


@dataclass
class SessionTimer:
    """RFC 4028 session timer of one dialog, from our side (``we_are_uac``: we sent the INVITE).

    ``interval`` is what we ask for, ``min_se`` the smallest we accept (both seconds).
    """

    interval: int = 1800
    min_se: int = MIN_SE
    we_are_uac: bool = True
    refresher: str | None = None
    active: bool = False
    refresh_at: float | None = None
    expires_at: float | None = None

    def request_headers(self) -> list[tuple[str, str]]:
        """Headers for an INVITE (initial or refresh) we send."""
        value = str(self.interval)
        if self.refresher is not None:
            value += f";refresher={self.refresher}"
        return [("Supported", "timer"), ("Session-Expires", value), ("Min-SE", str(self.min_se))]

    def on_422(self, response: Response) -> bool:
        """A 422 to our INVITE: raise the interval to its Min-SE. False if that cannot help."""
        value = response.get("Min-SE")
        wanted = number(value.split(";")[0], digits=9) if value is not None else None
        if wanted is None or wanted <= self.interval or wanted > 86400:
            return False
        self.interval = wanted
        self.min_se = max(self.min_se, wanted)
        return True

    def on_response(self, response: Response, now: float) -> None:
        """Our INVITE got a 2xx: start the timer if the answer has Session-Expires."""
        value = response.get("Session-Expires")
        if value is None:
            self.active = False
            return
        delta, refresher = parse_session_expires(value)
        self.interval = delta
        self.refresher = refresher or "uac"
        self._arm(now)

    def on_request(self, request: Request) -> Response | None:
        """An INVITE to us: a 422 (with our Min-SE) when its interval is too small."""
        value = request.get("Session-Expires")
        if value is None:
            self.active = False
            self.refresher = None
            return None
        delta, refresher = parse_session_expires(value)
        if delta < self.min_se:
            return Response(422, headers=[("Min-SE", str(self.min_se))])
        self.interval = delta
        self.refresher = refresher or "uas"
        return None

    def answer_headers(self, now: float) -> list[tuple[str, str]]:
        """Headers for our 2xx to an INVITE that asked for a session timer; starts it."""
        if self.refresher is None:
            return []
        self._arm(now)
        return [("Require", "timer"), ("Session-Expires",
                                       f"{self.interval};refresher={self.refresher}")]

    @property
    def we_refresh(self) -> bool:
        """True when we must send the refreshes."""
        return self.active and (self.refresher == "uac") == self.we_are_uac

    def _arm(self, now: float) -> None:
        self.active = True
        self.refresh_at = now + self.interval / 2 if self.we_refresh else None
        self.expires_at = now + self.interval - min(32, self.interval / 3)
