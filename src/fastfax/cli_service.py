"""The fax service commands of ``fastfax``: send, jobs, job, ports, events, users.

Each runs against the embedded spool (``--spool DIR``, else ``$FASTFAX_SPOOL``, else
``~/.local/share/fastfax/spool``), in this process, or against a ``fastfax serve``
daemon: ``--server URL`` (else ``$FASTFAX_SERVER``) with the token read from
``--token-file FILE`` (else ``$FASTFAX_TOKEN_FILE``, else the token itself in
``$FASTFAX_TOKEN``). With the embedded spool, faxes go out only while a fastfax process
has the spool open: ``send --wait`` stays until they are done; a plain ``send`` only
queues them (for ``fastfax serve --spool DIR`` to send).

``fastfax send FILE...`` sends one fax: several files go one after the other in the
same fax (as HylaFAX's ``sendfax`` does), converted here into fax pages first. Each
``--to`` makes one job (a broadcast group when there are several).

Listings print a table, or with ``--json`` one JSON document on stdout (``events``: one
JSON object a line) whose records are the service's own (:func:`fastfax.service.model.to_wire`).
Exit statuses: see :mod:`fastfax.cli`.

Only the standard library is imported here at start; the client (and with it the
service) when a command runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .cli_common import SERVICE_COMMANDS, Progress, UsageError, WaitTimeout

__all__ = ["COMMANDS", "add_arguments", "run", "parse_schedule"]

#: The service commands and their one-line help.
COMMANDS = SERVICE_COMMANDS

_COVER_ONLY = {  # option dest -> cover field the send call has no parameter for
    "cover_template": "template",
    "to_company": "recipient_company",
    "to_address": "recipient_address",
    "from_address": "sender_address",
    "from_phone": "sender_phone",
    "subject": "subject",
    "note": "note",
}
_ACTIONS = ("cancel", "pause", "resume", "restart", "delete")
_RIGHTS = "job_submit, job_query, config_query, config_set, port_query, port_set, job_manage, all"


# -- arguments ------------------------------------------------------------------------------


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where the service is (default: the embedded spool)")
    group.add_argument("--spool", metavar="DIR", help="embedded spool directory")
    group.add_argument(
        "--server", metavar="URL", help="a fastfax daemon, https://host:port (http:// on loopback)"
    )
    group.add_argument(
        "--token-file", metavar="FILE", help="file holding the token (e.g. <spool>/admin.token)"
    )
    group.add_argument(
        "--ca", metavar="FILE", help="PEM file that verifies an https:// daemon's certificate"
    )


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Add the arguments of service command ``name`` to its ``parser``."""
    if name != "users":  # users: on each verb, where argparse keeps their values
        _connection_arguments(parser)
    if name == "send":
        _send_arguments(parser)
    elif name == "jobs":
        parser.add_argument("--all", action="store_true", help="finished jobs too")
        parser.add_argument("--json", action="store_true", help="a JSON list of jobs")
    elif name == "job":
        parser.add_argument("id", type=int, metavar="ID")
        acts = parser.add_mutually_exclusive_group()
        for action in _ACTIONS:
            acts.add_argument(f"--{action}", action="store_const", const=action, dest="action")
        parser.add_argument(
            "--confirm", action="store_true", help="with --restart: send a completed fax again"
        )
        parser.add_argument("--json", action="store_true", help="the job as JSON")
    elif name == "ports":
        parser.add_argument("--json", action="store_true", help="a JSON list of ports")
    elif name == "events":
        parser.add_argument("--count", type=int, metavar="N", help="stop after N events")
        parser.add_argument("--job", type=int, metavar="ID", help="only this job's events")
        parser.add_argument(
            "--since", type=int, metavar="SEQ", help="first the kept events after event SEQ"
        )
        parser.add_argument("--json", action="store_true", help="one JSON object a line")
    elif name == "users":
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="add|remove|list")
        add = verbs.add_parser("add", help="create or replace a user; prints its new token")
        add.add_argument("name", metavar="NAME")
        add.add_argument(
            "--rights", required=True, metavar="R,R", help=f"comma-separated: {_RIGHTS}"
        )
        remove = verbs.add_parser("remove", help="remove a user")
        remove.add_argument("name", metavar="NAME")
        listing = verbs.add_parser("list", help="every user and their rights")
        listing.add_argument("--json", action="store_true", help="a JSON list")
        for verb in (add, remove, listing):
            _connection_arguments(verb)


