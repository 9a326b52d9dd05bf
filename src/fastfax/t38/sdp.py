"""T.38 in SDP: the ``m=image PORT udptl t38`` media description and its attributes (sans-I/O).

:func:`parse_media` reads one media description (its ``m=`` line and the ``c=``, ``a=``,
``b=``, ``i=``, ``k=`` lines after it, no session-level lines, no other media) into an
:class:`ImageMedia`; :func:`format_media` writes one; :func:`negotiate` computes the
parameters of an answer from an offer and our own limits. Units: bit rates in bit/s,
``T38FaxMaxBuffer``, ``T38FaxMaxDatagram`` and ``T38FaxMaxIFP`` in octets, versions and
redundancy depths are plain counts.

What we accept (the attributes are defined in ITU-T T.38 Annex D and registered by
RFC 4612; the leniency follows what deployed peers send and accept):

- Attribute names in any letter case (``T38MaxBitRate``, ``T38maxBitRate``,
  ``T38MaxBitrate``, ``T38FaxUdpEc``...), as Asterisk (``pj_stricmp2``), FreeSWITCH
  (``strcasecmp``) and chan_sip (lower-cases the line) do. Two older names are aliases,
  as in Asterisk: ``T38FaxMaxRate`` = ``T38MaxBitRate`` and ``T38MaxDatagram`` =
  ``T38FaxMaxDatagram``.
- The values of ``T38FaxRateManagement`` and ``T38FaxUdpEC`` in any letter case.
- Boolean attributes (``T38FaxFillBitRemoval``, ``T38FaxTranscodingMMR``,
  ``T38FaxTranscodingJBIG``) bare (true: RFC 4612 "inclusion = true, exclusion = false"),
  or with ``:1`` / ``:0`` as Cisco IOS gateways send them (``:0`` is false, as FreeSWITCH
  and rtpengine read it; Asterisk reads any presence as true). Any other value is an
  error. :attr:`ImageMedia.explicit_booleans` says the peer used values, so an answer can
  use its style (FreeSWITCH's ``t38_broken_boolean`` does the same).
- ``T38FaxUdpEC`` may be repeated: some offers list several schemes (one real offer
  carries ``t38UDPRedundancy`` then ``t38UDPFEC``, sipwise/rtpengine issue 1100). All
  are kept in :attr:`ImageMedia.error_corrections`, in order; the first is
  :attr:`T38Params.error_correction`. A value we do not know is kept in ``extra`` and
  not offered. Without any ``T38FaxUdpEC`` the peer gets ``"none"``: Asterisk leaves
  the attribute out when it uses no error correction (rtpengine assumes redundancy
  instead; sending less redundancy than a peer could take is the safe reading).
  We write ``t38UDPNoEC`` for ``"none"`` so the answer is never ambiguous.
- ``T38FaxUdpECDepth:minred [maxred]`` (a later addition to Annex D): one or two counts
  separated by a space, as rtpengine parses it; ``maxred`` may be absent.
- Spaces around an attribute's name and value are ignored.
- Every other attribute once at most; a repeated one is an error (no guessing which
  of two versions a peer meant). Unknown attributes (``sendrecv``, ``T38ModemType``,
  ``ptime``...) and ``b=``/``i=``/``k=`` lines are kept verbatim in ``extra``.
- Without ``T38FaxVersion`` the version is 0 (RFC 4612: "Absence of this parameter
  indicates version 0"). Without ``T38FaxRateManagement`` (mandatory, but be liberal)
  it is ``transferredTCF``, the method used over UDP. Without ``T38MaxBitRate`` it is
  14400.

Integers are ASCII digits only (no sign, no exponent, at most 9 digits). Bounds beyond
that: versions 0..255 (0..3 exist; RFC 4612: "New versions shall be compatible with
previous versions", so a higher offer is answered with ours, see :func:`negotiate`); bit
rate and buffer at least 1; datagram and IFP sizes 1..65535; redundancy depths 0..255,
FEC span 1..255; ``T38VendorInfo`` 1..256 printable ASCII characters. Anything else
raises :class:`~fastfax.errors.T38Error`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import T38Error

__all__ = [
    "RateManagement",
    "ErrorCorrection",
    "T38Params",
    "ImageMedia",
    "parse_media",
    "format_media",
    "rejected_media",
    "negotiate",
]

RateManagement = Literal["transferredTCF", "localTCF"]
ErrorCorrection = Literal["none", "redundancy", "fec"]

#: Error correction schemes from weakest to strongest.
_EC_ORDER: tuple[ErrorCorrection, ...] = ("none", "redundancy", "fec")
_EC_TOKEN = {"none": "t38UDPNoEC", "redundancy": "t38UDPRedundancy", "fec": "t38UDPFEC"}
_EC_FROM_TOKEN = {token.lower(): ec for ec, token in _EC_TOKEN.items()}
_RM_FROM_TOKEN = {"transferredtcf": "transferredTCF", "localtcf": "localTCF"}

_MAX_LINES = 256
_MAX_LINE_CHARS = 1024
_DIGITS = re.compile(r"[0-9]{1,9}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_VENDOR_INFO = re.compile(r"[\x20-\x7e]{1,256}")
_EXTRA_LINE = re.compile(r"[abik]=[^\x00-\x1f\x7f]*")


@dataclass(frozen=True)
class T38Params:
    """The T.38 session parameters one side states in SDP.

    ``max_buffer``, ``max_datagram``, ``max_ifp`` (octets), ``ec_depth`` (min, max
    redundant or FEC messages; max may be ``None``), ``fec_max_span`` and
    ``vendor_info`` are ``None`` when not stated. Invalid values raise
    :class:`~fastfax.errors.T38Error`.
    """

    version: int = 0
    max_bit_rate: int = 14400
    fill_bit_removal: bool = False
    transcoding_mmr: bool = False
    transcoding_jbig: bool = False
    rate_management: RateManagement = "transferredTCF"
    max_buffer: int | None = None
    max_datagram: int | None = None
    error_correction: ErrorCorrection = "redundancy"
    ec_depth: tuple[int, int | None] | None = None
    fec_max_span: int | None = None
    vendor_info: str | None = None
    max_ifp: int | None = None

    def __post_init__(self) -> None:
        _check_int("version", self.version, 0, 255)
        _check_int("max_bit_rate", self.max_bit_rate, 1, None)
        for name in ("fill_bit_removal", "transcoding_mmr", "transcoding_jbig"):
            if type(getattr(self, name)) is not bool:
                raise T38Error(f"{name} must be a bool, not {getattr(self, name)!r}")
        if self.rate_management not in ("transferredTCF", "localTCF"):
            raise T38Error(f"rate_management must be 'transferredTCF' or 'localTCF', "
                           f"not {self.rate_management!r}")
        if self.error_correction not in _EC_ORDER:
            raise T38Error(f"error_correction must be one of {_EC_ORDER}, "
                           f"not {self.error_correction!r}")
        _check_optional("max_buffer", self.max_buffer, 1, None)
        _check_optional("max_datagram", self.max_datagram, 1, 65535)
        _check_optional("max_ifp", self.max_ifp, 1, 65535)
        _check_optional("fec_max_span", self.fec_max_span, 1, 255)
        if self.ec_depth is not None:
            if not (isinstance(self.ec_depth, tuple) and len(self.ec_depth) == 2):
                raise T38Error(f"ec_depth must be (min, max) or None, not {self.ec_depth!r}")
            low, high = self.ec_depth
            _check_int("ec_depth min", low, 0, 255)
            _check_optional("ec_depth max", high, 0, 255)
            if high is not None and high < low:
                raise T38Error(f"ec_depth max {high} is below its min {low}")
        if self.vendor_info is not None:
            info = self.vendor_info
            if (not isinstance(info, str) or not _VENDOR_INFO.fullmatch(info)
                    or info != info.strip(" ")):
                raise T38Error(f"vendor_info must be 1..256 printable ASCII characters "
                               f"without surrounding spaces, not {info!r}")


@dataclass(frozen=True)
class ImageMedia:
    """One parsed ``m=image PORT udptl t38`` media description.

    ``connection`` is the address of a media-level ``c=`` line (``None``: the session's
    applies). ``extra`` holds the lines kept but not interpreted, verbatim (``a=sendrecv``,
    ``b=AS:46``...). ``error_corrections`` lists every ``T38FaxUdpEC`` scheme stated, in
    order; ``explicit_booleans`` is true when a boolean attribute carried ``:0``/``:1``.
    """

    port: int
    params: T38Params
    connection: str | None = None
    extra: tuple[str, ...] = ()
    error_corrections: tuple[ErrorCorrection, ...] = ()
    explicit_booleans: bool = False

    @property
    def rejected(self) -> bool:
        """True for port 0: the stream is refused (RFC 3264 section 6)."""
        return self.port == 0


def parse_media(lines: Sequence[str]) -> ImageMedia:
    """Parse one T.38 media description given as its lines (CR/LF endings allowed).

    The first non-empty line must be ``m=image PORT udptl t38``; blank lines are
    skipped. Raises :class:`~fastfax.errors.T38Error` for anything malformed (see the
    module documentation for what is accepted).
    """
    if isinstance(lines, str | bytes) or not isinstance(lines, Sequence):
        raise T38Error("parse_media takes a sequence of lines, not one string")
    if len(lines) > _MAX_LINES:
        raise T38Error(f"{len(lines)} lines: more than {_MAX_LINES} in one media description")
    port: int | None = None
    connection: str | None = None
    extra: list[str] = []
    fields: dict[str, object] = {}
    ecs: list[ErrorCorrection] = []
    explicit = False
    for raw in lines:
        if not isinstance(raw, str):
            raise T38Error(f"SDP lines must be str, not {type(raw).__name__}")
        line = raw.rstrip("\r\n")
        if len(line) > _MAX_LINE_CHARS:
            raise T38Error(f"SDP line of {len(line)} characters (limit {_MAX_LINE_CHARS})")
        if not line.strip():
            continue
        if any(c in line for c in "\r\n\x00"):
            raise T38Error(f"control character inside SDP line {line!r}")
        kind, eq, value = line[0], line[1:2], line[2:]
        if eq != "=":
            raise T38Error(f"not an SDP line: {line!r}")
        if port is None:
            if kind != "m":
                raise T38Error(f"a media description starts with m=, not {line!r}")
            port = _parse_m_line(value)
        elif kind == "m":
            raise T38Error("a second m= line: give one media description at a time")
        elif kind == "c":
            if connection is not None:
                raise T38Error("more than one c= line in the media description")
            connection = _parse_c_line(value)
        elif kind == "a":
            explicit |= _parse_attribute(value, line, fields, ecs, extra)
        elif kind in "bik":
            extra.append(line)
        else:
            raise T38Error(f"{kind}= line is not allowed inside a media description")
    if port is None:
        raise T38Error("no m=image line")
    fields["error_correction"] = ecs[0] if ecs else "none"
    params = T38Params(**fields)  # type: ignore[arg-type]
    return ImageMedia(port, params, connection, tuple(extra), tuple(ecs), explicit)


def format_media(
    port: int,
    params: T38Params,
    *,
    connection: str | None = None,
    explicit_booleans: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The lines (without CRLF) of ``m=image PORT udptl t38`` stating ``params``.

    Attribute spelling and order follow Asterisk, FreeSWITCH and Cisco. ``connection``
    adds a media-level ``c=IN IP4|IP6 address`` (IP6 when the address holds a colon).
    Booleans are written bare when true and left out when false, or as ``:1``/``:0``
    with ``explicit_booleans``. ``extra`` lines (``a=sendrecv``...) are appended as given.
    """
    if type(port) is not int or not 0 <= port <= 65535:
        raise T38Error(f"port must be an int in 0..65535, not {port!r}")
    if not isinstance(params, T38Params):
        raise T38Error(f"params must be T38Params, not {type(params).__name__}")
    out = [f"m=image {port} udptl t38"]
    if connection is not None:
        addr_type = "IP6" if isinstance(connection, str) and ":" in connection else "IP4"
        out.append("c=" + _format_c_line(addr_type, connection))
    out += [f"a=T38FaxVersion:{params.version}", f"a=T38MaxBitRate:{params.max_bit_rate}"]
    for name, on in (("T38FaxFillBitRemoval", params.fill_bit_removal),
                     ("T38FaxTranscodingMMR", params.transcoding_mmr),
                     ("T38FaxTranscodingJBIG", params.transcoding_jbig)):
        if explicit_booleans:
            out.append(f"a={name}:{int(on)}")
        elif on:
            out.append(f"a={name}")
    out.append(f"a=T38FaxRateManagement:{params.rate_management}")
    for name, number in (("T38FaxMaxBuffer", params.max_buffer),
                         ("T38FaxMaxDatagram", params.max_datagram),
                         ("T38FaxMaxIFP", params.max_ifp)):
        if number is not None:
            out.append(f"a={name}:{number}")
    out.append(f"a=T38FaxUdpEC:{_EC_TOKEN[params.error_correction]}")
    if params.ec_depth is not None:
        low, high = params.ec_depth
        out.append(f"a=T38FaxUdpECDepth:{low}" + ("" if high is None else f" {high}"))
    if params.fec_max_span is not None:
        out.append(f"a=T38FaxUdpFECMaxSpan:{params.fec_max_span}")
    if params.vendor_info is not None:
        out.append(f"a=T38VendorInfo:{params.vendor_info}")
    for line in extra:
        if not isinstance(line, str) or not _EXTRA_LINE.fullmatch(line):
            raise T38Error(f"extra line must be an a=, b=, i= or k= line, not {line!r}")
        if line.startswith("a=") and _field_of(line[2:].partition(":")[0]) is not None:
            raise T38Error(f"extra line {line!r} would repeat a T.38 parameter")
        out.append(line)
    return out


