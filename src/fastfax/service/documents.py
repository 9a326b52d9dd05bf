"""Turning what a user submits into the fax pages of a job (FaxCompleteJobParams and
FaxPrintCoverPage): server defaults filled in, cover page and header line rendered,
pages kept in the spool as TIFF-F (MMR).

A job is accepted before its document is converted: it waits in the PREPARING state,
its row naming the submitted document (kept in the spool's ``src/``), until the
:class:`Preparer` thread has written its pages; the jobs of a broadcast without cover
pages share one conversion. A job found PREPARING at start (the process was killed) is
prepared again; a document that cannot be converted fails its job(s), the cause naming
the file and page.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..document.branding import DEFAULT_HEADER
from ..document.convert import Options, render_document
from ..document.cover import CoverInfo
from ..document.layout import FAX_WIDTHS
from ..errors import ConvertError
from ..page import Page
from .config import LOG_CATEGORIES, Configuration
from .errors import BadNumber, ConfigError, RequestError
from .model import EventKind, JobState
from .store import StoreUnavailable

__all__ = ["JobParams", "check_number", "complete_params", "render", "Preparer"]

out_log = logging.getLogger(LOG_CATEGORIES["outbound"])
#: PREPARING jobs converted per pass (a pass shares conversions among them).
BATCH = 64
#: Seconds of converting after which a pass commits the jobs it has prepared so far.
COMMIT_AFTER = 0.25

_DIAL = re.compile(r"^\+?[0-9*#,]{1,40}$")
_COVER_FIELDS = {f.name for f in dataclasses.fields(CoverInfo)} - {"pages", "time_sent"}
_TEMPLATE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
#: The spool's folder of server cover page templates (``<name>.json``).
COVER_FOLDER = "covers"
_RENDER_FIELDS = ("page_size", "resolution", "mode")
_FAX_WIDTHS = {w for widths in FAX_WIDTHS.values() for w in widths}


def check_number(number: Any) -> str:
    """A dial string: digits, ``*``, ``#``, ``,`` (pause), an optional leading ``+``;
    spaces, dots, dashes and brackets are dropped. Raises :class:`BadNumber`."""
    if not isinstance(number, str):
        raise BadNumber(f"a fax number must be a string, got {type(number).__name__}")
    cleaned = re.sub(r"[\s.()\-/]", "", number)
    if not _DIAL.match(cleaned):
        raise BadNumber(
            f"{number!r} is not a fax number: use digits, optionally + first, and * # ,"
        )
    return cleaned


@dataclass
class JobParams:
    """A send request with every default filled (FAX_JOB_PARAM + FAX_COVERPAGE_INFO)."""

    number: str
    recipient_name: str = ""
    sender_name: str = ""
    sender_fax: str = ""
    sender_company: str = ""
    cover: dict[str, str] | None = None
    render: dict[str, str] | None = None


def complete_params(
    config: Configuration,
    to: Any,
    *,
    cover: Any = None,
    recipient_name: str = "",
    sender_name: str = "",
    sender_fax: str = "",
    sender_company: str = "",
    render: dict[str, str] | None = None,
) -> JobParams:
    """Check a request and fill what it leaves empty from the server's configuration."""
    number = check_number(to)
    if cover is True:
        cover = {}
    if cover is not None:
        if isinstance(cover, CoverInfo):
            cover = {k: v for k, v in dataclasses.asdict(cover).items() if k in _COVER_FIELDS}
        if not isinstance(cover, dict) or set(cover) - _COVER_FIELDS - {"template"}:
            raise RequestError(
                f"cover must be True, a CoverInfo or a dict of {sorted(_COVER_FIELDS)}"
                " and template"
            )
    render = dict(render or {})
    if set(render) - set(_RENDER_FIELDS):
        raise RequestError(f"render options are {_RENDER_FIELDS}, got {sorted(render)}")
    return JobParams(
        number=number,
        recipient_name=str(recipient_name),
        sender_name=str(sender_name or config.sender_name),
        sender_fax=str(sender_fax or config.sender_fax),
        sender_company=str(sender_company or config.sender_company),
        cover=None if cover is None else {k: str(v) for k, v in cover.items()},
        render=render,
    )


