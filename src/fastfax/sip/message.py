"""SIP messages (RFC 3261 sections 7, 19, 20, 25): parse and build, sans-I/O.

:func:`parse` reads one whole message (a UDP datagram) into a :class:`Request` or a
:class:`Response`; :class:`Framer` cuts a TCP byte stream into messages by their
``Content-Length``; ``bytes(message)`` writes one. Header names are kept in their long
canonical form (compact forms such as ``v``, ``i``, ``m``, ``l`` are expanded, RFC 3261
section 7.3.3), folded lines are joined (section 7.3.1) and values listed with commas in
the headers that allow it (Via, Route, Contact...) are split by :meth:`Message.get_all`.

:func:`parse_uri`, :func:`parse_address` and :func:`parse_via` read the structured values
into :class:`SipUri`, :class:`Address` (name-addr or addr-spec with header parameters)
and :class:`Via`. Everything a peer can get wrong raises :class:`SipError`, whose
``status`` is the response a server should answer with (400, 413, 505...) or ``None``
when the message should just be dropped.

Limits (a guard against memory exhaustion): a message of at most :data:`MAX_MESSAGE`
octets, :data:`MAX_HEADERS` header fields and :data:`MAX_LINE` octets a header line
(after unfolding). Sizes are octets; text is decoded as UTF-8 (RFC 3261 section 7.4.1
allows it in quoted strings and reason phrases), with invalid octets an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import FaxError

__all__ = [
    "SipError", "SipUri", "Address", "Via", "Message", "Request", "Response", "Framer",
    "parse", "parse_uri", "parse_address", "parse_via", "parse_cseq", "parse_params",
    "split_list", "number", "MAX_MESSAGE", "MAX_HEADERS", "MAX_LINE",
]

MAX_MESSAGE = 65535
MAX_HEADERS = 200
MAX_LINE = 8192
MAX_BODY = 60000


class SipError(FaxError, ValueError):
    """A SIP message, URI, header value or SIP state transition is malformed or invalid.

    ``status`` is the SIP response a server should send for it (400 Bad Request, 413,
    505...), or ``None`` when the input is to be dropped silently.
    """

    def __init__(self, message: str, status: int | None = 400):
        super().__init__(message)
        self.status = status


#: Compact form -> long form (RFC 3261 section 7.3.3 and the IANA registry).
COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact",
    "k": "Supported", "l": "Content-Length", "m": "Contact", "n": "Identity-Info",
    "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To", "u": "Allow-Events",
    "v": "Via", "x": "Session-Expires", "y": "Identity",
}
_CANONICAL = {name.lower(): name for name in (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
    "Error-Info", "Expires", "From", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE",
    "MIME-Version", "Organization", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "Record-Route", "Reply-To", "Require", "Retry-After", "Route", "Server",
    "Session-Expires", "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent",
    "Via", "Warning", "WWW-Authenticate", "Event", "Allow-Events", "Refer-To", "Referred-By",
    "Reason", "P-Asserted-Identity", "Privacy",
)}
#: Headers whose values are comma-separated lists (RFC 3261 section 7.3.1).
LIST_HEADERS = frozenset({
    "Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require",
    "Proxy-Require", "Unsupported", "Accept", "Accept-Encoding", "Accept-Language",
    "Content-Encoding", "Allow-Events", "In-Reply-To", "P-Asserted-Identity",
})

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
_USER = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_PASSWORD = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
_PARAM_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
_HEADERS_PART = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$=&]|%[0-9A-Fa-f]{2})+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OTHER_URI = re.compile(r"[A-Za-z0-9\-_.!~*'()%;/?:@&=+$,#\[\]]+")
_DIGITS = re.compile(r"[0-9]{1,10}")
#: A control character not escaped as a quoted-pair (RFC 3261 25.1 allows those in quotes).
_CTL = re.compile(r"(?<!\\)[\x00-\x08\x0a-\x1f\x7f]")
_LWS = re.compile(r"[ \t]+")


def number(text: str | None, *, digits: int = 10, maximum: int | None = None) -> int | None:
    """``text`` (trimmed) as a non-negative int when it is 1..``digits`` ASCII digits (and
    at most ``maximum``), else ``None``."""
    if text is None or not _DIGITS.fullmatch(text.strip()) or len(text.strip()) > digits:
        return None
    value = int(text.strip())
    return value if maximum is None or value <= maximum else None


def canonical_name(name: str) -> str:
    """The long, conventionally spelled form of header ``name`` (case-insensitive)."""
    low = name.lower()
    if low in COMPACT:
        return COMPACT[low]
    return _CANONICAL.get(low, name)


def _check_text(value: str, what: str) -> str:
    if _CTL.search(value):
        raise SipError(f"control character in {what}: {value[:80]!r}")
    return value


# --- lists and parameters ----------------------------------------------------------

def split_list(value: str) -> list[str]:
    """Split a header value at commas outside quoted strings and ``<...>``; trimmed, no empties."""
    items: list[str] = []
    start = 0
    quoted = False
    angle = False
    i = 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == "," and not angle:
            items.append(value[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise SipError(f"unbalanced quotes in {value[:80]!r}")
    items.append(value[start:])
    return [item.strip() for item in items if item.strip()]


def _split_semicolons(text: str) -> list[str]:
    parts: list[str] = []
    start = 0
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise SipError(f"unbalanced quotes in {text[:80]!r}")
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` header parameters (the text after the first ``;``).

    Names are lower-cased; a value is a token, a quoted string (kept with its quotes) or
    an IPv6 reference; a parameter without ``=`` maps to ``None``. A repeated name is an
    error (RFC 3261 section 7.3.1 allows each at most once).
    """
    params: dict[str, str | None] = {}
    for part in _split_semicolons(text):
        part = part.strip()
        if not part:
            raise SipError(f"empty parameter in {text[:80]!r}")
        name, eq, value = part.partition("=")
        name = name.strip()
        if not _TOKEN.fullmatch(name):
            raise SipError(f"bad parameter name {name[:40]!r}")
        key = name.lower()
        if key in params:
            raise SipError(f"parameter {name!r} given twice")
        if not eq:
            params[key] = None
            continue
        value = value.strip()
        if not (_TOKEN.fullmatch(value) or _IPV6.fullmatch(value) or _is_quoted(value)):
            raise SipError(f"bad value for parameter {name!r}: {value[:40]!r}")
        params[key] = value
    return params


