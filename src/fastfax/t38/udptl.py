"""UDPTL, the datagram layer of T.38 (ITU-T T.38 clause 9.1; ASN.1 ``UDPTLPacket`` in Annex A,
encoded in aligned PER), sans-I/O: IFP packets in, datagrams out, and back.

Each datagram carries a 16-bit sequence number, one *primary* IFP packet and recovery data
for the IFPs sent before it, of one of two kinds:

- **redundancy**: copies of the previous IFPs (*secondary* IFP packets), newest first: the
  datagram of seq ``s`` carries ``s-1, s-2, ...``;
- **parity FEC**: ``fec-npackets`` (*span*) and ``entries`` XOR strings; string ``m``
  (0-based) is the XOR of the IFPs ``s + m - entries * j`` for j = 1..span, each zero-padded
  to the longest, so one lost IFP among those can be rebuilt. The layout is SpanDSP's and
  Asterisk's (the peers T.38 meets most); a rebuilt IFP is as long as the longest IFP of
  its string, i.e. it may end in zero octets it did not have. An IFP is self-delimiting in
  PER, so an IFP decoder reads its own length and ignores them.

IFP packets are opaque octet strings here (:mod:`fastfax.t38.ifp` decodes them). Sequence
numbers run 0..65535 and wrap to 0; comparisons are modulo 2**16, a seq up to 32767 ahead of
another being after it.

**T38FaxMaxDatagram.** Peers read the SDP attribute two ways: as the largest UDPTL datagram
(UDP payload) they accept, which is how SpanDSP and Asterisk read it (Asterisk then derives
a *far max IFP* from it), or as the largest IFP packet they accept, which some gateways
announce. :class:`UdptlEncoder`'s ``max_datagram`` always bounds the **whole datagram**:
pass the peer's value as is and you are safe under both readings, at worst sending less
redundancy than the peer could take. When a peer announces a value too small for your IFPs
plus recovery data, either keep IFPs at or below :attr:`UdptlEncoder.max_ifp` (image data
split finer), or, if the peer is known to mean an IFP size ``V``, keep IFPs at or below
``V`` and allow the datagram that carries them: ``max_datagram = (r + 1) * (V + 2) + 4``
for ``r`` redundant copies, ``(e + 1) * (V + 2) + 6`` for ``e`` FEC strings. Redundant
copies that do not fit are left out, oldest first; an IFP that does not fit on its own
raises :class:`~fastfax.errors.T38Error`.

**One native call per packet.** :meth:`UdptlEncoder.pack_indicator` and
:meth:`UdptlEncoder.pack_data` build the IFP (:mod:`fastfax.t38.ifp`) and its datagram in one
call, :meth:`UdptlDecoder.feed_ifp` delivers the IFPs decoded; :func:`pack_many` and
:func:`feed_many` do the same for a batch of packets of many calls (what a gateway's loop has
after one tick). The octets are the same as :func:`fastfax.t38.ifp.encode_data` then
:meth:`UdptlEncoder.pack`, and :meth:`UdptlDecoder.feed` then
:func:`fastfax.t38.ifp.decode_raw`.

**Buffers, no Python object per packet.** :func:`pack_into` and :func:`feed_into` do the
same for a batch held in caller-provided buffers, with the GIL released for the whole
batch: packets go in as *IFP records* (below) and come out as datagrams written back to
back into one buffer with a table of ``(call, offset, length)`` rows (what ``sendmmsg``
takes); received datagrams go in as one buffer with such a table (what ``recvmmsg``
fills) and come out as IFP records. :func:`write_records` and :func:`read_records` turn
records into Python values and back, for tests and for code that wants objects.

An **IFP record** (all big-endian): ``call`` u16 (the index of the call's encoder or
decoder in the sequence passed), ``seq`` u16 (the IFP's sequence number; ignored by
:func:`pack_into`), ``kind`` u8 (:data:`KIND_INDICATOR`, :data:`KIND_DATA`, and from
:func:`feed_into` also :data:`KIND_LOST` or :data:`KIND_INVALID`), ``type`` u8 (the
indicator or data type), ``nfields`` u16, then per field ``field type`` u8, ``length``
u16 (0: no field-data) and the data: 8 octets and 3 a field plus the data.

Bounds: IFPs and items up to 16383 octets (no fragmented lengths), at most 255 secondary
IFPs or FEC strings per datagram, FEC used on receipt when span x entries <= 128. Everything
the decoder keeps is bounded by its ring of 1024 slots and 256 pending FEC strings.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from ..errors import T38Error
from . import _udptl

__all__ = [
    "UdptlEncoder",
    "UdptlDecoder",
    "UdptlStats",
    "UdptlPacket",
    "FecInfo",
    "decode_datagram",
    "encode_datagram",
    "feed_many",
    "pack_many",
    "pack_into",
    "feed_into",
    "PackResult",
    "FeedResult",
    "IfpRecord",
    "write_records",
    "read_records",
    "KIND_INDICATOR",
    "KIND_DATA",
    "KIND_LOST",
    "KIND_INVALID",
    "RECORD_MAX",
    "MAX_IFP",
    "MAX_ITEMS",
]

#: Longest IFP packet (and secondary IFP or FEC string) in octets: what a PER length
#: determinant holds without fragmentation.
MAX_IFP = 16383
#: Most secondary IFP packets or FEC strings one datagram may carry.
MAX_ITEMS = 255
#: Largest UDP payload over IPv4.
_MAX_UDP = 65507
#: Widest FEC coverage (span x entries) the decoder uses and the encoder sends.
_MAX_COVER = 128
#: Largest reorder window.
_MAX_WINDOW = 512

_MODES = {"none": 0, "redundancy": 1, "fec": 2}

#: IFP record kinds: an indicator packet, a data packet, an IFP declared lost (no type, no
#: fields) and one that is not a valid IFP of the T.38 version read (ditto).
KIND_INDICATOR, KIND_DATA, KIND_LOST, KIND_INVALID = 0, 1, 2, 3
#: The least room (octets) :func:`feed_into` takes in ``out``: the longest IFP record a
#: 16383-octet IFP can decode to (8 + 7 x 16383).
RECORD_MAX: int = _udptl.RECORD_MAX


class FecInfo(NamedTuple):
    """The ``fec-info`` of a datagram: ``npackets`` (the span: IFPs per XOR string) and
    ``data`` (the XOR strings, the entries)."""

    npackets: int
    data: list[bytes]


class UdptlPacket(NamedTuple):
    """One decoded datagram. Exactly one of ``secondary`` (previous IFPs, newest first:
    seq-1, seq-2, ...) and ``fec`` is not None."""

    seq: int
    primary: bytes
    secondary: list[bytes] | None
    fec: FecInfo | None


@dataclass(frozen=True, slots=True)
class UdptlStats:
    """What a :class:`UdptlDecoder` has seen, counted in datagrams or IFP packets.

    ``duplicates``
        Datagrams whose primary IFP had already arrived as a primary (dropped).
    ``malformed``
        Datagrams that did not decode, or had an empty primary IFP (dropped).
    ``recovered_redundancy`` / ``recovered_fec``
        IFPs rebuilt from a later datagram's secondary copies / parity FEC.
    ``lost``
        IFPs declared lost: delivered as ``(seq, None)``.
    ``reordered``
        Datagrams that arrived after a later one, still in time to be used.
    ``late``
        Datagrams that arrived after their IFP had been rebuilt and delivered, declared
        lost, or left the decoder's memory (dropped).
    ``resyncs``
        Times the peer's numbering jumped by 896 or more and the decoder started over.
    """

    duplicates: int
    malformed: int
    recovered_redundancy: int
    recovered_fec: int
    lost: int
    reordered: int
    late: int
    resyncs: int


def decode_datagram(datagram: bytes | bytearray | memoryview) -> UdptlPacket:
    """Decode one UDPTL datagram strictly.

    Returns ``(seq, primary, secondary, fec)`` (a :class:`UdptlPacket`); raises
    :class:`~fastfax.errors.T38Error` saying what is wrong (too short, a length past the end,
    a fragmented length, too many items, a negative or over-long ``fec-npackets``, trailing
    octets). The padding bits after the CHOICE index are ignored, as peers do.
    """
    seq, primary, secondary, fec = _udptl.decode_datagram(datagram)
    return UdptlPacket(seq, primary, secondary, None if fec is None else FecInfo(*fec))


def encode_datagram(
    seq: int,
    primary: bytes,
    secondary: list[bytes] | None = None,
    fec: tuple[int, list[bytes]] | None = None,
) -> bytes:
    """Encode one UDPTL datagram from its parts, exactly as given.

    ``secondary`` (previous IFPs, newest first) and ``fec`` (``(npackets, strings)``) are
    exclusive; with neither the datagram carries an empty secondary list (no recovery).
    This is the inverse of :func:`decode_datagram`; :class:`UdptlEncoder` builds the recovery
    data itself.
    """
    if secondary is not None and fec is not None:
        raise T38Error("a datagram carries secondary IFP packets or FEC data, not both")
    if not isinstance(seq, int) or not 0 <= seq <= 0xFFFF:
        raise T38Error(f"seq must be an integer from 0 to 65535, got {seq!r}")
    if fec is not None:
        npackets, data = fec
        if not isinstance(npackets, int) or not 0 <= npackets < 1 << 31:
            raise T38Error(f"fec npackets must be an integer from 0 to 2**31-1, got {npackets!r}")
        return _udptl.encode_datagram(seq, primary, None, (npackets, list(data)))
    return _udptl.encode_datagram(seq, primary, list(secondary or ()), None)


def pack_many(items: list[tuple[UdptlEncoder, int, int, object]], version: int = 0) -> list[bytes]:
    """The datagrams of a batch, in order, in one native call: each item
    ``(encoder, kind, type, fields)`` is ``encoder.pack`` of the IFP of ``kind`` 0 (``type``
    an indicator 0..22, ``fields`` ignored) or 1 (``type`` a data type 0..14, ``fields`` as
    :func:`fastfax.t38.ifp.encode_data` takes them), T.38 ``version`` 0..3. Items may share an
    encoder. An item that raises :class:`~fastfax.errors.T38Error` ends the batch there: the
    items before it were packed."""
    return _udptl.pack_many(items, version)


def feed_many(
    items: list[tuple[UdptlDecoder, bytes]], version: int = 0
) -> list[tuple[int, int, int, int, object]]:
    """Feed a batch of received datagrams ``(decoder, datagram)`` in one native call; return
    every IFP delivered, decoded, as ``(i, seq, kind, type, fields)``: ``i`` the item's
    index, ``kind`` 0 (``type`` an indicator, ``fields`` ``()``), 1 (``type`` a data type,
    ``fields`` a list of ``(field type, data)``), -1 (lost) or -2 (not a valid IFP of
    ``version``), as :meth:`UdptlDecoder.feed_ifp`. Never raises on datagram content.

    The cyclic garbage collector is held off during the call and put back as it was (the
    results cannot form cycles; collections set off by a batch's many result objects would
    each walk the growing result)."""
    return _udptl.feed_many(items, version)


class PackResult(NamedTuple):
    """What :func:`pack_into` did. ``datagrams``: rows of ``table`` filled (datagrams
    written); ``consumed``: octets of ``records`` packed (the next record starts there);
    ``used``: octets of ``out`` written; ``error``: why packing stopped at ``consumed``, a
    :class:`~fastfax.errors.T38Error` for a bad record (unknown type, a call index past the
    encoders, an IFP too big for its encoder's ``max_datagram``) or a ``MemoryError``, else
    None (all records packed, or ``out`` or ``table`` full)."""

    datagrams: int
    consumed: int
    used: int
    error: Exception | None


class FeedResult(NamedTuple):
    """What :func:`feed_into` did. ``datagrams``: table entries fed (feed the rest again in
    the next call); ``used``: octets of IFP records written to ``out``."""

    datagrams: int
    used: int


def pack_into(
    encoders: Sequence[UdptlEncoder],
    records: bytes | bytearray | memoryview,
    out: bytearray | memoryview,
    table: array[int] | memoryview,
    version: int = 0,
) -> PackResult:
    """Encode a batch of IFP records (see the module notes) into datagrams, IFP and UDPTL
    in one native call with the GIL released: the same octets as
    :meth:`UdptlEncoder.pack_indicator` / :meth:`UdptlEncoder.pack_data` (or
    :func:`fastfax.t38.ifp.encode_data` then :meth:`UdptlEncoder.pack`) of each record in
    turn, on ``encoders[record.call]``, T.38 ``version`` 0..3.

    ``out`` (writable, octets) receives the datagrams back to back; ``table`` (a writable
    buffer of C ``unsigned int``, e.g. ``array("I", bytes(4 * 3 * n))``) a row
    ``(call, offset in out, length in octets)`` per datagram, the rows a ``sendmmsg`` needs
    with each call's peer address. Packing stops at the first record that does not fit in
    ``out`` or ``table`` (that record's encoder is left as it was: no sequence number used)
    or is bad; :class:`PackResult` says how far it went. Records are at most 16383 fields.

    The encoders must not be used by another thread during the call (a method of one that
    is raises ``RuntimeError``); one may appear more than once in ``encoders``."""
    return PackResult(*_udptl.pack_into(encoders, records, out, table, version))


def feed_into(
    decoders: Sequence[UdptlDecoder],
    data: bytes | bytearray | memoryview,
    table: array[int] | memoryview,
    out: bytearray | memoryview,
    version: int = 0,
) -> FeedResult:
    """Feed a batch of received datagrams to their calls' decoders in one native call with
    the GIL released, writing every IFP they deliver to ``out`` as an IFP record (see the
    module notes): its ``call`` the table row's, its ``seq`` the IFP's, ``kind``
    :data:`KIND_LOST` for an IFP declared lost and :data:`KIND_INVALID` for one that is not
    valid IFP of T.38 ``version`` 0..3. The same deliveries as :meth:`UdptlDecoder.feed_ifp`
    of each datagram in turn; hostile datagrams are counted in the decoders' stats and
    dropped, never raised.

    ``data`` holds the datagrams; ``table`` (a buffer of C ``unsigned int``, as
    :func:`pack_into` writes it) a row ``(call, offset, length in octets)`` per datagram,
    ``call`` the index of its decoder in ``decoders``: e.g. ``recvmmsg`` into fixed-size
    slots of one buffer, a row per message with the decoder of its source address. A row
    outside ``data`` or past ``decoders`` raises ``ValueError`` before anything is fed.

    ``out`` (writable, at least :data:`RECORD_MAX` octets) receives the records back to
    back. When it fills, the call stops: :class:`FeedResult` says how many rows were fed;
    feed the others in a later call, whose first records are what did not fit (a decoder
    keeps them queued; its :meth:`~UdptlDecoder.feed`, ``feed_ifp`` and ``flush`` hand them
    out first too). The decoders must not be used by another thread during the call."""
    return FeedResult(*_udptl.feed_into(decoders, data, table, out, version))


def write_records(items: Iterable[tuple[int, int, int, Iterable[tuple[int, bytes]]]]) -> bytes:
    """The IFP records of ``(call, kind, type, fields)`` items (``seq`` written as 0), as
    :func:`pack_into` takes them; ``fields`` as :func:`fastfax.t38.ifp.encode_data` takes
    them (``()`` for an indicator). Values are checked by :func:`pack_into`, not here, beyond
    what the record's octets can hold."""
    out = bytearray()
    for call, kind, type_, fields in items:
        fields = tuple(fields)
        out += bytes(
            (call >> 8, call & 0xFF, 0, 0, kind, type_, len(fields) >> 8, len(fields) & 0xFF)
        )
        for field_type, data in fields:
            out += bytes((field_type, len(data) >> 8, len(data) & 0xFF))
            out += data
    return bytes(out)


#: One IFP record as :func:`read_records` gives it: ``(call, seq, kind, type, fields)``,
#: ``fields`` a tuple of ``(field type, data)`` with ``b""`` for no field-data.
IfpRecord = tuple[int, int, int, int, tuple[tuple[int, bytes], ...]]


def read_records(buffer: bytes | bytearray | memoryview, used: int = -1) -> list[IfpRecord]:
    """The IFP records in the first ``used`` octets of ``buffer`` (all of it by default) as
    :func:`feed_into` writes them, as ``(call, seq, kind, type, fields)`` tuples, in one
    native call; ``ValueError`` if they do not end exactly there."""
    return _udptl.read_records(buffer, used)


def _check(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise T38Error(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


class UdptlEncoder(_udptl.EncoderCore):
    """Builds the datagrams of one call direction.

    ``error_correction``
        ``"redundancy"`` (each datagram repeats the previous ``redundancy`` IFPs),
        ``"fec"`` (parity FEC over ``fec_span`` IFPs in ``fec_entries`` interleaved
        strings, covering the ``fec_span * fec_entries`` IFPs before this one), or
        ``"none"``. Redundancy is what every peer understands; send FEC only to a peer whose
        SDP offers ``t38UDPFEC``. For SpanDSP and Asterisk peers keep span x entries <= 15
        (they remember 16 IFPs).
    ``redundancy``
        0..127 copies; fewer are sent while history builds up, and the oldest are left out
        when the datagram would exceed ``max_datagram``.
    ``fec_span`` / ``fec_entries``
        1..128 each, span x entries <= 128. While fewer IFPs than span x entries have been
        sent, ``entries`` winds up as ``sent // span`` (as SpanDSP does); strings that would
        exceed ``max_datagram`` are dropped by sending fewer entries (recomputed, so the
        datagram stays self-consistent).
    ``max_datagram``
        The largest datagram in octets (UDP payload), 8..65507: the peer's
        T38FaxMaxDatagram (see the module notes on its two readings).
    ``first_seq``
        The first datagram's sequence number (T.38: 0).

    :meth:`pack_indicator` (``indicator, version=0``) and :meth:`pack_data`
    (``data_type, field_type, data=b"", version=0``: one field) encode the IFP and pack it in
    one call, with the same octets as :mod:`fastfax.t38.ifp` then :meth:`pack`.

    :meth:`pack` takes one IFP packet (bytes, 1..16383 octets) and returns the next datagram;
    an IFP that does not fit in ``max_datagram`` even without recovery data raises
    :class:`~fastfax.errors.T38Error` and consumes no sequence number. :attr:`seq` is the
    number the next datagram gets; :attr:`max_ifp` the longest IFP that fits alone.
    """

    def __init__(
        self,
        *,
        error_correction: Literal["none", "redundancy", "fec"] = "redundancy",
        redundancy: int = 3,
        fec_span: int = 3,
        fec_entries: int = 3,
        max_datagram: int = 400,
        first_seq: int = 0,
    ) -> None:
        if error_correction not in _MODES:
            raise T38Error(
                f"error_correction must be 'none', 'redundancy' or 'fec', got {error_correction!r}"
            )
        _check("redundancy", redundancy, 0, 127)
        _check("fec_span", fec_span, 1, _MAX_COVER)
        _check("fec_entries", fec_entries, 1, _MAX_COVER)
        if fec_span * fec_entries > _MAX_COVER:
            raise T38Error(
                f"fec_span x fec_entries must be at most {_MAX_COVER}, got "
                f"{fec_span} x {fec_entries}"
            )
        _check("max_datagram", max_datagram, 8, _MAX_UDP)
        _check("first_seq", first_seq, 0, 0xFFFF)
        super().__init__(
            _MODES[error_correction], redundancy, fec_span, fec_entries, max_datagram, first_seq
        )
        self.error_correction = error_correction


class UdptlDecoder(_udptl.DecoderCore):
    """Turns received datagrams back into the peer's IFP packets, in order.

    :meth:`feed` takes one datagram and returns the IFPs now deliverable, in sequence order,
    as ``(seq, ifp)``; ``(seq, None)`` marks an IFP declared lost. It never raises on what
    the peer sends: malformed datagrams are counted in :attr:`stats` and dropped.

    - A datagram ahead of the next expected seq is held; the gap before it is filled by a
      later datagram's secondary copies or parity FEC, or by the datagram itself arriving
      late, and what waits behind it is then delivered. Redundancy and FEC datagrams may be
      mixed in one stream.
    - When the held span (from the next expected seq to the newest held) would exceed
      ``window`` (1..512, default 32), the oldest missing IFPs are declared lost one by one
      until it fits, delivering what waits behind them.
    - Duplicates and datagrams too late to be used are dropped and counted.
    - A seq 896 or more ahead of, or behind, the next expected one is taken for a restart of
      the peer's numbering: what is held is handed over (gaps declared lost) and the stream
      starts again there.

    :meth:`feed_ifp` (``datagram, version=0``) is :meth:`feed` with every IFP decoded in the
    same call: ``(seq, 0, indicator, ())``, ``(seq, 1, data_type, [(field_type, data)])``,
    ``(seq, -1, 0, ())`` for a lost IFP, ``(seq, -2, 0, ())`` for one that is not valid IFP.

    :meth:`flush` (for a timer that fires when a gap has waited too long, and at the end of a
    call) declares the gap at the head lost and delivers the IFPs waiting behind it, up to
    the next gap; :attr:`held` says how many seqs are waiting (0: no gap).

    ``first_seq``: the seq expected first. None (the default) takes it from the first
    datagram: its own seq, or for a redundancy datagram the oldest secondary it carries.
    :attr:`next_seq` is the seq delivered next (None before the first datagram).
    """

    def __init__(self, *, window: int = 32, first_seq: int | None = None) -> None:
        _check("window", window, 1, _MAX_WINDOW)
        if first_seq is not None:
            _check("first_seq", first_seq, 0, 0xFFFF)
        super().__init__(window, -1 if first_seq is None else first_seq)
        self.window = window

    @property
    def stats(self) -> UdptlStats:
        """The counters so far (a snapshot)."""
        return UdptlStats(
            self.duplicates,
            self.malformed,
            self.recovered_redundancy,
            self.recovered_fec,
            self.lost,
            self.reordered,
            self.late,
            self.resyncs,
        )
