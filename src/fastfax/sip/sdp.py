"""Session descriptions (RFC 4566) and offer/answer (RFC 3264) for a fax call, sans-I/O.

A fax call offers audio (``m=audio PORT RTP/AVP 0 8 [101]``: PCMU, PCMA and optionally
telephone-event, RFC 4733) and/or T.38 (``m=image PORT udptl t38``, whose attributes are
read and written by :mod:`fastfax.t38.sdp`). :func:`parse` reads a whole body into a
:class:`SessionDescription`, ``bytes(description)`` writes one, :func:`answer` answers an
offer stream by stream (a refused stream gets port 0, RFC 3264 section 6) and
:func:`offer` makes an offer. Ports are UDP port numbers; addresses are IPv4/IPv6 text.
Malformed input raises :class:`~fastfax.sip.SipError` (status 400; a T.38 attribute error
is carried over from :class:`~fastfax.errors.T38Error`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..errors import T38Error
from ..t38 import sdp as t38sdp
from ..t38.sdp import ImageMedia, T38Params
from .message import SipError

__all__ = ["Media", "SessionDescription", "Answer", "parse", "offer", "answer", "audio_media",
           "t38_media", "MAX_LINES"]

MAX_LINES = 512
MAX_LINE_CHARS = 1024
#: Static RTP payload types we can carry (RFC 3551): PCMU 0, PCMA 8.
STATIC_CODECS = {"0": "PCMU", "8": "PCMA"}
TELEPHONE_EVENT_PT = "101"

_PORT = re.compile(r"[0-9]{1,5}(?:/[0-9]{1,5})?")
_TOKEN = re.compile(r"[\x21-\x7e]+")
_ADDRESS = re.compile(r"[0-9A-Za-z.:\-]{1,255}")


@dataclass(frozen=True)
class Media:
    """One media description: ``m=KIND PORT PROTO FORMATS`` and the lines after it.

    ``lines`` holds every line after the ``m=`` line verbatim (``c=`` excluded: it is
    ``connection``). ``t38`` is the parsed :class:`~fastfax.t38.sdp.ImageMedia` of an
    ``m=image ... udptl t38`` description, else ``None``.
    """

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    lines: tuple[str, ...] = ()
    t38: ImageMedia | None = None

    @property
    def rejected(self) -> bool:
        """True for port 0 (a refused or removed stream)."""
        return self.port == 0

    @property
    def is_t38(self) -> bool:
        """True for ``m=image PORT udptl t38``."""
        return self.kind == "image" and self.proto.lower() == "udptl" and "t38" in self.formats

    @property
    def codecs(self) -> list[str]:
        """Encoding names of an audio stream's formats, in order (``PCMU``, ``PCMA``...)."""
        names = {}
        for line in self.lines:
            if line.lower().startswith("a=rtpmap:"):
                pt, _, rest = line[9:].partition(" ")
                names[pt] = rest.partition("/")[0]
        return [names.get(pt, STATIC_CODECS.get(pt, pt)) for pt in self.formats]

    def lines_out(self) -> list[str]:
        """This description's lines, ``m=`` first."""
        if self.t38 is not None and not self.rejected:
            return t38sdp.format_media(self.port, self.t38.params, connection=self.connection,
                                       explicit_booleans=self.t38.explicit_booleans,
                                       extra=self.t38.extra)
        out = [f"m={self.kind} {self.port} {self.proto} {' '.join(self.formats)}"]
        if self.connection is not None:
            out.append(f"c=IN {'IP6' if ':' in self.connection else 'IP4'} {self.connection}")
        return out + ([] if self.rejected else list(self.lines))


