"""The daemon's log output: plain text (the default) or JSON lines, and what keeps
secrets out of either.

``fastfax serve --log-format json`` (or ``[logging] format = "json"`` in the TOML)
writes one JSON object a line on stderr::

    {"time": "2026-12-06T01:02:03.456Z", "level": "INFO", "logger": "fastfax.service.outbound",
     "message": "job 7: sent to 200 (2 pages)", "job_id": 7}

Fields: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``message``; where known, ``job_id`` (from a record's ``job_id`` attribute, or a
message of the service's form "job N: ..." / "fax N ..."), ``call`` (the client call an
HTTP request runs), ``request`` (an id per HTTP request, the same on every line that
request logs), ``user``; and ``exception`` (the formatted traceback) when there is one.

Secrets: the service never logs a token or a password; as a second guard, every line
(text or JSON, the traceback included) passes :func:`redact`, which masks what
follows ``Bearer``, ``Authorization:``, and ``token``, ``password``, ``secret`` or
``cookie`` written as ``key=value`` / ``key: value`` / ``"key": "value"``.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

__all__ = ["FORMATS", "LogFormat", "configure", "JsonFormatter", "redact", "request_context"]

LogFormat = Literal["text", "json"]
FORMATS: tuple[str, ...] = ("text", "json")
#: The plain text layout (what ``fastfax serve`` always wrote).
TEXT_FORMAT = "%(asctime)s %(name)s %(message)s"

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "fastfax_log_context", default=None
)
_SECRET = re.compile(
    r"(?i)(bearer\s+|authorization\s*[:=]\s*(?:bearer\s+)?"
    r"|[\"']?(?:token|password|passwd|secret|cookie)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',;&]+"
)
_JOB = re.compile(r"^(?:job|fax) %d\b")
_MASK = "***"
_HANDLER = "fastfax-stderr"


def redact(text: str) -> str:
    """``text`` with the values of bearer tokens, authorizations, tokens, passwords,
    secrets and cookies replaced by ``***``."""
    return _SECRET.sub(lambda m: m.group(1) + _MASK, text)


@contextmanager
def request_context(**fields: Any) -> Iterator[None]:
    """Within the block (in this thread or task), every log record carries ``fields``
    (e.g. ``call``, ``request``, ``user``, ``job_id``) in JSON output."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _job_id(record: logging.LogRecord) -> int | None:
    job = getattr(record, "job_id", None)
    if isinstance(job, int) and not isinstance(job, bool):
        return job
    args = record.args
    if isinstance(record.msg, str) and _JOB.match(record.msg) and isinstance(args, tuple):
        if args and isinstance(args[0], int) and not isinstance(args[0], bool):
            return args[0]
    return None


class _Redacting(logging.Formatter):
    """A text formatter whose every line passes :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a record (see the module's documentation), secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        when = _dt.datetime.fromtimestamp(record.created, _dt.UTC)
        out: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = _context.get() or {}
        for key in ("call", "request", "user", "port"):
            value = getattr(record, key, None) or context.get(key)
            if value is not None:
                out[key] = redact(str(value))
        job = _job_id(record)
        if job is None and isinstance(context.get("job_id"), int):
            job = context["job_id"]
        if job is not None:
            out["job_id"] = job
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = redact(record.exc_text)
        return json.dumps(out, ensure_ascii=False)


def configure(fmt: str = "text", level: str | int = "INFO") -> logging.Handler:
    """Send the root logger's records to stderr in ``fmt`` ("text" or "json") at
    ``level``, replacing the handler an earlier call added; returns the handler. Raises
    :class:`ValueError` for an unknown format or level."""
    if fmt not in FORMATS:
        raise ValueError(f"log format is one of {', '.join(FORMATS)}, got {fmt!r}")
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            raise ValueError(f"unknown log level {level!r}")
        level = number
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else _Redacting(TEXT_FORMAT))
    handler.set_name(_HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
