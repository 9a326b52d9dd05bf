"""SIP for fax over IP: a sans-I/O user agent (RFC 3261 subset) with T.38 media in SDP.

The layers, each importing only those before it:

- :mod:`.message`: parse and build SIP requests and responses, URIs, addresses, Via;
  a stream framer for TCP. Everything a peer can get wrong raises :class:`SipError`.
- :mod:`.auth`: HTTP digest (RFC 2617, 7616, 8760) for SIP, client side and a small
  verifier.
- :mod:`.transaction`: RFC 3261 section 17 client and server transactions, timers A-M.
- :mod:`.dialog`: dialogs, route sets, CSeq, target refresh, session timers (RFC 4028).
- :mod:`.sdp`: session descriptions with audio and ``m=image udptl t38`` media, offer/answer.
- :mod:`.ua`: the user agent core: REGISTER, INVITE, T.38 re-INVITE, BYE, CANCEL, OPTIONS.

No module opens a socket or reads a clock: bytes and times (seconds, float) come in as
arguments and what to send or schedule comes back as actions.
"""

from __future__ import annotations

from .message import SipError

__all__ = ["SipError"]
