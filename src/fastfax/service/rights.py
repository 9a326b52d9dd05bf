"""Access rights: the seven rights of the Windows fax service, users and their tokens.

Tokens are random (256 bits, URL-safe text); only their SHA-256 digest is stored, so
the spool never holds a usable token, and no code path logs one.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Iterable

from .errors import AccessDenied, ConfigError

__all__ = [
    "Right",
    "ALL_RIGHTS",
    "GENERIC",
    "may_see",
    "parse_rights",
    "new_token",
    "token_digest",
    "require",
]


class Right(enum.Flag):
    """One access right (FAX_JOB_SUBMIT ... FAX_JOB_MANAGE); combine with ``|``."""

    JOB_SUBMIT = 1  #: send faxes, and pause, resume, cancel, restart, abort one's own
    JOB_QUERY = 2  #: see jobs and their first pages
    CONFIG_QUERY = 4  #: read the configuration and logging categories
    CONFIG_SET = 8  #: change the configuration, logging categories, routing priorities
    PORT_QUERY = 16  #: see ports, their status and routing
    PORT_SET = 32  #: change ports and their routing
    JOB_MANAGE = 64  #: pause, resume, cancel, restart and abort any job


ALL_RIGHTS = Right(127)
#: The generic rights (FAX_GENERIC_READ, _WRITE, _EXECUTE, _ALL) by name.
GENERIC = {
    "READ": Right.JOB_QUERY | Right.CONFIG_QUERY | Right.PORT_QUERY,
    "WRITE": Right.JOB_MANAGE | Right.CONFIG_SET | Right.PORT_SET,
    "EXECUTE": Right.JOB_SUBMIT,
    "ALL": ALL_RIGHTS,
}


def parse_rights(value: Right | int | str | Iterable[str | Right]) -> Right:
    """Rights from a :class:`Right`, an int mask, a name ("job_submit", or a generic
    right: "read", "write", "execute", "all") or names."""
    if isinstance(value, Right):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= ALL_RIGHTS.value:
            raise ConfigError(f"a rights mask is 0-{ALL_RIGHTS.value}, got {value}")
        return Right(value)
    names = [value] if isinstance(value, str) else list(value)
    out = Right(0)
    for name in names:
        if isinstance(name, Right):
            out |= name
            continue
        key = str(name).upper()
        if key in GENERIC:
            out |= GENERIC[key]
        elif key in Right.__members__:
            out |= Right[key]
        else:
            raise ConfigError(
                f"unknown right {name!r}; use read, write, execute, all or "
                f"{[r.lower() for r in Right.__members__]}"
            )
    return out


def right_names(rights: Right) -> list[str]:
    """The lower-case names of the rights in ``rights``."""
    return [name.lower() for name, r in Right.__members__.items() if r in rights]


def new_token() -> str:
    """A fresh random token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The stored form of a token: its SHA-256, hexadecimal."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def require(user: str, held: Right, needed: Right, call: str) -> None:
    """Raise :class:`AccessDenied` unless ``held`` includes ``needed``."""
    if needed not in held:
        missing = right_names(needed & ~held)
        raise AccessDenied(f"user {user!r} lacks the right(s) {missing} needed by {call}()")


#: Event kinds about ports (and the calls on them), and about the configuration.
_PORT_EVENTS = {"dialing", "ringing", "line_released", "port_changed", "routing",
                "initializing", "offline"}  # fmt: skip
_CONFIG_EVENTS = {"config_changed"}


def may_see(rights: Right, kind: str) -> bool:
    """Whether a holder of ``rights`` gets events of ``kind`` (an EventKind value): job
    events need the job query right, port and routing events the port query right too,
    configuration events the configuration query right too."""
    if Right.JOB_QUERY not in rights:
        return False
    if kind in _PORT_EVENTS:
        return Right.PORT_QUERY in rights
    if kind in _CONFIG_EVENTS:
        return Right.CONFIG_QUERY in rights
    return True
