"""Server configuration (FAX_CONFIGURATION), logging categories, and the TOML file that
declares a spool's devices and settings.

The TOML file (``fastfax.toml`` in the spool directory, or the file ``fastfax serve
--config`` names) looks like::

    [http]                      # fastfax serve only
    host = "127.0.0.1"
    port = 8765
    max_upload = 67108864       # bytes
    certificate = "/etc/fastfax/cert.pem"   # HTTPS (PEM chain); key: its private key
    key = "/etc/fastfax/key.pem"            # plain HTTP serves loopback only, unless
    allow_plain_http = false                # this says otherwise (a TLS proxy in front)

    [logging]                   # fastfax serve only
    format = "json"             # JSON lines on stderr (default "text"; see service.logs)

    [configuration]             # initial values, applied when the spool is created
    retries = 3
    retry_delay = 60.0
    interrupted = "hold"        # a call cut after confirmed pages: held (default "resume")
    lease = 30.0                # seconds a node's claim on a call lasts unless renewed

    [[devices]]                 # declared none: the test lines (TEST_LINES); no lines
    kind = "loopback-pair"      # at all: devices = [] before any table. A loopback pair
    name = "lp"                 # is two virtual lines joined in memory
    numbers = ["1001", "1002"]
    store = "/home/me/faxes"    # the second line stores what it receives here

    [[devices]]
    kind = "class1"             # a Class 1 fax modem
    name = "modem"
    url = "/dev/ttyUSB0"
    send = false                # initial port settings (send, receive, rings, priority,
    rings = 2                   # tsid, csid), applied when the spool first sees the port

    [routing.print]             # settings of a routing method
    command = ["lp", "-d", "{printer}"]
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ..devices.contract import INBOUND_LOGGER
from .errors import ConfigError
from .store import POSTGRESQL_SCHEMES as STORE_SCHEMES

__all__ = [
    "Configuration",
    "LOG_CATEGORIES",
    "LOG_LEVELS",
    "apply_logging",
    "check_logging",
    "DaemonConfig",
    "TEST_LINES",
    "default_lines",
    "load_toml",
    "in_window",
]

#: The values of :attr:`Configuration.interrupted`.
INTERRUPTED = ("resume", "hold")

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Configuration:
    """The server's settings (FAX_CONFIGURATION).

    ``retries``: extra attempts after a failed call (0-99); ``retry_delay``: seconds
    between attempts; ``dirty_days``: days a finished job stays in the queue before it
    is deleted (0: at once); ``branding``: print the header line on sent pages;
    ``use_device_tsid``: send the port's TSID instead of the sender's fax number;
    ``server_cover_pages_only``: refuse user cover templates; ``pause_queue``: start no
    new sends; ``discount_start`` / ``discount_end``: the cheap-rate window, local time
    "HH:MM" (it may wrap past midnight); ``archive_outgoing`` / ``archive_folder``:
    keep a TIFF-F copy of every fax sent. ``sender_name``, ``sender_fax``,
    ``sender_company``: the defaults filled into jobs that leave them empty
    (FaxCompleteJobParams). ``interrupted``: what becomes of a send job whose call was
    cut (its node died or lost its lease) after the far end had confirmed some of its
    pages but not all: ``"resume"`` (the default) queues it again to send the pages not
    confirmed, each page's header line marking it a continuation; ``"hold"`` pauses it
    (PAUSED) with a cause saying which pages the far end confirmed, for an operator to
    resume (the pages not confirmed, as a continuation) or restart (every page).
    ``lease``: seconds (1-3600) a node's claim on a job it put on a line lasts unless
    renewed; the node renews it every third of that while the call runs. When a node
    dies or is cut off from the store, its calls go back to the queue (or are held)
    once their leases run out: a shorter lease takes them over sooner, a longer one
    rides out longer store outages without abandoning calls in progress.
    """

    retries: int = 3
    retry_delay: float = 120.0
    dirty_days: int = 7
    branding: bool = True
    use_device_tsid: bool = True
    server_cover_pages_only: bool = False
    pause_queue: bool = False
    discount_start: str = "20:00"
    discount_end: str = "07:00"
    archive_outgoing: bool = False
    archive_folder: str = ""
    sender_name: str = ""
    sender_fax: str = ""
    sender_company: str = ""
    interrupted: str = "resume"
    lease: float = 30.0

    def check(self) -> Configuration:
        """Raise :class:`ConfigError` naming the first invalid field; return self."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            want = {"int": int, "float": (int, float), "bool": bool, "str": str}[f.type]
            if not isinstance(value, want) or (f.type != "bool" and isinstance(value, bool)):
                raise ConfigError(f"configuration {f.name} must be a {f.type}, got {value!r}")
        if not 0 <= self.retries <= 99:
            raise ConfigError(f"retries must be from 0 to 99, got {self.retries}")
        if not 0 <= self.retry_delay <= 7 * 86400:
            raise ConfigError(f"retry_delay must be 0 to 604800 seconds, got {self.retry_delay}")
        if not 0 <= self.dirty_days <= 3650:
            raise ConfigError(f"dirty_days must be from 0 to 3650, got {self.dirty_days}")
        for name in ("discount_start", "discount_end"):
            if not _HHMM.match(getattr(self, name)):
                raise ConfigError(
                    f"{name} must be a 24-hour time HH:MM, got {getattr(self, name)!r}"
                )
        if self.interrupted not in INTERRUPTED:
            raise ConfigError(
                f"interrupted must be one of {list(INTERRUPTED)}, got {self.interrupted!r}"
            )
        if not 1 <= self.lease <= 3600:
            raise ConfigError(f"lease must be 1 to 3600 seconds, got {self.lease}")
        if self.archive_outgoing and not os.path.isabs(self.archive_folder):
            raise ConfigError("archive_outgoing needs archive_folder, an absolute directory path")
        return self

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: Configuration | None = None) -> Configuration:
        """``base`` (the defaults when None) with ``values`` applied, checked."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown configuration field(s) {unknown}; known: {sorted(names)}")
        return dataclasses.replace(base or cls(), **values).check()


def in_window(start: str, end: str, when: _dt.datetime) -> bool:
    """Whether local time ``when`` falls in [start, end) ("HH:MM"; may wrap midnight)."""
    minute = when.hour * 60 + when.minute
    s = int(start[:2]) * 60 + int(start[3:])
    e = int(end[:2]) * 60 + int(end[3:])
    if s == e:
        return True
    return s <= minute < e if s < e else minute >= s or minute < e


# -- logging categories ------------------------------------------------------------------

#: Category name -> Python logger that carries it.
LOG_CATEGORIES = {
    "init_term": "fastfax.service.init",
    "outbound": "fastfax.service.outbound",
    "inbound": INBOUND_LOGGER,
    "unknown": "fastfax.service.unknown",
}
#: Level name -> the Python logging level a logger is set to (none: nothing logged).
LOG_LEVELS = {
    "none": logging.CRITICAL + 10,
    "min": logging.ERROR,
    "med": logging.WARNING,
    "max": logging.DEBUG,
}
DEFAULT_LOGGING = {name: "min" for name in LOG_CATEGORIES}


def check_logging(levels: dict[str, str]) -> dict[str, str]:
    """Validate a {category: level} mapping; raise :class:`ConfigError` for the first bad one."""
    for name, level in levels.items():
        if name not in LOG_CATEGORIES:
            raise ConfigError(f"unknown logging category {name!r}; known: {list(LOG_CATEGORIES)}")
        if level not in LOG_LEVELS:
            raise ConfigError(f"unknown logging level {level!r}; use one of {list(LOG_LEVELS)}")
    return levels


def apply_logging(levels: dict[str, str]) -> None:
    """Set each category's Python logger to its level."""
    for name, level in levels.items():
        logging.getLogger(LOG_CATEGORIES[name]).setLevel(LOG_LEVELS[level])