def _is_quoted(value: str) -> bool:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return False
    i = 1
    while i < len(value) - 1:
        if value[i] == "\\":
            i += 2
            if i > len(value) - 1:
                return False
            continue
        if value[i] == '"':
            return False
        i += 1
    return True


def unquote(value: str) -> str:
    """The content of a quoted string (backslash escapes removed); other text as given."""
    if not _is_quoted(value):
        return value
    return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.S)


def quote(value: str) -> str:
    """``value`` as a quoted string, with ``"`` and ``\\`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_params(params: dict[str, str | None]) -> str:
    """``;name=value`` text of ``params`` (``None`` values written as bare names)."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


# --- URIs --------------------------------------------------------------------------

@dataclass(frozen=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 section 19.1).

    ``user`` and ``password`` are kept percent-escaped as written; ``params`` has
    lower-case names (``transport``, ``lr``, ``maddr``...; ``None`` for a bare name) and
    ``headers`` is the raw text after ``?`` (or ``None``). ``host`` holds an IPv6
    address with its brackets.
    """

    host: str
    user: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    scheme: str = "sip"
    password: str | None = None
    headers: str | None = None

    def __str__(self) -> str:
        out = self.scheme + ":"
        if self.user is not None:
            out += self.user + ("" if self.password is None else ":" + self.password) + "@"
        out += self.host + ("" if self.port is None else f":{self.port}")
        out += format_params(self.params)
        if self.headers is not None:
            out += "?" + self.headers
        return out

    def __repr__(self) -> str:
        shown = self if self.password is None else SipUri(
            self.host, self.user, self.port, self.params, self.scheme, "***", self.headers)
        return f"SipUri({str(shown)!r})"

    @property
    def hostport(self) -> tuple[str, int | None]:
        """(host without IPv6 brackets, port or ``None``)."""
        return self.host.strip("[]"), self.port

    def with_(self, **changes: object) -> SipUri:
        """A copy with the given fields replaced."""
        fields = {"host": self.host, "user": self.user, "port": self.port,
                  "params": dict(self.params), "scheme": self.scheme,
                  "password": self.password, "headers": self.headers}
        fields.update(changes)
        return SipUri(**fields)  # type: ignore[arg-type]


def _parse_host(text: str) -> str:
    if _IPV6.fullmatch(text) or _IPV4.fullmatch(text) or _HOSTNAME.fullmatch(text):
        if len(text) > 255:
            raise SipError("host name longer than 255 characters")
        return text
    raise SipError(f"bad host {text[:60]!r}")


def parse_hostport(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets); the port is 0..65535."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipError(f"unclosed IPv6 reference in {text[:60]!r}")
        host, rest = text[:end + 1], text[end + 1:]
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
    host = _parse_host(host)
    if not rest:
        return host, None
    if rest[0] != ":" or not _DIGITS.fullmatch(rest[1:]) or int(rest[1:]) > 65535:
        raise SipError(f"bad port in {text[:60]!r}")
    return host, int(rest[1:])


def parse_uri(text: str, *, allow_headers: bool = True) -> SipUri:
    """Parse a ``sip:``/``sips:`` URI; anything else (another scheme, bad syntax) is an error."""
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        raise SipError(f"not a SIP URI: {text[:80]!r}", 416)
    if rest.count("@") > 1:
        raise SipError(f"more than one @ in {text[:80]!r}")
    user = password = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, pcolon, pw = userinfo.partition(":")
        password = pw if pcolon else None
        if not _USER.fullmatch(user) or (password is not None and not _PASSWORD.fullmatch(
                password)):
            raise SipError(f"bad user part in {text[:80]!r}")
    headers = None
    if "?" in rest:
        rest, _, headers = rest.partition("?")
        if not allow_headers:
            raise SipError(f"headers are not allowed in a Request-URI: {text[:80]!r}")
        if not _HEADERS_PART.fullmatch(headers):
            raise SipError(f"bad headers part in {text[:80]!r}")
    hostport, semi, ptext = rest.partition(";")
    host, port = parse_hostport(hostport)
    params: dict[str, str | None] = {}
    if semi:
        for part in ptext.split(";"):
            name, eq, value = part.partition("=")
            if not _PARAM_CHARS.fullmatch(name) or (eq and not _PARAM_CHARS.fullmatch(value)):
                raise SipError(f"bad URI parameter {part[:40]!r} in {text[:80]!r}")
            if name.lower() in params:
                raise SipError(f"URI parameter {name!r} given twice")
            params[name.lower()] = value if eq else None
    return SipUri(host, user, port, params, scheme.lower(), password, headers)


def _parse_any_uri(text: str) -> SipUri | str:
    scheme, colon, _ = text.partition(":")
    if colon and scheme.lower() in ("sip", "sips"):
        return parse_uri(text)
    if not colon or not _SCHEME.fullmatch(scheme) or not _OTHER_URI.fullmatch(text):
        raise SipError(f"bad URI {text[:80]!r}")
    return text


# --- addresses (From, To, Contact, Route, Record-Route) ------------------------------

@dataclass(frozen=True)
class Address:
    """A name-addr or addr-spec with header parameters (RFC 3261 section 20.10).

    ``uri`` is a :class:`SipUri`, or the URI text for another scheme (``tel:``...).
    ``display`` is the display name without quotes (``None`` if absent); ``params`` the
    header parameters (``tag``, ``expires``, ``q``...), lower-case names.
    """

    uri: SipUri | str
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        name = "" if self.display is None else quote(self.display) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From, To), or ``None``."""
        return self.params.get("tag")

    def with_params(self, **params: str | None) -> Address:
        """A copy with the given header parameters set."""
        return Address(self.uri, self.display, {**self.params, **params})


