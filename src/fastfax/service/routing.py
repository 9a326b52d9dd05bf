"""Inbound routing methods (the Windows routing extensions): what happens to a fax that
arrives on a port.

A method is made by a factory ``factory(settings) -> RoutingMethod`` (``settings``: the
``[routing.<name>]`` table of the TOML file). Built in: ``store`` (a folder, TIFF-F or
PDF), ``email`` (SMTP, the fax attached) and ``print`` (a configured command such as
``lp``). Others plug in through the ``fastfax.routing`` entry point group. Per port,
each method is switched on or off and given its data (a dict the method checks).

A method that raises fails for this attempt only: the service keeps the fax in the
spool and tries the method again later. Each method runs in its own pool of threads
(``workers`` in its settings table, default 2) and may take its ``timeout`` (an
attribute of the method, seconds; default 300) before its attempt counts as failed.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import smtplib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from importlib.metadata import entry_points
from typing import Any, Protocol

from .. import tiff
from ..document import convert, pdfout
from ..files import write_files
from .errors import ConfigError, RoutingMethodNotFound

__all__ = [
    "ReceivedFax",
    "RoutingMethod",
    "StoreMethod",
    "EmailMethod",
    "PrintMethod",
    "BUILTIN_METHODS",
    "load_methods",
    "safe_name",
]

_FORMATS = ("tiff", "pdf")
_PRINTER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class ReceivedFax:
    """A received fax as routing methods see it; ``path`` is its TIFF-F file in the spool
    (read only); ``received`` a POSIX timestamp."""

    job_id: int
    path: str
    pages: int
    port: str
    remote_id: str
    caller_id: str
    received: float


class RoutingMethod(Protocol):
    name: str
    description: str

    def check(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validate per-port data; return it normalised or raise :class:`ConfigError`."""

    def route(self, fax: ReceivedFax, data: dict[str, Any]) -> str:
        """Deliver the fax; return what was done (for the routing event). Raise on failure."""


def safe_name(fax: ReceivedFax, ext: str) -> str:
    """A file name made only of letters, digits, ``.``, ``_`` and ``-``: the receive time,
    the job id and the sender's identity."""
    when = _dt.datetime.fromtimestamp(fax.received).strftime("%Y%m%d-%H%M%S")
    who = re.sub(r"[^A-Za-z0-9]+", "_", fax.remote_id).strip("_")[:40]
    return f"fax-{when}-{fax.job_id:06d}{'-' + who if who else ''}{ext}"


def _format(data: dict[str, Any]) -> str:
    fmt = data.get("format", "tiff")
    if fmt not in _FORMATS:
        raise ConfigError(f"format must be one of {_FORMATS}, got {fmt!r}")
    return fmt


class StoreMethod:
    """Store each fax in a folder. Data: ``folder`` (absolute path), ``format``
    ("tiff" or "pdf"). Files are written under a temporary name and renamed."""

    name = "store"
    description = "store the fax in a folder (TIFF-F or PDF)"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.timeout = float((settings or {}).get("timeout", 60))

    def check(self, data: dict[str, Any]) -> dict[str, Any]:
        folder = data.get("folder")
        if not isinstance(folder, str) or not os.path.isabs(folder):
            raise ConfigError("store: folder must be an absolute directory path")
        unknown = set(data) - {"folder", "format"}
        if unknown:
            raise ConfigError(f"store: unknown field(s) {sorted(unknown)}")
        return {"folder": os.path.normpath(folder), "format": _format(data)}

    def route(self, fax: ReceivedFax, data: dict[str, Any]) -> str:
        data = self.check(data)
        folder = os.path.realpath(data["folder"])
        os.makedirs(folder, exist_ok=True)
        ext = ".pdf" if data["format"] == "pdf" else ".tif"
        target = os.path.join(folder, safe_name(fax, ext))
        if os.path.dirname(os.path.realpath(target)) != folder:
            raise ConfigError(f"store: {target!r} would fall outside {folder!r}")
        if data["format"] == "tiff":  # the spool's file is TIFF-F (MMR) already: copied
            with open(fax.path, "rb") as fh:
                write_files([(target, [fh.read()])])
            return target
        pages = tiff.read(fax.path)
        convert.save(pages, target, data["format"], title=os.path.basename(target))
        return target