# -- the TOML file -----------------------------------------------------------------------

#: The lines of a spool whose TOML declares no ``[[devices]]`` (or that has no TOML), so
#: that a new spool can send at once: a loopback pair, two virtual lines joined in
#: memory (no telephone line), ports ``test/1`` ("test line 1", number 100) and
#: ``test/2`` ("test line 2", number 200). A fax sent to 200 is received on test line 2
#: (and the other way round). ``devices = []`` in the TOML declares a spool with no lines.
TEST_LINES: tuple[dict[str, Any], ...] = (
    {"kind": "loopback-pair", "name": "test", "numbers": ["100", "200"]},
)


def default_lines() -> list[dict[str, Any]]:
    """A fresh copy of :data:`TEST_LINES` (device specs, as ``[[devices]]`` tables)."""
    return [{**spec, "numbers": list(spec["numbers"])} for spec in TEST_LINES]


@dataclass
class DaemonConfig:
    """What a TOML file declares: HTTP settings, initial configuration, devices (the
    ``[[devices]]`` tables; :data:`TEST_LINES` when it declares none), routing."""

    host: str = "127.0.0.1"
    port: int = 8765
    max_upload: int = 64 << 20
    certificate: str | None = None
    key: str | None = None
    allow_plain_http: bool = False
    spool: str | None = None
    store: str | None = None  # [store] url: a postgresql:// URL (default: SQLite in the spool)
    log_format: str = "text"  # [logging] format: "text" or "json" (fastfax serve's stderr)
    #: ``cpus``: the CPU numbers the daemon's threads may run on (Linux), None: any
    cpus: list[int] | None = None
    configuration: dict[str, Any] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=default_lines)
    routing: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def own_devices(self) -> bool:
        """Whether the spool declares lines of its own (False: only the test lines, or
        ``devices = []``: no lines at all)."""
        return bool(self.devices) and self.devices != default_lines()