@dataclass(frozen=True)
class SessionDescription:
    """A whole SDP body: origin, session-level connection address and the media in order."""

    address: str
    media: tuple[Media, ...]
    session_id: int = 1
    version: int = 1
    username: str = "-"
    connection: str | None = None
    session_name: str = "-"

    def __bytes__(self) -> bytes:
        family = "IP6" if ":" in self.address else "IP4"
        conn = self.connection if self.connection is not None else self.address
        lines = ["v=0", f"o={self.username} {self.session_id} {self.version} IN {family} "
                 f"{self.address}", f"s={self.session_name}",
                 f"c=IN {'IP6' if ':' in conn else 'IP4'} {conn}", "t=0 0"]
        for media in self.media:
            lines += media.lines_out()
        return ("\r\n".join(lines) + "\r\n").encode()

    def media_address(self, media: Media) -> str | None:
        """Where ``media``'s packets go: its own ``c=`` address, else the session's."""
        return media.connection or self.connection

    def first(self, t38: bool) -> Media | None:
        """The first accepted (port != 0) T.38 stream (``t38``) or audio stream."""
        for media in self.media:
            if not media.rejected and (media.is_t38 if t38 else media.kind == "audio"):
                return media
        return None


def _conn(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SipError(f"bad c= line {value[:60]!r}")
    address = parts[2].split("/")[0]
    if not _ADDRESS.fullmatch(address):
        raise SipError(f"bad connection address {address[:60]!r}")
    return address


def parse(body: bytes | str) -> SessionDescription:
    """Parse an SDP body (CRLF or LF line ends). Raises :class:`SipError`."""
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise SipError("SDP body is not UTF-8") from None
    if not isinstance(body, str):
        raise SipError(f"SDP body must be bytes or str, not {type(body).__name__}")
    lines = [line for line in re.split(r"\r?\n", body) if line.strip()]
    if len(lines) > MAX_LINES:
        raise SipError(f"SDP of more than {MAX_LINES} lines", 413)
    if not lines or lines[0].strip() != "v=0":
        raise SipError("SDP does not start with v=0")
    origin: list[str] | None = None
    connection: str | None = None
    session_name = "-"
    sections: list[list[str]] = []
    for line in lines[1:]:
        if len(line) > MAX_LINE_CHARS or line[1:2] != "=" or any(c in line for c in "\r\x00"):
            raise SipError(f"bad SDP line {line[:60]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        elif kind == "o":
            origin = value.split()
        elif kind == "c":
            connection = _conn(value)
        elif kind == "s":
            session_name = value
    if origin is None or len(origin) != 6 or not all(re.fullmatch(r"[0-9]{1,20}", p)
                                                      for p in origin[1:3]):
        raise SipError("SDP without a valid o= line")
    media = tuple(_parse_media(section) for section in sections)
    return SessionDescription(origin[5], media, int(origin[1]), int(origin[2]), origin[0],
                              connection, session_name)


def _parse_media(section: list[str]) -> Media:
    parts = section[0][2:].split()
    if len(parts) < 4 or not _PORT.fullmatch(parts[1]) or not all(
            _TOKEN.fullmatch(p) for p in parts):
        raise SipError(f"bad m= line {section[0][:60]!r}")
    port = int(parts[1].split("/")[0])
    if port > 65535:
        raise SipError(f"port {port} out of range in {section[0][:60]!r}")
    kind, proto, formats = parts[0], parts[2], tuple(parts[3:])
    connection: str | None = None
    rest: list[str] = []
    for line in section[1:]:
        if line.startswith("c="):
            if connection is not None:
                raise SipError("two c= lines in one media description")
            connection = _conn(line[2:])
        else:
            rest.append(line)
    t38 = None
    if kind == "image" and proto.lower() == "udptl" and "t38" in formats and port:
        try:
            t38 = t38sdp.parse_media([f"m=image {port} udptl t38",
                                      *(x for x in rest if x[0] in "abik")])
        except T38Error as exc:
            raise SipError(f"T.38 media: {exc}") from None
    return Media(kind, port, proto, formats, connection, tuple(rest), t38)


def audio_media(port: int, *, codecs: Sequence[str] = ("PCMU", "PCMA"),
                telephone_event: bool = False, ptime: int | None = 20) -> Media:
    """An audio stream of G.711 ``codecs`` (PCMU and/or PCMA, in preference order)."""
    by_name = {name: pt for pt, name in STATIC_CODECS.items()}
    if not codecs or any(c not in by_name for c in codecs):
        raise SipError(f"codecs must be PCMU and/or PCMA, not {list(codecs)!r}")
    formats = [by_name[c] for c in codecs]
    lines = [f"a=rtpmap:{by_name[c]} {c}/8000" for c in codecs]
    if telephone_event:
        formats.append(TELEPHONE_EVENT_PT)
        lines += [f"a=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000",
                  f"a=fmtp:{TELEPHONE_EVENT_PT} 0-15"]
    if ptime:
        lines.append(f"a=ptime:{ptime}")
    return Media("audio", port, "RTP/AVP", tuple(formats), None, (*lines, "a=sendrecv"))


def t38_media(port: int, params: T38Params) -> Media:
    """A T.38 stream (``m=image PORT udptl t38``) stating ``params``."""
    lines = t38sdp.format_media(port, params)
    return Media("image", port, "udptl", ("t38",), None, tuple(lines[1:]),
                 t38sdp.parse_media(lines))


def offer(address: str, media: Sequence[Media], *, session_id: int = 1,
          version: int = 1) -> SessionDescription:
    """An offer from ``address`` with ``media`` in order."""
    return SessionDescription(address, tuple(media), session_id, version)


@dataclass(frozen=True)
class Answer:
    """The result of :func:`answer`: the description to send and the streams accepted.

    ``audio`` and ``t38`` are the offered streams we accepted (the peer's side: its port,
    its address in ``description_of_peer``), with ``t38_params`` the parameters agreed.
    """

    description: SessionDescription
    audio: Media | None = None
    t38: Media | None = None
    t38_params: T38Params | None = None
    codec: str | None = None
    peer_address: str | None = None
    rejected: tuple[int, ...] = field(default_factory=tuple)


def answer(offered: SessionDescription, address: str, *, audio_port: int | None,
           t38_port: int | None, t38_local: T38Params | None, session_id: int = 1,
           version: int = 1) -> Answer:
    """Answer ``offered`` from ``address``: accept the first audio stream with PCMU or PCMA
    when ``audio_port`` is given, the first T.38 stream when ``t38_port`` and ``t38_local``
    are given (parameters by :func:`fastfax.t38.sdp.negotiate`), and refuse every other
    stream with port 0. The answer has as many ``m=`` lines as the offer (RFC 3264 6)."""
    out: list[Media] = []
    got_audio: Media | None = None
    got_t38: Media | None = None
    params: T38Params | None = None
    codec: str | None = None
    refused: list[int] = []
    for index, media in enumerate(offered.media):
        if media.rejected:
            out.append(replace(media, lines=(), t38=None))
            continue
        if media.kind == "audio" and got_audio is None and audio_port:
            names = media.codecs
            common = [n for n in names if n in ("PCMU", "PCMA")]
            if common:
                got_audio, codec = media, common[0]
                out.append(audio_media(audio_port, codecs=common[:1],
                                       telephone_event="telephone-event" in names))
                continue
        if media.is_t38 and media.t38 is not None and got_t38 is None and t38_port \
                and t38_local is not None:
            try:
                params = t38sdp.negotiate(media.t38.params, t38_local,
                                          error_corrections=media.t38.error_corrections)
            except T38Error as exc:
                raise SipError(f"T.38 offer: {exc}", 488) from None
            got_t38 = media
            out.append(t38_media(t38_port, params))
            continue
        refused.append(index)
        out.append(Media(media.kind, 0, media.proto, media.formats))
    description = SessionDescription(address, tuple(out), session_id, version)
    chosen = got_t38 or got_audio
    peer = offered.media_address(chosen) if chosen is not None else None
    return Answer(description, got_audio, got_t38, params, codec, peer, tuple(refused))
