"""The JSON the HTTP server and the remote client exchange.

A call is ``POST /api/<name>`` with a JSON object of named arguments; the answer is
``{"result": ...}`` or ``{"error": {"type": <class name>, "message": ...}}``. Bytes
travel as ``{"$bytes": "<base64>"}``. ``GET /api/events[?since=N]`` streams one JSON event per
line (an empty line every second keeps the connection checked). Requests carry
``Authorization: Bearer <token>`` and, after ``POST /api/session`` (which answers
``{"session", "user", "lease"}``), the session id in ``X-Fastfax-Session``. A session
ends ``lease`` seconds after its last request (an open event stream counts); clients
renew it with ``POST /api/renew``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .errors import RequestError

__all__ = ["encode", "decode", "SESSION_HEADER"]

SESSION_HEADER = "X-Fastfax-Session"


def encode(value: Any) -> Any:
    """``value`` with every ``bytes`` replaced by ``{"$bytes": base64}``."""
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`; raises :class:`RequestError` for bad base64."""
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            try:
                return base64.b64decode(value["$bytes"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise RequestError("a $bytes value is not valid base64") from None
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