def parse_address(text: str) -> Address:
    """Parse one name-addr (``"Name" <uri>;params``) or addr-spec (``uri;params``).

    In the addr-spec form, parameters after the URI belong to the header, not the URI
    (RFC 3261 section 20.10). A bare ``*`` (Contact in REGISTER) is returned as the URI ``*``.
    """
    text = text.strip()
    if text == "*":
        return Address("*")
    display: str | None = None
    rest = text
    if rest.startswith('"'):
        i = 1
        while i < len(rest) and rest[i] != '"':
            i += 2 if rest[i] == "\\" else 1
        if i >= len(rest):
            raise SipError(f"unclosed display name in {text[:80]!r}")
        display = unquote(rest[:i + 1])
        rest = rest[i + 1:].lstrip()
        if not rest.startswith("<"):
            raise SipError(f"display name not followed by <URI> in {text[:80]!r}")
    if "<" in rest:
        before, _, after = rest.partition("<")
        if display is None and before.strip():
            words = before.split()
            if not all(_TOKEN.fullmatch(w) for w in words):
                raise SipError(f"bad display name {before[:60]!r}")
            display = " ".join(words)
        elif before.strip():
            raise SipError(f"text between display name and <URI> in {text[:80]!r}")
        if ">" not in after:
            raise SipError(f"unclosed <URI> in {text[:80]!r}")
        uri_text, _, tail = after.partition(">")
        if uri_text != uri_text.strip():
            raise SipError(f"whitespace inside <URI> in {text[:80]!r}")
        uri = _parse_any_uri(uri_text)
    else:
        uri_text, semi, ptail = rest.partition(";")
        uri_text = uri_text.rstrip(" \t")
        if any(c in uri_text for c in " \t,?"):
            raise SipError(f"an addr-spec with spaces, commas or ? must be in <>: {text[:80]!r}")
        uri = _parse_any_uri(uri_text)
        tail = semi + ptail
    tail = tail.strip()
    if tail and not tail.startswith(";"):
        raise SipError(f"junk after the URI in {text[:80]!r}")
    params = parse_params(tail[1:]) if tail else {}
    return Address(uri, display, params)