def rejected_media() -> list[str]:
    """The media description of an answer refusing T.38: ``m=image 0 udptl t38``."""
    return ["m=image 0 udptl t38"]


def negotiate(
    offer: T38Params,
    local: T38Params,
    *,
    error_corrections: Sequence[ErrorCorrection] = (),
) -> T38Params:
    """The parameters to answer ``offer`` with, given our own limits ``local``.

    ``local`` states the highest version, bit rate and error correction we implement
    (implementing a scheme means implementing the weaker ones too: fec > redundancy >
    none) and our receive limits. ``error_corrections`` is every scheme the offer
    listed (:attr:`ImageMedia.error_corrections`); by default ``offer``'s one.

    - version: the lower of the two. The answer may not exceed the offer (Asterisk's
      res_pjsip_t38 takes ``MIN``; FreeSWITCH's mod_spandsp caps at 3), and newer
      versions are compatible with older ones (RFC 4612 ``T38FaxVersion``).
    - max_bit_rate: the lower of the two, so neither side is asked for a modem it lacks.
    - rate_management: the offer's; the answer echoes it (Asterisk copies the peer's).
      Over UDPTL it is ``transferredTCF`` in practice; a caller that cannot do
      ``localTCF`` refuses the stream instead.
    - fill_bit_removal, transcoding_mmr, transcoding_jbig: only when both sides state
      them; an answer never adds a boolean the offer lacked (Asterisk clears ours
      unless theirs is set).
    - max_buffer, max_datagram, max_ifp, ec_depth, fec_max_span, vendor_info: ours.
      These declare what the stating side can receive (Asterisk and FreeSWITCH answer
      with their own datagram size), so they are not bargained over; ec_depth is kept
      only with error correction and fec_max_span only with FEC.
    - error_correction: the first offered scheme we implement, else the strongest we
      implement, which is then weaker than every offered one. An answer may step down
      fec -> redundancy -> none but never up (FreeSWITCH answers t38UDPFEC offers with
      t38UDPRedundancy).
    """
    if not isinstance(offer, T38Params) or not isinstance(local, T38Params):
        raise T38Error("negotiate takes two T38Params")
    listed = tuple(error_corrections) or (offer.error_correction,)
    for ec in listed:
        if ec not in _EC_ORDER:
            raise T38Error(f"unknown error correction {ec!r}")
    strongest = _EC_ORDER.index(local.error_correction)
    chosen = next((ec for ec in listed if _EC_ORDER.index(ec) <= strongest),
                  local.error_correction)
    return T38Params(
        version=min(offer.version, local.version),
        max_bit_rate=min(offer.max_bit_rate, local.max_bit_rate),
        fill_bit_removal=offer.fill_bit_removal and local.fill_bit_removal,
        transcoding_mmr=offer.transcoding_mmr and local.transcoding_mmr,
        transcoding_jbig=offer.transcoding_jbig and local.transcoding_jbig,
        rate_management=offer.rate_management,
        max_buffer=local.max_buffer,
        max_datagram=local.max_datagram,
        max_ifp=local.max_ifp,
        error_correction=chosen,
        ec_depth=local.ec_depth if chosen != "none" else None,
        fec_max_span=local.fec_max_span if chosen == "fec" else None,
        vendor_info=local.vendor_info,
    )


