"""T.38, sans-I/O: fax over IP as ITU-T T.38 carries it.

:mod:`.ifp` encodes and decodes IFP packets (T.38 Annex A ASN.1, aligned PER; versions
0 to 3); :mod:`.udptl` packs IFP packets into UDPTL datagrams with redundancy or parity
FEC and reassembles them in order on receipt (duplicates dropped, reordering and gaps
handled, unrecoverable losses reported); :mod:`.sdp` reads and writes the
``m=image ... udptl t38`` media description and negotiates an answer; :mod:`.terminal`
is the T.38 terminal: the T.30 engine's actions become IFP packets and IFP packets its
events. The per-packet work is native (``_ifp.pyx``, ``_udptl.pyx``). None of them does
I/O or reads a clock: the sockets around the terminal are :mod:`fastfax.transport.t38`.
"""