def check_cover(cover: dict[str, str], config: Configuration, spool: str, local: bool) -> None:
    """Resolve ``cover["template"]`` in place to a template file: a name of the server's
    templates (``<spool>/covers/<name>.json``) or, for a client in this process when the
    server allows personal cover pages (``server_cover_pages_only`` off), the path of a
    JSON template file. No template: the default one. Raises :class:`RequestError`."""
    name = cover.get("template")
    if not name:
        cover.pop("template", None)
        return
    if _TEMPLATE.match(name):
        path = os.path.join(spool, COVER_FOLDER, f"{name}.json")
        if not os.path.isfile(path):
            raise RequestError(f"no server cover page {name!r} (in {COVER_FOLDER}/ of the spool)")
    elif config.server_cover_pages_only:
        raise RequestError(
            f"only server cover pages may be used (server_cover_pages_only); {name!r} is not one"
        )
    elif not local or not os.path.isabs(name) or not os.path.isfile(name):
        raise RequestError(f"a personal cover page is the absolute path of a JSON file: {name!r}")
    else:
        path = name
    cover["template"] = path


def render(path: str, params: JobParams, config: Configuration) -> list[Page]:
    """The fax pages of the document at ``path`` for ``params``: the cover first when
    asked, the header line on every page when branding is on."""
    return render_job(path, params, config)[0]


def render_job(path: str, params: JobParams, config: Configuration) -> tuple[list[Page], bool]:
    """:func:`render`, and whether the pages are the file's own, unchanged (a fax TIFF
    sent as it is: its file may be queued as it is)."""
    cover = template = None
    if params.cover is not None:
        fields = {
            "recipient_name": params.recipient_name,
            "recipient_fax": params.number,
            "sender_name": params.sender_name,
            "sender_fax": params.sender_fax,
            "sender_company": params.sender_company,
            **{k: v for k, v in params.cover.items() if v and k != "template"},
        }
        cover = CoverInfo(**fields)
        template = params.cover.get("template")
    try:
        options = Options(
            header=DEFAULT_HEADER if config.branding else None,
            sender=params.sender_name or params.sender_company,
            sender_fax=params.sender_fax,
            recipient=params.recipient_name,
            cover=cover,
            cover_template=template,
            **(params.render or {}),
        )
    except TypeError as exc:
        raise ConfigError(f"bad render options: {exc}") from None
    if cover is None and options.header is None and not params.render:
        pages = render_document(path, options, as_is=True)  # a fax TIFF goes out unchanged
        if all(p.width in _FAX_WIDTHS for p in pages):
            return pages, _is_tiff(path)
    return render_document(path, options), False


def _is_tiff(path: str) -> bool:
    """Whether the file starts as a TIFF file does (either byte order)."""
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II*\x00", b"MM\x00*")


def failure_cause(filename: str, exc: BaseException) -> str:
    """Why a document could not be converted, naming the file as the user gave it and
    the page when known."""
    if isinstance(exc, ConvertError):
        where = filename + ("" if exc.page is None else f", page {exc.page}")
        return f"cannot convert {where}: {exc.reason}"
    return f"cannot convert {filename}: {type(exc).__name__}: {exc}"