# --- helpers -------------------------------------------------------------------------

#: Lower-case attribute name -> (T38Params field, kind). Kinds: int, bool, rm, ec, depth, text.
_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "t38faxversion": ("version", "int"),
    "t38maxbitrate": ("max_bit_rate", "int"),
    "t38faxmaxrate": ("max_bit_rate", "int"),
    "t38faxfillbitremoval": ("fill_bit_removal", "bool"),
    "t38faxtranscodingmmr": ("transcoding_mmr", "bool"),
    "t38faxtranscodingjbig": ("transcoding_jbig", "bool"),
    "t38faxratemanagement": ("rate_management", "rm"),
    "t38faxmaxbuffer": ("max_buffer", "int"),
    "t38faxmaxdatagram": ("max_datagram", "int"),
    "t38maxdatagram": ("max_datagram", "int"),
    "t38faxmaxifp": ("max_ifp", "int"),
    "t38faxudpec": ("error_correction", "ec"),
    "t38faxudpecdepth": ("ec_depth", "depth"),
    "t38faxudpfecmaxspan": ("fec_max_span", "int"),
    "t38vendorinfo": ("vendor_info", "text"),
}


def _field_of(name: str) -> str | None:
    entry = _ATTRIBUTES.get(name.strip().lower())
    return None if entry is None else entry[0]