def _send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="documents, sent in this order")
    parser.add_argument(
        "--to",
        action="append",
        required=True,
        metavar="NUMBER",
        help="fax number; repeat for several (one job each)",
    )
    parser.add_argument("--to-name", default="", help="recipient name (cover page, header)")
    parser.add_argument(
        "--schedule",
        metavar="WHEN",
        help="now (default), discount, HH:MM (the next one), 'YYYY-MM-DD HH:MM' or +MINUTES",
    )
    parser.add_argument("--priority", choices=("low", "normal", "high"), default="normal")
    parser.add_argument(
        "--request-id",
        metavar="KEY",
        help="this request's key: sending again with the same key queues nothing new",
    )
    parser.add_argument("--billing-code", default="", help="kept with the job")
    parser.add_argument("--department", default="", help="the sender's department")
    parser.add_argument("--tsid", default="", help="the identity sent to the far machine")
    parser.add_argument("--receipt", default="", help="delivery report: an e-mail or 'inbox'")
    from .document.layout import PAPER_SIZES, RESOLUTIONS
    from .document.render import MODES

    render = parser.add_argument_group("pages (default: the server's)")
    render.add_argument("--resolution", choices=list(RESOLUTIONS))
    render.add_argument("--page-size", choices=list(PAPER_SIZES))
    render.add_argument("--mode", choices=list(MODES))
    cover = parser.add_argument_group("cover page (--cover, or any of its fields, adds one)")
    cover.add_argument("--cover", action="store_true", help="add a cover page")
    cover.add_argument("--cover-template", metavar="NAME", help="a cover page the server has")
    cover.add_argument("--to-company")
    cover.add_argument("--to-address")
    cover.add_argument("--from", dest="sender_name", default="", help="sender name")
    cover.add_argument("--from-fax", default="", help="sender fax number")
    cover.add_argument("--from-company", default="")
    cover.add_argument("--from-address")
    cover.add_argument("--from-phone")
    cover.add_argument("--subject")
    cover.add_argument("--note")
    wait = parser.add_argument_group("waiting")
    wait.add_argument(
        "--wait", action="store_true", help="stay until every job is final; exit 1 if one failed"
    )
    wait.add_argument(
        "--timeout", type=float, metavar="S", help="with --wait: give up after S seconds (exit 4)"
    )
    parser.add_argument("--json", action="store_true", help="the jobs as a JSON list")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# -- connecting ------------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> str | None:
    path = args.token_file or os.environ.get("FASTFAX_TOKEN_FILE")
    if not path:
        return os.environ.get("FASTFAX_TOKEN") or None
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the token file {path!r}: {exc.strerror}") from None
    if not token:
        raise UsageError(f"the token file {path!r} is empty")
    return token


def _connect(args: argparse.Namespace) -> Any:
    from .client import connect

    server = args.server or os.environ.get("FASTFAX_SERVER")
    if server and args.spool:
        raise UsageError("give either --server or --spool, not both")
    token = _token(args)
    if server:
        if "://" not in server:
            raise UsageError(f"--server is a URL like http://127.0.0.1:8765, got {server!r}")
        return connect(server, token=token, ca=args.ca or os.environ.get("FASTFAX_CA"))
    from .service.errors import SpoolBusy
    from .service.server import default_spool

    spool = args.spool or default_spool()
    try:
        return connect(spool=spool, token=token)
    except SpoolBusy:
        raise SpoolBusy(
            f"a fastfax daemon holds the spool {spool!r}: reach it with --server URL "
            f"--token-file {os.path.join(spool, 'admin.token')}"
        ) from None


# -- output ----------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    from .service.model import to_wire

    print(json.dumps(to_wire(value), indent=2))


def _table(headers: Sequence[str], rows: list[Sequence[Any]]) -> None:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _pages(info: Any) -> str:
    if info.current_page:
        return f"{info.current_page}/{info.pages}"
    return str(info.pages)


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return _dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


# -- send ------------------------------------------------------------------------------------


def parse_schedule(text: str | None, now: _dt.datetime | None = None) -> str | float | None:
    """``--schedule``: None, "now", "discount", or a POSIX time in seconds from
    ``HH:MM`` (today, or tomorrow if past), ``YYYY-MM-DD HH:MM`` or ``+MINUTES``."""
    if text is None or text in ("now", "discount"):
        return text
    now = now or _dt.datetime.now()
    try:
        if text.startswith("+"):
            return (now + _dt.timedelta(minutes=float(text[1:]))).timestamp()
        if len(text) <= 5 and ":" in text:
            hour, minute = (int(part) for part in text.split(":"))
            when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            return (when if when > now else when + _dt.timedelta(days=1)).timestamp()
        return _dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(
            f"--schedule is now, discount, HH:MM, 'YYYY-MM-DD HH:MM' or +MINUTES, got {text!r}"
        ) from None


