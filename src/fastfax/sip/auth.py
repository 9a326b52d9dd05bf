"""Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760), sans-I/O.

Client side: :func:`parse_challenge` reads a ``WWW-Authenticate`` / ``Proxy-Authenticate``
value, :func:`choose` picks the strongest challenge we implement (SHA-512-256, SHA-256,
MD5, each also in its ``-sess`` form), and :func:`authorization` computes the
``Authorization`` / ``Proxy-Authorization`` value with ``qop=auth`` (or none, RFC 2069
style, when the server offers no qop), ``nc`` and ``cnonce``. Server side (for tests and
a small registrar): :func:`challenge` and :func:`verify`.

:class:`Credentials` never shows its password in ``repr`` or ``str``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .message import SipError, quote, unquote

__all__ = ["Credentials", "Challenge", "parse_challenge", "choose", "authorization",
           "challenge", "verify", "parse_credentials", "ALGORITHMS"]

#: Algorithm name (upper-case, without ``-sess``) -> hash; strongest first.
ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
}

_PAIR = re.compile(r'\s*([A-Za-z0-9\-_]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]*)\s*(?:,|$)', re.S)


@dataclass(frozen=True)
class Credentials:
    """A user name and password for one realm (any realm when ``realm`` is ``None``)."""

    username: str
    password: str = field(repr=False)
    realm: str | None = None

    def __str__(self) -> str:
        return f"Credentials({self.username!r}, password=***)"

    __repr__ = __str__


@dataclass(frozen=True)
class Challenge:
    """One parsed ``Digest`` challenge. ``algorithm`` is upper-case (``MD5``, ``SHA-256-SESS``)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    userhash: bool = False

    @property
    def supported(self) -> bool:
        """True when we implement the algorithm and can meet the qop (auth, or none)."""
        base = self.algorithm.removesuffix("-SESS")
        return base in ALGORITHMS and (not self.qop or "auth" in self.qop)


def _pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PAIR.match(text, pos)
        if not match or match.end() == pos:
            raise SipError(f"bad digest parameters at {text[pos:pos + 40]!r}")
        name = match.group(1).lower()
        if name in out:
            raise SipError(f"digest parameter {name!r} given twice")
        out[name] = unquote(match.group(2))
        pos = match.end()
    return out


def parse_challenge(value: str) -> Challenge:
    """Parse a ``Digest realm=..., nonce=..., ...`` challenge. Other schemes are errors."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipError(f"not a Digest challenge: {scheme[:20]!r}", None)
    pairs = _pairs(rest)
    if "realm" not in pairs or "nonce" not in pairs:
        raise SipError("Digest challenge without realm or nonce", None)
    qop = tuple(q.strip().lower() for q in pairs.get("qop", "").split(",") if q.strip())
    return Challenge(pairs["realm"], pairs["nonce"], pairs.get("algorithm", "MD5").upper(), qop,
                     pairs.get("opaque"), pairs.get("stale", "").lower() == "true",
                     pairs.get("userhash", "").lower() == "true")


def choose(values: list[str]) -> Challenge | None:
    """The strongest challenge among header ``values`` that we implement, or ``None``."""
    order = list(ALGORITHMS)
    best: Challenge | None = None
    for value in values:
        try:
            candidate = parse_challenge(value)
        except SipError:
            continue
        if not candidate.supported:
            continue
        rank = order.index(candidate.algorithm.removesuffix("-SESS"))
        if best is None or rank < order.index(best.algorithm.removesuffix("-SESS")):
            best = candidate
    return best


def _response(ch: Challenge, username: str, password: str, method: str, uri: str,
              cnonce: str, nc: int, qop: str | None) -> str:
    base = ch.algorithm.removesuffix("-SESS")
    h = ALGORITHMS[base]
    ha1 = h(f"{username}:{ch.realm}:{password}".encode())
    if ch.algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{ch.nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{uri}".encode())
    if qop:
        return h(f"{ha1}:{ch.nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}".encode())
    return h(f"{ha1}:{ch.nonce}:{ha2}".encode())


def authorization(ch: Challenge, credentials: Credentials, method: str, uri: str, *,
                  cnonce: str, nc: int = 1) -> str:
    """The ``Authorization`` value answering ``ch`` for a ``method`` request to ``uri``.

    ``cnonce`` is the client nonce (random, chosen by the caller: this module draws no
    randomness) and ``nc`` the count of requests sent with this nonce (1, 2...).
    """
    if not ch.supported:
        raise SipError(f"digest algorithm {ch.algorithm} / qop {ch.qop} not supported", None)
    qop = "auth" if ch.qop else None
    username = credentials.username
    if ch.userhash:
        username = ALGORITHMS[ch.algorithm.removesuffix("-SESS")](
            f"{credentials.username}:{ch.realm}".encode())
    response = _response(ch, credentials.username, credentials.password, method, uri, cnonce,
                         nc, qop)
    parts = [f"username={quote(username)}", f"realm={quote(ch.realm)}",
             f"nonce={quote(ch.nonce)}", f"uri={quote(uri)}", f"response={quote(response)}",
             f"algorithm={ch.algorithm}"]
    if qop or ch.algorithm.endswith("-SESS"):  # -sess hashes the cnonce into HA1
        parts.append(f"cnonce={quote(cnonce)}")
    if qop:
        parts += [f"qop={qop}", f"nc={nc:08x}"]
    if ch.opaque is not None:
        parts.append(f"opaque={quote(ch.opaque)}")
    if ch.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


def challenge(realm: str, nonce: str, *, algorithm: str = "MD5", qop: bool = True,
              opaque: str | None = None, stale: bool = False) -> str:
    """A ``WWW-Authenticate`` value (server side)."""
    parts = [f"realm={quote(realm)}", f"nonce={quote(nonce)}", f"algorithm={algorithm}"]
    if qop:
        parts.append('qop="auth"')
    if opaque is not None:
        parts.append(f"opaque={quote(opaque)}")
    if stale:
        parts.append("stale=TRUE")
    return "Digest " + ", ".join(parts)


def parse_credentials(value: str) -> dict[str, str]:
    """The parameters of an ``Authorization`` value (lower-case names, values unquoted)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipError(f"not Digest credentials: {scheme[:20]!r}", 401)
    return _pairs(rest)


def verify(value: str, method: str, password_of: Callable[[str], str | None], *,
           realm: str, nonce: str) -> str | None:
    """Check an ``Authorization`` value (server side); the user name when it is right.

    ``password_of`` maps a user name to its password (``None``: unknown user). The
    nonce must be ``nonce`` and the realm ``realm``; qop ``auth`` or none.
    """
    try:
        got = parse_credentials(value)
    except SipError:
        return None
    username = got.get("username")
    if username is None or got.get("realm") != realm or got.get("nonce") != nonce:
        return None
    password = password_of(username)
    if password is None:
        return None
    ch = Challenge(realm, nonce, got.get("algorithm", "MD5").upper(),
                   ("auth",) if got.get("qop") else ())
    if not ch.supported or got.get("qop", "auth") != "auth":
        return None
    try:
        nc = int(got.get("nc", "1"), 16)
    except ValueError:
        return None
    expected = _response(ch, username, password, method, got.get("uri", ""),
                         got.get("cnonce", ""), nc, got.get("qop"))
    if hmac.compare_digest(expected, got.get("response", "")):
        return username
    return None