def _parse_attribute(value: str, line: str, fields: dict[str, object],
                     ecs: list[ErrorCorrection], extra: list[str]) -> bool:
    """Store one ``a=`` attribute; True when it is a boolean written with a value."""
    name, colon, text = value.partition(":")
    name, text = name.strip(), text.strip()
    if not name:
        raise T38Error(f"attribute without a name: {line!r}")
    entry = _ATTRIBUTES.get(name.lower())
    if entry is None:
        extra.append(line)
        return False
    field, kind = entry
    if kind == "ec":
        ec = _EC_FROM_TOKEN.get(text.lower())
        if ec is None:
            extra.append(line)
        elif ec not in ecs:
            ecs.append(ec)
        return False
    if field in fields:
        raise T38Error(f"duplicated attribute {name} ({line!r})")
    if kind == "bool":
        if not colon:
            fields[field] = True
            return False
        if text not in ("0", "1"):
            raise T38Error(f"{name} takes no value, :0 or :1, not {text!r}")
        fields[field] = text == "1"
        return True
    if not colon or not text:
        raise T38Error(f"{name} needs a value ({line!r})")
    if kind == "int":
        fields[field] = _number(text, name)
    elif kind == "rm":
        rm = _RM_FROM_TOKEN.get(text.lower())
        if rm is None:
            raise T38Error(f"T38FaxRateManagement must be localTCF or transferredTCF, "
                           f"not {text!r}")
        fields[field] = rm
    elif kind == "depth":
        parts = text.split()
        if len(parts) > 2:
            raise T38Error(f"T38FaxUdpECDepth takes 'minred [maxred]', not {text!r}")
        low = _number(parts[0], name)
        fields[field] = (low, _number(parts[1], name) if len(parts) == 2 else None)
    else:
        fields[field] = text
    return False