class EmailMethod:
    """E-mail each fax as an attachment. Data: ``to`` (address or list), ``sender``
    (From address), ``host`` / ``port`` (the SMTP server, default localhost:25),
    ``format`` ("tiff" or "pdf"), ``subject`` (default "Fax from {remote_id}").
    Settings (``[routing.email]``): ``timeout``; ``host``, ``port``, ``sender`` for the
    delivery reports of sent faxes (:meth:`send_report`)."""

    name = "email"
    description = "e-mail the fax (SMTP, attached as TIFF-F or PDF)"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        settings = settings or {}
        self.timeout = float(settings.get("timeout", 30))
        #: Where delivery reports go out (settings ``host``, ``port``, ``sender``).
        self.server = (str(settings.get("host", "localhost")), int(settings.get("port", 25)))
        self.sender = str(settings.get("sender", "fastfax@localhost"))

    def send_report(self, to: str, subject: str, text: str) -> str:
        """E-mail a delivery report to ``to`` through the server's SMTP settings."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(text)
        with smtplib.SMTP(*self.server, timeout=self.timeout) as smtp:
            smtp.send_message(msg)
        return to

    def check(self, data: dict[str, Any]) -> dict[str, Any]:
        to = data.get("to")
        to = [to] if isinstance(to, str) else to
        if not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise ConfigError("email: to must be an address or a list of addresses")
        port = data.get("port", 25)
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"email: port must be 1-65535, got {port!r}")
        unknown = set(data) - {"to", "sender", "host", "port", "format", "subject"}
        if unknown:
            raise ConfigError(f"email: unknown field(s) {sorted(unknown)}")
        return {
            "to": to,
            "sender": str(data.get("sender", "fastfax@localhost")),
            "host": str(data.get("host", "localhost")),
            "port": port,
            "format": _format(data),
            "subject": str(data.get("subject", "Fax from {remote_id}")),
        }

    def route(self, fax: ReceivedFax, data: dict[str, Any]) -> str:
        data = self.check(data)
        msg = EmailMessage()
        msg["From"] = data["sender"]
        msg["To"] = ", ".join(data["to"])
        msg["Subject"] = data["subject"].format(
            remote_id=fax.remote_id or "unknown", pages=fax.pages, port=fax.port
        )
        msg.set_content(
            f"A {fax.pages}-page fax from {fax.remote_id or 'an unknown sender'} arrived on "
            f"{fax.port} at {_dt.datetime.fromtimestamp(fax.received):%Y-%m-%d %H:%M:%S}.\n"
        )
        if data["format"] == "pdf":
            body = pdfout.dumps(tiff.read(fax.path))
            msg.add_attachment(body, "application", "pdf", filename=safe_name(fax, ".pdf"))
        else:
            with open(fax.path, "rb") as fh:
                body = fh.read()
            msg.add_attachment(body, "image", "tiff", filename=safe_name(fax, ".tif"))
        with smtplib.SMTP(data["host"], data["port"], timeout=self.timeout) as smtp:
            smtp.send_message(msg)
        return ", ".join(data["to"])


class PrintMethod:
    """Print each fax with a command. The command comes from the server's settings
    (``[routing.print] command``, default ``["lp", "-d", "{printer}"]``), never from a
    port's data, which only names the ``printer`` (letters, digits, ``._-``). The fax
    file is appended (or put where an argument is ``{file}``)."""

    name = "print"
    description = "print the fax with a configured command (lp)"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        command = (settings or {}).get("command", ["lp", "-d", "{printer}"])
        if isinstance(command, str):
            command = shlex.split(command)
        if not command or not all(isinstance(a, str) for a in command):
            raise ConfigError("[routing.print] command must be a non-empty list of strings")
        self.command = command
        self.timeout = float((settings or {}).get("timeout", 120))

    def check(self, data: dict[str, Any]) -> dict[str, Any]:
        printer = data.get("printer", "default")
        if not isinstance(printer, str) or not _PRINTER.match(printer):
            raise ConfigError(f"print: printer must be 1-64 of A-Z a-z 0-9 . _ -, got {printer!r}")
        if set(data) - {"printer"}:
            raise ConfigError(f"print: unknown field(s) {sorted(set(data) - {'printer'})}")
        return {"printer": printer}

    def route(self, fax: ReceivedFax, data: dict[str, Any]) -> str:
        printer = self.check(data)["printer"]
        args = [a.replace("{printer}", printer) for a in self.command]
        args = [fax.path if a == "{file}" else a for a in args]
        if fax.path not in args:
            args.append(fax.path)
        done = subprocess.run(args, capture_output=True, timeout=self.timeout, check=False)
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip()[-200:]
            raise OSError(f"{args[0]} exited with status {done.returncode}: {tail}")
        return printer


#: The routing methods that need no installation, in their default priority order.
BUILTIN_METHODS: dict[str, Callable[[dict[str, Any]], RoutingMethod]] = {
    "store": StoreMethod,
    "email": EmailMethod,
    "print": PrintMethod,
}


def load_methods(settings: dict[str, dict[str, Any]]) -> dict[str, RoutingMethod]:
    """Every routing method, built in and from ``fastfax.routing`` entry points, made with
    its ``settings[name]`` table."""
    factories: dict[str, Callable[[dict[str, Any]], RoutingMethod]] = dict(BUILTIN_METHODS)
    for ep in entry_points(group="fastfax.routing"):
        factories.setdefault(ep.name, ep.load())
    unknown = set(settings) - set(factories)
    if unknown:
        raise RoutingMethodNotFound(f"[routing] names unknown method(s) {sorted(unknown)}")
    methods = {}
    for name, factory in factories.items():
        table = settings.get(name, {})
        method = factory(table)
        method.name = name
        workers = table.get("workers", 2)
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 64:
            raise ConfigError(f"[routing.{name}] workers must be 1-64, got {workers!r}")
        method.workers = workers  # type: ignore[attr-defined]
        methods[name] = method
    return methods