# --- Via ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Via:
    """One Via entry (RFC 3261 section 20.42; ``rport`` and ``received`` from RFC 3581).

    ``transport`` is upper-case (``UDP``, ``TCP``, ``TLS``...); ``params`` has lower-case
    names (``branch``, ``received``, ``rport`` (``None`` when asked for without a value)).
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter, or ``None``."""
        return self.params.get("branch")


_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(;.*)?",
                  re.I | re.S)


def parse_via(text: str) -> Via:
    """Parse one Via entry (``SIP/2.0/UDP host:port;branch=...``)."""
    match = _VIA.fullmatch(text.strip())
    if not match:
        raise SipError(f"bad Via {text[:80]!r}")
    host, port = parse_hostport(match.group(2))
    params = parse_params(match.group(3)[1:]) if match.group(3) else {}
    return Via(match.group(1).upper(), host, port, params)


def parse_cseq(text: str) -> tuple[int, str]:
    """Parse a CSeq value into (sequence number < 2**31, method)."""
    parts = text.split()
    if len(parts) != 2 or not _DIGITS.fullmatch(parts[0]) or not _TOKEN.fullmatch(parts[1]):
        raise SipError(f"bad CSeq {text[:60]!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise SipError(f"CSeq number {number} is not below 2**31")
    return number, parts[1]


# --- messages ----------------------------------------------------------------------

class Message:
    """Headers (a list of (canonical name, value) in order) and a body (bytes)."""

    def __init__(self, headers: Iterable[tuple[str, str]] = (), body: bytes = b""):
        self.headers: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in headers]
        self.body = bytes(body)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first ``name`` header (any form of the name), or ``default``."""
        want = canonical_name(name).lower()
        for n, v in self.headers:
            if n.lower() == want:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, comma lists split for list headers (Via, Route...)."""
        canon = canonical_name(name)
        want = canon.lower()
        values = [v for n, v in self.headers if n.lower() == want]
        if canon in LIST_HEADERS:
            return [item for v in values for item in split_list(v)]
        return values

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header by one with ``value`` (in the first one's place)."""
        canon = canonical_name(name)
        want = canon.lower()
        for i, (n, _) in enumerate(self.headers):
            if n.lower() == want:
                self.headers[i] = (canon, value)
                self.headers[i + 1:] = [h for h in self.headers[i + 1:] if h[0].lower() != want]
                return
        self.headers.append((canon, value))

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Add a ``name`` header, at the top of the message with ``first``."""
        item = (canonical_name(name), value)
        if first:
            self.headers.insert(0, item)
        else:
            self.headers.append(item)

    def remove(self, name: str) -> None:
        """Remove every ``name`` header."""
        want = canonical_name(name).lower()
        self.headers = [h for h in self.headers if h[0].lower() != want]

    # Structured views of the common headers; each raises SipError when missing or malformed.
    def required(self, name: str) -> str:
        """The value of header ``name``; :class:`SipError` when it is missing or empty."""
        value = self.get(name)
        if not value:
            raise SipError(f"no {canonical_name(name)}")
        return value

    @property
    def call_id(self) -> str:
        return self.required("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.required("CSeq"))

    @property
    def from_(self) -> Address:
        return parse_address(self.required("From"))

    @property
    def to(self) -> Address:
        return parse_address(self.required("To"))

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.get_all("Via")]

    @property
    def contacts(self) -> list[Address]:
        return [parse_address(v) for v in self.get_all("Contact")]

    def _head_lines(self) -> list[str]:
        return [f"{n}: {v}" for n, v in self.headers if n.lower() != "content-length"]

    def _encode(self, start: str) -> bytes:
        lines = [start, *self._head_lines(), f"Content-Length: {len(self.body)}", "", ""]
        return "\r\n".join(lines).encode() + self.body


class Request(Message):
    """A SIP request: ``method`` (upper-case token), ``uri`` (a :class:`SipUri`)."""

    def __init__(self, method: str, uri: SipUri, headers: Iterable[tuple[str, str]] = (),
                 body: bytes = b""):
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    def __bytes__(self) -> bytes:
        return self._encode(f"{self.method} {self.uri} SIP/2.0")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri!r} Call-ID={self.get('Call-ID')!r}>"

    def copy(self) -> Request:
        return Request(self.method, self.uri, list(self.headers), self.body)


class Response(Message):
    """A SIP response: ``status`` (100..699) and ``reason`` phrase."""

    def __init__(self, status: int, reason: str = "", headers: Iterable[tuple[str, str]] = (),
                 body: bytes = b""):
        super().__init__(headers, body)
        self.status = status
        self.reason = reason or REASONS.get(status, "Unknown")

    def __bytes__(self) -> bytes:
        return self._encode(f"SIP/2.0 {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r} CSeq={self.get('CSeq')!r}>"

    def copy(self) -> Response:
        return Response(self.status, self.reason, list(self.headers), self.body)


REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    422: "Session Interval Too Small", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

_METHOD = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_REQUIRED = ("To", "From", "Call-ID", "CSeq", "Via")


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = data.find(sep)
        if at >= 0:
            return data[:at], data[at + len(sep):]
    return data, b""


def _unfold(head: str) -> list[str]:
    lines: list[str] = []
    for raw in re.split(r"\r?\n", head):
        if raw[:1] in (" ", "\t"):
            if not lines:
                raise SipError("message starts with a continuation line")
            lines[-1] += " " + raw.strip()
        else:
            lines.append(raw)
        if len(lines[-1]) > MAX_LINE:
            raise SipError(f"header line longer than {MAX_LINE} octets", 413)
    return lines


def parse(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one whole SIP message (a datagram, or one framed by :class:`Framer`).

    Leading CRLFs (keep-alives) are skipped. The body is cut to ``Content-Length``; a
    body shorter than it is an error. Without ``Content-Length`` the body is the rest of
    the datagram (RFC 3261 section 18.3), unless ``stream`` (then it is required).
    Structural checks: the start line, SIP/2.0 (else status 505), the header syntax, the
    five mandatory headers, the CSeq syntax and, in a request, its method matching.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SipError(f"a SIP message is bytes, not {type(data).__name__}", None)
    data = bytes(data)
    if len(data) > MAX_MESSAGE:
        raise SipError(f"message of {len(data)} octets (limit {MAX_MESSAGE})", 413)
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipError("empty message", None)
    head_bytes, body = _split_head(data)
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipError(f"message head is not UTF-8 ({exc.reason} at {exc.start})") from None
    lines = _unfold(head)
    if len(lines) - 1 > MAX_HEADERS:
        raise SipError(f"more than {MAX_HEADERS} header fields", 413)
    start = lines[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN.fullmatch(name):
            raise SipError(f"bad header line {line[:80]!r}")
        headers.append((name, _check_text(_LWS.sub(" ", value.strip()), name)))
    message = _start_line(start, headers)
    for required in _REQUIRED:
        if message.get(required) is None:
            raise SipError(f"no {required} header")
    if not message.get_all("Via"):
        raise SipError("an empty Via header")
    number, method = message.cseq
    if isinstance(message, Request) and method != message.method:
        raise SipError(f"CSeq method {method} differs from the request's {message.method}")
    lengths = {v.strip() for v in message.get_all("Content-Length")}
    if len(lengths) > 1:
        raise SipError("conflicting Content-Length headers")
    if lengths:
        text = lengths.pop()
        if not _DIGITS.fullmatch(text):
            raise SipError(f"bad Content-Length {text[:20]!r}")
        length = int(text)
        if length > len(body):
            raise SipError(f"Content-Length {length} but {len(body)} octets of body")
        body = body[:length]
    elif stream:
        raise SipError("no Content-Length on a stream transport")
    if len(body) > MAX_BODY:
        raise SipError(f"body of {len(body)} octets (limit {MAX_BODY})", 413)
    message.body = body
    return message


def _start_line(start: str, headers: list[tuple[str, str]]) -> Request | Response:
    parts = start.split(" ")
    if start.upper().startswith("SIP/"):
        if len(parts) < 2 or not re.fullmatch(r"[0-9]{3}", parts[1]):
            raise SipError(f"bad status line {start[:80]!r}", None)
        if parts[0].upper() != "SIP/2.0":
            raise SipError(f"version {parts[0][:20]!r} is not SIP/2.0", None)
        status = int(parts[1])
        if not 100 <= status <= 699:
            raise SipError(f"status {status} out of 100..699", None)
        reason = _check_text(" ".join(parts[2:]), "reason phrase")
        return Response(status, reason, headers)
    if len(parts) != 3:
        raise SipError(f"bad request line {start[:80]!r}")
    method, uri_text, version = parts
    if not _METHOD.fullmatch(method):
        raise SipError(f"bad method {method[:40]!r}")
    if not version.upper().startswith("SIP/") or not re.fullmatch(r"[0-9]+\.[0-9]+",
                                                                   version[4:]):
        raise SipError(f"bad version {version[:20]!r}")
    if version.upper() != "SIP/2.0":
        raise SipError(f"version {version[:20]!r} is not SIP/2.0", 505)
    return Request(method, parse_uri(uri_text, allow_headers=False), headers)


class Framer:
    """Cut a stream (TCP) into SIP messages by their ``Content-Length``.

    :meth:`feed` adds bytes; :meth:`next_message` returns the next whole message, or
    ``None`` when more data is needed. CRLF keep-alives between messages are skipped
    (RFC 5626 section 3.5.1). A malformed message that could be delimited raises
    :class:`SipError` and is consumed (the next call reads on). A head longer than
    :data:`MAX_MESSAGE`, a bad or oversized ``Content-Length`` raise :class:`SipError`
    without consuming: the stream has lost its framing and should be closed.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data
        if len(self._buffer) > 4 * MAX_MESSAGE:
            raise SipError("stream buffer over its limit", None)

    def next_message(self) -> Request | Response | None:
        """The next complete message, or ``None``."""
        while self._buffer[:2] == b"\r\n" or self._buffer[:1] == b"\n":
            del self._buffer[:2 if self._buffer[:1] == b"\r" else 1]
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_MESSAGE:
                raise SipError("message head over the size limit", 413)
            return None
        head = bytes(self._buffer[:end])
        length = 0
        for line in _unfold(head.decode("utf-8", "replace"))[1:]:
            name, _, value = line.partition(":")
            if canonical_name(name.strip()) == "Content-Length":
                if not _DIGITS.fullmatch(value.strip()):
                    raise SipError(f"bad Content-Length {value.strip()[:20]!r}")
                length = int(value.strip())
        if length > MAX_BODY:
            raise SipError(f"Content-Length {length} over the limit {MAX_BODY}", 413)
        total = end + 4 + length
        if len(self._buffer) < total:
            return None
        data = bytes(self._buffer[:total])
        del self._buffer[:total]
        return parse(data, stream=True)