def _number(text: str, what: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise T38Error(f"{what} must be 1..9 ASCII digits, not {text!r}")
    return int(text)


def _parse_m_line(value: str) -> int:
    parts = value.split()
    if len(parts) < 4:
        raise T38Error(f"m= line needs media, port, transport and format: {value!r}")
    media, port_text, proto, formats = parts[0], parts[1], parts[2], parts[3:]
    if media.lower() != "image":
        raise T38Error(f"media {media!r} is not image")
    if proto.lower() != "udptl":
        raise T38Error(f"transport {proto!r} is not udptl")
    if "t38" not in (f.lower() for f in formats):
        raise T38Error(f"format list {' '.join(formats)!r} has no t38")
    port = _number(port_text, "m= port")
    if port > 65535:
        raise T38Error(f"m= port {port} is above 65535")
    return port


def _parse_c_line(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise T38Error(f"c= line must be 'IN IP4|IP6 address', not {value!r}")
    _format_c_line(parts[1], parts[2])
    return parts[2]


def _format_c_line(addr_type: str, address: object) -> str:
    """``IN <addr_type> <address>`` after checking the address fits the type."""
    if not isinstance(address, str):
        raise T38Error(f"connection address must be a str, not {type(address).__name__}")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        if not _HOSTNAME.fullmatch(address):
            raise T38Error(f"connection address {address!r} is neither an IP address "
                           f"nor a host name") from None
    else:
        if (ip.version == 6) != (addr_type == "IP6"):
            raise T38Error(f"connection address {address!r} is not {addr_type}")
    return f"IN {addr_type} {address}"


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if type(value) is not int or value < low or (high is not None and value > high):
        bound = f"{low}.." if high is None else f"{low}..{high}"
        raise T38Error(f"{name} must be an int in {bound}, not {value!r}")


def _check_optional(name: str, value: object, low: int, high: int | None) -> None:
    if value is not None:
        _check_int(name, value, low, high)