def load_toml(path: str | os.PathLike[str]) -> DaemonConfig:
    """Read a spool or daemon TOML file; raise :class:`ConfigError` naming what is wrong."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)!r} is not valid TOML: {exc}") from None
    unknown = sorted(
        set(raw)
        - {"http", "configuration", "devices", "routing", "spool", "store", "logging", "cpus"}
    )
    if unknown:
        raise ConfigError(f"{os.fspath(path)!r}: unknown section(s) {unknown}")
    out = DaemonConfig()
    http = raw.get("http", {})
    known = {"host", "port", "max_upload", "certificate", "key", "allow_plain_http"}
    if not isinstance(http, dict) or set(http) - known:
        raise ConfigError(f"[http] takes {', '.join(sorted(known))}")
    for name in ("certificate", "key"):
        if not isinstance(http.get(name, ""), str):
            raise ConfigError(f"[http] {name} must be a file path")
    if not isinstance(http.get("allow_plain_http", False), bool):
        raise ConfigError("[http] allow_plain_http must be true or false")
    out.certificate = http.get("certificate")
    out.key = http.get("key")
    out.allow_plain_http = http.get("allow_plain_http", False)
    out.host = str(http.get("host", out.host))
    out.port = http.get("port", out.port)
    out.max_upload = http.get("max_upload", out.max_upload)
    if not isinstance(out.port, int) or not 0 <= out.port <= 65535:
        raise ConfigError(f"[http] port must be 0-65535, got {out.port!r}")
    if not isinstance(out.max_upload, int) or out.max_upload < 1024:
        raise ConfigError(f"[http] max_upload must be at least 1024 bytes, got {out.max_upload!r}")
    spool = raw.get("spool")
    if spool is not None and not isinstance(spool, str):
        raise ConfigError("spool must be a directory path")
    out.spool = spool
    cpus = raw.get("cpus")
    if cpus is not None and not (
        isinstance(cpus, list) and cpus and all(type(c) is int and c >= 0 for c in cpus)
    ):
        raise ConfigError(f"cpus must be a non-empty list of CPU numbers, got {cpus!r}")
    out.cpus = cpus
    store = raw.get("store", {})
    if not isinstance(store, dict) or set(store) - {"url"}:
        raise ConfigError("[store] takes url")
    url = store.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(STORE_SCHEMES)):
        raise ConfigError(f"[store] url must be a postgresql:// URL, got {url!r}")
    out.store = url
    logs = raw.get("logging", {})
    if not isinstance(logs, dict) or set(logs) - {"format"}:
        raise ConfigError("[logging] takes format")
    out.log_format = logs.get("format", out.log_format)
    if out.log_format not in ("text", "json"):
        raise ConfigError(f'[logging] format is "text" or "json", got {out.log_format!r}')
    conf = raw.get("configuration", {})
    if not isinstance(conf, dict):
        raise ConfigError("[configuration] must be a table")
    Configuration.from_dict(conf)
    out.configuration = conf
    devices = raw.get("devices", default_lines())
    if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
        raise ConfigError("[[devices]] must be an array of tables")
    for n, dev in enumerate(devices):
        if not isinstance(dev.get("kind"), str) or not isinstance(dev.get("name"), str):
            raise ConfigError(f"device {n} needs a kind and a name (strings)")
    out.devices = devices
    routing = raw.get("routing", {})
    if not isinstance(routing, dict) or not all(isinstance(v, dict) for v in routing.values()):
        raise ConfigError("[routing.<method>] sections must be tables")
    out.routing = routing
    return out
