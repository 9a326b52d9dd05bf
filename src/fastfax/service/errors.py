"""The errors the fax service raises; each is a :class:`fastfax.errors.FaxError`.

Remote clients get the same classes: the HTTP layer sends the class name and message,
and :mod:`fastfax.service.remote` raises the class of that name again.
"""

from __future__ import annotations

from ..errors import ConfigError, FaxError


class ServiceError(FaxError):
    """Base of the fax service's errors."""


class AccessDenied(ServiceError, PermissionError):
    """The caller lacks the access right a call needs; nothing was changed."""


class AuthenticationError(AccessDenied):
    """No token, or a token no user holds: the request was refused."""


class NotFound(ServiceError, LookupError):
    """Base of the "no such thing" errors."""


class JobNotFound(NotFound):
    """No job has this id (it never existed, or was deleted)."""


class PortNotFound(NotFound):
    """No port (device line) has this id."""


class RoutingMethodNotFound(NotFound):
    """No inbound routing method has this name."""


class BadNumber(ServiceError, ValueError):
    """A fax number that cannot be dialled (empty, or characters a dial string cannot hold)."""


class NoLine(ServiceError):
    """No line of the spool can ever carry the job: it failed without a call, and the
    spool declares no lines of its own (only the test lines, or none). The message
    names the number and what to declare in the spool's TOML."""

    @classmethod
    def unreachable(cls, job_id: int, number: str, numbers: list[str], toml: str) -> NoLine:
        """The error for job ``job_id`` to ``number``, on a spool whose lines have
        ``numbers``, whose TOML file is ``toml``."""
        if numbers:
            have = (
                f"its only lines are the test lines, a loopback pair in memory answering "
                f"on {' and '.join(numbers)}"
            )
        else:
            have = "it has no lines (its TOML declares devices = [])"
        return cls(
            f"job {job_id} cannot be sent: no line of this spool can reach the number "
            f"{number!r}; {have}. To fax {number!r}, declare the line to send on in "
            f"{toml} (or the file fastfax serve --config names), for example a Class 1 "
            'modem: [[devices]] kind = "class1", name = "modem", url = "/dev/ttyUSB0" '
            '(or kind = "sip" for a SIP trunk, "t38" for T.38 peers), then start the '
            "service again"
        )


class JobStateError(ServiceError):
    """The job is in a state that does not allow the operation (e.g. pausing a sent job)."""


class PortBusy(ServiceError):
    """The port is already open for modification by another connection."""


class SpoolBusy(ServiceError):
    """Another process is already running a service on this spool directory."""


class RequestError(ServiceError, ValueError):
    """A malformed request: bad JSON, unknown call, wrong arguments, oversize upload."""


class RequestTooLarge(RequestError):
    """The request body is larger than the server accepts (``[http] max_upload``)."""


class SessionGone(RequestError):
    """The request names a session the server no longer has (closed, expired after its
    lease, or the server restarted); nothing was done. Open a new session."""


class ServerBusy(ServiceError):
    """Every connection, call thread or stream slot of the server is taken (HTTP 503):
    nothing was done; try again later."""


class BodyTimeout(RequestError):
    """The request body did not arrive within the server's body timeout (HTTP 408)."""


class RemoteError(ServiceError, ConnectionError):
    """The remote server could not be reached or answered something unreadable."""


class ServiceClosed(ServiceError):
    """The connection or service was closed."""


#: Every error class a remote server may name, by name.
ERRORS: dict[str, type[FaxError]] = {
    cls.__name__: cls
    for cls in (
        ServiceError,
        AccessDenied,
        AuthenticationError,
        NotFound,
        JobNotFound,
        PortNotFound,
        RoutingMethodNotFound,
        ConfigError,
        BadNumber,
        NoLine,
        JobStateError,
        PortBusy,
        SpoolBusy,
        RequestError,
        RequestTooLarge,
        SessionGone,
        ServerBusy,
        BodyTimeout,
        RemoteError,
        ServiceClosed,
    )
}