class Preparer:
    """The thread that converts the documents of PREPARING jobs (oldest first) into
    their fax pages and makes them PENDING. It sees of the service the store, the
    spool's files (``spool``: :class:`fastfax.service.spool.Spool`), the event bus,
    the live configuration and ``ready`` (called when jobs became pending)."""

    def __init__(
        self,
        store: Any,
        spool: Any,
        bus: Any,
        config: Callable[[], Configuration],
        ready: Callable[[], None],
    ) -> None:
        self.store = store
        self.spool = spool
        self.bus = bus
        self._config = config
        self._ready = ready
        self._wake = threading.Event()
        self._stopping = False
        self._doomed: list[tuple[int, str]] = []  # (store.synced when no longer named, file)
        self._thread = threading.Thread(target=self._run, name="fastfax-prepare", daemon=True)

    def start(self) -> None:
        """Remove submitted documents no job names (a run that stopped before they
        could go), then start converting."""
        folder = os.path.join(self.spool.root, "src")
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            if not self.store.file_used(os.path.join("src", name)):
                self.spool.remove(os.path.join("src", name))
        self._thread.start()

    def kick(self) -> None:
        """New jobs to prepare."""
        self._wake.set()

    def stop(self) -> None:
        """Stop after the conversion under way (its jobs stay PREPARING, done next start)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                more = self._batch()
            except StoreUnavailable as exc:  # a partition or the server down: later
                logging.getLogger(LOG_CATEGORIES["unknown"]).warning("preparing jobs: %s", exc)
                more = False
            except Exception:  # a bug must not stop preparing: log it, try again later
                logging.getLogger(LOG_CATEGORIES["unknown"]).exception("preparing jobs failed")
                more = False
            if not more:
                self._wake.wait(0.25 if self._doomed else 1.0)

    def _batch(self) -> bool:
        """Prepare up to :data:`BATCH` jobs; whether there may be more."""
        rows = self.store.jobs("state = ?", (JobState.PREPARING.value,), order=f"id LIMIT {BATCH}")
        config = self._config()
        done: dict[str, tuple[str, int] | BaseException] = {}  # share key -> (file, pages)
        sources = set()
        ready: list[tuple[dict[str, Any], str, int, int]] = []  # (row, file, pages, size)
        began = time.monotonic()
        for row in rows:
            if self._stopping:
                break
            sources.add(row["file"])
            info = row["info"]
            params = JobParams(number=row["number"], **info["params"])
            key = json.dumps([row["file"], params.render, params.sender_name,
                              params.sender_fax, params.sender_company])  # fmt: skip
            if params.cover is not None:
                key = f"{key}#{row['id']}"
            # the spool and the store failing (a lost database) is not the document's
            # fault: that goes up to _run, which logs it, and the job is prepared later
            name = info.get("document_name", "document")
            if isinstance(done.get(key), BaseException):
                self._fail(row, failure_cause(name, done[key]))  # type: ignore[arg-type]
                continue
            if key in done:
                first, count = done[key]  # type: ignore[misc]
                file = self.spool.copy(first, "out")
            else:
                source = self.spool.path(row["file"])
                try:
                    pages, same = render_job(source, params, config)
                except Exception as exc:  # the document (not the service) is at fault
                    done[key] = exc
                    self._fail(row, failure_cause(name, exc))
                    continue
                if same:  # a fax TIFF as it is: queued without coding it again
                    file = self.spool.copy(row["file"], "out")
                else:
                    file = self.spool.write("out", pages)
                count = len(pages)
                done[key] = (file, count)
            size = os.path.getsize(self.spool.path(file))
            ready.append((row, file, count, size))
            if time.monotonic() - began > COMMIT_AFTER:  # slow documents: don't hold these
                self._commit(ready, sources)
                ready, began = [], time.monotonic()
        self._commit(ready, sources)
        # documents and pages no job names any longer go once that is durable (a durable
        # commit after ours: a power cut cannot bring back a job naming them)
        self._doomed += [(self.store.synced, s) for s in sources]
        keep = []
        for mark, source in self._doomed:
            if mark >= self.store.synced:
                keep.append((mark, source))
            elif not self.store.file_used(source):
                self.spool.remove(source)
        self._doomed = keep
        return len(rows) == BATCH

    def _commit(self, ready: list[tuple[dict[str, Any], str, int, int]], sources: set) -> None:
        """Make the ``ready`` jobs (row, pages file, pages, size) PENDING in one commit
        that does not wait for the disk: a conversion lost in a power cut is done again
        (its job is still PREPARING), and the durable claim that puts a job on a line
        flushes this commit with it. Files of jobs cancelled meanwhile go to
        ``sources`` (removed unless used)."""
        if not ready:
            return
        when = f"state = '{JobState.PREPARING.value}'"
        moved = self.store.update_jobs(
            [(row["id"], when, {"state": JobState.PENDING.value, "file": file, "pages": count,
                                "info": {"size": size}})
             for row, file, count, size in ready],
            durable=False,
        )  # fmt: skip
        for (row, file, count, size), ok in zip(ready, moved, strict=True):
            if not ok:  # cancelled or deleted meanwhile (others may copy the file yet)
                sources.add(file)
                continue
            self.bus.publish(
                EventKind.PREPARED, job_id=row["id"], pages=count, size=size, owner=row["owner"]
            )
        if any(moved):
            self._ready()

    def _fail(self, row: dict[str, Any], cause: str) -> None:
        failed = self.store.update_job(
            row["id"],
            f"state = '{JobState.PREPARING.value}'",
            state=JobState.FAILED.value,
            finished=time.time(),
            cause=cause,
        )
        if failed:
            out_log.warning("job %d: %s", row["id"], cause)
            self.bus.publish(EventKind.FATAL_ERROR, job_id=row["id"], cause=cause,
                             owner=row["owner"])  # fmt: skip
            self._ready()