def _document(args: argparse.Namespace, render: dict[str, str]) -> tuple[Any, str]:
    """What to send and its name: one file as it is (the server converts it), or
    several converted here into the pages of one TIFF-F, in order."""
    for path in args.files:
        if not os.path.isfile(path):
            raise UsageError(f"no such file {path!r}")
    if len(args.files) == 1:
        return args.files[0], os.path.basename(args.files[0])
    from .document.convert import Options, render_document

    options = Options(**render)
    pages = []
    bar = Progress("file", quiet=args.quiet or args.json)
    try:
        for n, path in enumerate(args.files):
            pages += render_document(path, options, as_is=not render)
            bar(n + 1, len(args.files))
    finally:
        bar.close()
    from . import tiff

    return tiff.dumps(pages, "g4"), "+".join(os.path.basename(f) for f in args.files)


def _send(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    schedule = parse_schedule(args.schedule)
    render = {
        key: value
        for key, value in (
            ("resolution", args.resolution),
            ("page_size", args.page_size),
            ("mode", args.mode),
        )
        if value
    }
    fields = {field: getattr(args, dest) for dest, field in _COVER_ONLY.items()}
    cover: dict[str, str] | None = None
    if args.cover or any(fields.values()):
        cover = {k: v for k, v in fields.items() if v}
    document, name = _document(args, render)
    with _connect(args) as server:
        options = {
            "cover": cover,
            "schedule": schedule,
            "priority": args.priority,
            "sender_name": args.sender_name,
            "sender_fax": args.from_fax,
            "sender_company": args.from_company,
            "render": render or None,
            "filename": name,
            "request_id": args.request_id,
            "billing_code": args.billing_code,
            "tsid": args.tsid,
            "sender_department": args.department,
            "receipt": args.receipt,
        }
        if len(args.to) == 1:
            jobs = [server.send(document, args.to[0], recipient_name=args.to_name, **options)]
        else:
            jobs = server.broadcast(document, [(n, args.to_name) for n in args.to], **options)
        if not args.wait:
            infos = [job.info() for job in jobs]
            if args.json:
                _print_json(infos)
            else:
                for info in infos:
                    print(f"job {info.id} queued for {info.number}")
            if not server.remote and not args.quiet:
                print(
                    "fastfax: the embedded spool sends only while a fastfax process has it "
                    "open: use send --wait, or run fastfax serve --spool on it",
                    file=sys.stderr,
                )
            return 0
        infos = _wait(server, jobs, args.timeout, quiet=args.quiet or args.json)
        if not server.remote:
            _drain(server)
    if args.json:
        _print_json(infos)
    else:
        for info in infos:
            print(_outcome(info))
    return 0 if all(info.state.value == "completed" for info in infos) else 1


def _outcome(info: Any) -> str:
    text = f"job {info.id} to {info.number}: {info.state.value}, {info.pages} pages"
    if info.state.value == "completed":
        link = f"{info.rate} bit/s" + (", ECM" if info.ecm else "") if info.rate else ""
        who = f" ({info.remote_id})" if info.remote_id else ""
        return f"{text}{who}" + (f", {link}" if link else "")
    return f"{text}, {info.attempts} attempts" + (f": {info.cause}" if info.cause else "")


def _wait(server: Any, jobs: list[Any], timeout: float | None, quiet: bool) -> list[Any]:
    """Follow ``jobs`` until each is final; the pages sent on a progress bar. Raises
    :class:`WaitTimeout` after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ids = {job.id for job in jobs}
    with server.events() as events:
        infos = {job.id: job.info() for job in jobs}
        bar = Progress(quiet=quiet)
        try:
            while not all(info.state.final for info in infos.values()):
                left = 1.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    busy = [f"{i.id} ({i.state.value})" for i in infos.values()]
                    raise WaitTimeout(f"not final after {timeout:g} s: jobs {', '.join(busy)}")
                event = events.get(timeout=min(1.0, left))
                if event is not None and event.job_id not in ids:
                    continue
                for job in jobs:
                    if not infos[job.id].state.final:
                        infos[job.id] = job.info()
                total = sum(i.pages for i in infos.values())
                done = sum(
                    i.pages if i.state.value == "completed" else max(i.current_page - 1, 0)
                    for i in infos.values()
                )
                if total:  # 0 while the documents are still being converted
                    bar(done, total)
        finally:
            bar.close()
    return [infos[job.id] for job in jobs]


#: Line states of a call in progress (a fax being dialled, sent, received or routed).
_ON_A_CALL = {"dialing", "sending", "receiving", "ringing", "answered", "routing"}
#: Seconds an embedded ``send --wait`` stays for calls still on the lines before closing.
DRAIN_SECONDS = 60.0


def _drain(server: Any) -> None:
    """Before an embedded service closes: let calls on its lines end (the far end of a
    loopback pair still storing the fax just sent, a fax being received), for up to
    :data:`DRAIN_SECONDS`; closing would interrupt them."""
    deadline = time.monotonic() + DRAIN_SECONDS
    busy = ("inprogress", "routing")  # and a received fax not yet routed: pending
    while time.monotonic() < deadline:
        lines = any(p.state.value in _ON_A_CALL for p in server.ports())
        jobs = any(
            j.state.value in busy or (j.type.value == "receive" and j.state.value == "pending")
            for j in server.jobs()
        )
        if not lines and not jobs:
            return
        time.sleep(0.05)


# -- jobs, job, ports ------------------------------------------------------------------------


def _jobs(args: argparse.Namespace) -> int:
    with _connect(args) as server:
        infos = [i for i in server.jobs() if args.all or not i.state.final]
    if args.json:
        _print_json(infos)
        return 0
    rows = [
        (
            i.id,
            i.type.value,
            i.state.value,
            i.number or "-",
            _pages(i),
            i.attempts,
            i.owner,
            i.cause,
        )
        for i in infos
    ]
    _table(("ID", "TYPE", "STATE", "NUMBER", "PAGES", "ATTEMPTS", "OWNER", "CAUSE"), rows)
    return 0


def _job(args: argparse.Namespace) -> int:
    if args.confirm and args.action != "restart":
        raise UsageError("--confirm goes with --restart")
    with _connect(args) as server:
        job = server.job(args.id)
        if args.action is None:
            info = job.info()
        elif args.action == "restart" and args.confirm:
            info = job.restart(confirm=True)
        else:
            info = getattr(job, args.action)()
    if args.json:
        _print_json(info)
        return 0
    from .service.model import to_wire

    wire = to_wire(info)
    for key in ("submitted", "schedule", "started", "finished"):
        wire[key] = _when(wire[key])
    width = max(len(k) for k in wire)
    for key, value in wire.items():
        if value not in (None, "", {}):
            print(f"{key:<{width}}  {value}")
    return 0


def _ports(args: argparse.Namespace) -> int:
    with _connect(args) as server:
        ports = server.ports()
    if args.json:
        _print_json(ports)
        return 0
    yes = {True: "yes", False: "no"}
    rows = [
        (p.id, p.kind, p.number or "-", p.state.value, yes[p.send], yes[p.receive], p.name)
        for p in ports
    ]
    _table(("ID", "KIND", "NUMBER", "STATE", "SEND", "RECEIVE", "NAME"), rows)
    return 0


# -- events, users ---------------------------------------------------------------------------


def _event_line(event: Any) -> str:
    stamp = _dt.datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
    parts = [str(event.seq), stamp, event.kind.value]
    if event.job_id is not None:
        parts.append(f"job={event.job_id}")
    if event.port is not None:
        parts.append(f"port={event.port}")
    parts += [f"{k}={v}" for k, v in event.data.items()]
    return " ".join(parts)


def _events(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    from .service.model import to_wire

    seen = 0
    with _connect(args) as server, server.events(args.since) as stream:
        try:
            for event in stream:
                if args.job is not None and event.job_id != args.job:
                    continue
                line = json.dumps(to_wire(event)) if args.json else _event_line(event)
                print(line, flush=True)
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C is how following ends
    return 0


def _users(args: argparse.Namespace) -> int:
    with _connect(args) as server:
        if args.verb == "add":
            rights = [r.strip() for r in args.rights.split(",") if r.strip()]
            if not rights:
                raise UsageError(f"--rights names one or more of {_RIGHTS}")
            print(server.add_user(args.name, rights))
            return 0
        if args.verb == "remove":
            if not server.remove_user(args.name):
                print(f"fastfax: no user {args.name!r}", file=sys.stderr)
                return 1
            return 0
        users = server.users()
    if args.json:
        _print_json(users)
    else:
        _table(("NAME", "RIGHTS"), [(u["name"], ",".join(u["rights"])) for u in users])
    return 0


_RUN = {
    "send": _send,
    "jobs": _jobs,
    "job": _job,
    "ports": _ports,
    "events": _events,
    "users": _users,
}


def run(args: argparse.Namespace) -> int:
    """Run the service command ``args.command``; its exit status."""
    return _RUN[args.command](args)
