"""Documents to fax pages and back, on every core.

:func:`render_document` turns one document (PDF, image, multi-page TIFF, plain text;
see :mod:`.render`) into fax pages on a :class:`.layout.Layout`, with an optional cover
page (:mod:`.cover`) and header line (:mod:`.branding`). :func:`save` writes pages as
TIFF Class F (G3 1-D, G3 2-D, G4), PDF (G4 images, :mod:`.pdfout`), PNG (a file a page)
or PBM (the pages one after the other), each file written under a temporary name and
renamed once complete. :func:`convert` does both for a batch of documents in parallel
and reports each one's outcome; a bad document fails alone.

PDFium is not thread-safe, so parallel work runs in worker processes (forked where the
platform allows), each rendering and binarising whole pages. For G4 TIFF and PDF output
a worker also codes its pages with T.6 and returns the coded data
(:class:`fastfax.codec.CodedPage`, about a twentieth of the pixels' size), which the
parent writes out as it is.

A bilevel TIFF (a received fax) converted to PDF, PNG or PBM keeps its pages as they
are: the reverse direction, for viewing.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from .. import tiff
from ..codec import CodedPage
from ..errors import ConvertError, FaxError, TiffError
from ..files import write_files
from ..page import Page
from . import pdfout
from .branding import apply_header, header_text
from .layout import Layout, layout_for
from .render import DEFAULT_THRESHOLD, MODES, Source, open_source

if TYPE_CHECKING:
    from .cover import CoverInfo
    from .workers import Workers

__all__ = [
    "ConvertError",
    "Options",
    "Converted",
    "Format",
    "FORMATS",
    "render_document",
    "save",
    "output_paths",
    "convert",
    "start_workers",
]

Format = Literal["tiff", "pdf", "png", "pbm"]
#: File name extensions and the output format each one means.
FORMATS: dict[str, Format] = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".pdf": "pdf",
    ".png": "png",
    ".pbm": "pbm",
}
_EXTENSION = {"tiff": ".tif", "pdf": ".pdf", "png": ".png", "pbm": ".pbm"}
_COMPRESSIONS = ("g4", "g3", "g3-2d")


@dataclass(frozen=True)
class Options:
    """How documents become fax pages.

    ``page_size``, ``resolution``, ``width``: see :func:`fastfax.document.layout.layout_for`.
    ``mode``: "text" (threshold), "photo" (error diffusion) or "auto" (chosen per page);
    ``threshold``: the grey level (0-255) below which text mode makes a pixel black.
    ``header``: a header template (see :mod:`fastfax.document.branding`) printed on every page,
    or None; ``sender``, ``sender_fax`` and ``recipient`` fill its fields.
    ``cover``: the cover page to put first, or None; ``cover_template``: a JSON
    template file (the shipped one when None). ``password``: for encrypted PDFs.
    ``when``: the time printed in the header and on the cover (default: now).
    """

    page_size: str = "a4"
    resolution: str = "fine"
    width: int | None = None
    mode: str = "text"
    threshold: int = DEFAULT_THRESHOLD
    header: str | None = None
    sender: str = ""
    sender_fax: str = ""
    recipient: str = ""
    cover: CoverInfo | None = None
    cover_template: str | None = None
    password: str | None = None
    when: _dt.datetime | None = None

    def layout(self) -> Layout:
        """The fax page these options describe."""
        return layout_for(self.page_size, self.resolution, self.width)

    def check(self) -> Options:
        """Validate; return the options with ``when`` filled in."""
        self.layout()
        if self.mode not in MODES:
            raise ConvertError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if not isinstance(self.threshold, int) or not 1 <= self.threshold <= 255:
            raise ConvertError(
                f"threshold must be an integer from 1 to 255, got {self.threshold!r}"
            )
        checked = (
            self if self.when else replace(self, when=_dt.datetime.now().replace(microsecond=0))
        )
        if checked.header is not None:  # a bad template fails here, not on every page
            header_text(checked.header, page=1, pages=1, when=checked.when)
        return checked


@dataclass
class Converted:
    """The outcome for one document: the ``outputs`` written, the ``pages`` in them,
    or the ``error``; ``seconds`` from its first page rendered to its file written."""

    source: str
    target: str
    outputs: list[str] = field(default_factory=list)
    pages: int = 0
    error: FaxError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


# -- rendering ------------------------------------------------------------------------------

# The source a process rendered last, kept open for the next pages of the same document.
_cached: dict[str, Source] = {}


def _source(path: str, layout: Layout, password: str | None) -> Source:
    src = _cached.get(path)
    if src is None:
        _drop_cache()
        src = _cached[path] = open_source(path, layout, password=password)
    return src


def _drop_cache() -> None:
    for src in _cached.values():
        src.close()
    _cached.clear()


def _forget_cache() -> None:
    """In a forked worker: forget, without closing, what the parent had open."""
    _cached.clear()


def _is_fax_tiff(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in (b"II*\0", b"MM\0*")


def _render_pages(
    path: str,
    indices: Sequence[int],
    options: Options,
    layout: Layout,
    first: int,
    total: int,
    coded: bool = False,
) -> list[Page | CodedPage]:
    """Pages ``indices`` of a document, headed as pages ``first + index`` of ``total``;
    T.6 coded when ``coded``."""
    src = _source(path, layout, options.password)
    pages: list[Page | CodedPage] = []
    for index in indices:
        page = src.render(index, layout, options.mode, options.threshold)
        page = _headed(page, options, first + index, total)
        pages.append(CodedPage.of(page) if coded else page)
    return pages


def _headed(page: Page, options: Options, number: int, total: int) -> Page:
    if options.header is None:
        return page
    text = header_text(
        options.header,
        page=number,
        pages=total,
        when=options.when or _dt.datetime.now(),
        sender=options.sender,
        fax=options.sender_fax,
        recipient=options.recipient,
    )
    return apply_header(page, text)


def _cover_page(options: Options, layout: Layout, total: int) -> Page:
    from .cover import load_template, render_cover

    assert options.cover is not None
    info = replace(options.cover, pages=total, time_sent=options.when or _dt.datetime.now())
    page = render_cover(info, layout, load_template(options.cover_template))
    return _headed(page, options, 1, total)


def _count(path: str, layout: Layout, options: Options, keep: bool) -> int:
    """The document's page count; its source kept open for this process when ``keep``
    (else only counted: an image is not decoded)."""
    src = open_source(path, layout, password=options.password, decode=keep)
    if keep:
        _drop_cache()
        _cached[path] = src
    else:
        src.close()
    return src.pages


def render_document(
    path: str | os.PathLike[str], options: Options | None = None, *, as_is: bool = False
) -> list[Page]:
    """The fax pages of one document, cover page first, in this process.

    ``as_is``: a bilevel TIFF's pages are returned unchanged (no layout, cover or
    header). Raises :class:`ConvertError` naming the file and page.
    """
    path = os.fspath(path)
    if as_is and _is_fax_tiff(path):
        try:
            return tiff.read(path)
        except TiffError:
            pass  # not a fax TIFF: lay it out like any image
    options = (options or Options()).check()
    layout = options.layout()
    try:
        pages = _count(path, layout, options, keep=True)
        offset = 1 if options.cover else 0
        out: list[Page] = _render_pages(  # type: ignore[assignment]
            path, range(pages), options, layout, 1 + offset, pages + offset
        )
    finally:
        _drop_cache()
    if options.cover:
        out.insert(0, _cover_page(options, layout, pages + 1))
    return out


# -- writing --------------------------------------------------------------------------------


def output_paths(target: str | os.PathLike[str], pages: int, fmt: Format) -> list[str]:
    """The files :func:`save` writes: one, except PNG with several pages
    (``name-001.png``, ``name-002.png``, ...)."""
    target = os.fspath(target)
    if fmt != "png" or pages == 1:
        return [target]
    stem, ext = os.path.splitext(target)
    return [f"{stem}-{n:03d}{ext or '.png'}" for n in range(1, pages + 1)]


def _format_of(target: str, fmt: str | None) -> Format:
    if fmt is None:
        ext = os.path.splitext(target)[1].lower()
        if ext not in FORMATS:
            raise ConvertError(
                f"cannot tell the output format from {target!r}: name it .tif, .pdf, .png "
                "or .pbm, or give the format"
            )
        return FORMATS[ext]
    if fmt not in _EXTENSION:
        raise ConvertError(f"unknown format {fmt!r}: use one of {', '.join(_EXTENSION)}")
    return fmt  # type: ignore[return-value]


def save(
    pages: Sequence[Page | CodedPage],
    target: str | os.PathLike[str],
    fmt: Format | None = None,
    compression: str = "g4",
    *,
    title: str = "",
) -> list[str]:
    """Write ``pages`` to ``target`` (format from its extension unless ``fmt``);
    ``compression`` applies to TIFF: "g4", "g3" (1-D) or "g3-2d". Pages already coded
    (:class:`fastfax.codec.CodedPage`) go into G4 TIFF and PDF files as they are.
    Returns the files written (see :func:`output_paths`)."""
    target = os.fspath(target)
    kind = _format_of(target, fmt)
    if compression not in _COMPRESSIONS:
        raise ConvertError(
            f"unknown compression {compression!r}: use one of {', '.join(_COMPRESSIONS)}"
        )
    if not pages:
        raise ConvertError("no pages to write", path=target)
    paths = output_paths(target, len(pages), kind)
    try:
        if kind == "tiff":
            tiff.write(target, pages, compression)  # type: ignore[arg-type]
        elif kind == "pdf":
            write_files([(target, [pdfout.dumps(pages, title=title)])])
        elif kind == "pbm":
            write_files([(target, (_pixels(p).to_pbm() for p in pages))])
        else:
            write_files([(path, [_png(_pixels(p))]) for path, p in zip(paths, pages, strict=True)])
    except OSError as exc:
        raise ConvertError(f"cannot write: {exc.strerror or exc}", path=target) from None
    return paths


def _pixels(page: Page | CodedPage) -> Page:
    return page.to_page() if isinstance(page, CodedPage) else page


def _coded(fmt: Format, compression: str) -> bool:
    """Whether pages for ``fmt`` are best handed over T.6 coded."""
    return fmt == "pdf" or (fmt == "tiff" and compression == "g4")


def _png(page: Page) -> bytes:
    """A PNG of the page with square pixels, as viewers show pixels: a page whose
    resolutions differ by a factor of 1.5 or more (standard 204 x 98, superfine
    204 x 391) has its rows (or columns) repeated that factor (rounded) times."""
    import io

    from PIL.Image import Resampling

    image = page.to_image()
    xres, yres = page.xres, page.yres
    if xres >= 1.5 * yres:
        factor = round(xres / yres)
        image = image.resize((page.width, page.height * factor), Resampling.NEAREST)
        yres *= factor
    elif yres >= 1.5 * xres:
        factor = round(yres / xres)
        image = image.resize((page.width * factor, page.height), Resampling.NEAREST)
        xres *= factor
    buf = io.BytesIO()
    image.save(buf, "PNG", dpi=(xres, yres), optimize=False)
    return buf.getvalue()


# -- batches --------------------------------------------------------------------------------


@dataclass
class _Doc:
    result: Converted
    fmt: Format
    pages: int = 0
    offset: int = 0
    pages_left: int = 0
    got: dict[int, list[Page | CodedPage]] = field(default_factory=dict)
    started: float = 0.0


#: Pages rendered between progress reports when working in this process.
_CHUNK = 8


def convert(
    pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    options: Options | None = None,
    *,
    fmt: Format | None = None,
    compression: str = "g4",
    processes: int | None = None,
    workers: Workers | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Converted]:
    """Convert each (source, target) pair; return a :class:`Converted` per pair, in order.

    ``processes``: worker processes started for this call (default: one per core; 1
    works in this process). ``workers``: use these already started instead (see
    :class:`.workers.Workers`; ``processes`` is then ignored), for many calls without
    starting processes each time. ``progress(pages_done, pages_known)`` is called as
    pages complete. A document that fails does not stop the others; its target is not
    written.
    """
    options = (options or Options()).check()
    layout = options.layout()
    docs = []
    for source, target in pairs:
        source, target = os.fspath(source), os.fspath(target)
        result = Converted(source, target)
        try:
            kind = _format_of(target, fmt)
        except ConvertError as exc:
            result.error = exc
            kind = "tiff"
        docs.append(_Doc(result, kind))
    if workers is not None:
        try:
            _run_pool(docs, options, layout, compression, progress, workers)
        finally:
            _settle(workers)
    elif _processes(processes) == 1:
        _run_here(docs, options, layout, compression, progress)
    else:
        with start_workers(processes) as own:
            _run_pool(docs, options, layout, compression, progress, own)
    return [d.result for d in docs]


def start_workers(processes: int | None = None) -> Workers:
    """Worker processes for :func:`convert` (default: one per core), to pass as its
    ``workers`` for many calls; close them (or use them as a context manager) when
    done."""
    from .workers import Workers  # multiprocessing: only for work in other processes

    return Workers(_processes(processes), _forget_cache)


def _processes(processes: int | None) -> int:
    """How many processes ``processes`` asks for (None or 0: one per core)."""
    return max(1, processes or os.cpu_count() or 1)


def _settle(workers: Workers) -> None:
    """After a call on lent workers: wait out what they still hold (a call cut short
    leaves tasks behind) and let them close the documents they have open."""
    while workers.busy():
        workers.wait()
    workers.broadcast(_drop_cache)


def _plan(doc: _Doc, options: Options, layout: Layout, keep: bool) -> int:
    """Count the document's pages (and return the count)."""
    doc.pages = doc.pages_left = _count(doc.result.source, layout, options, keep)
    doc.offset = 1 if options.cover else 0
    doc.started = time.perf_counter()
    return doc.pages


def _as_is(doc: _Doc) -> bool:
    """Write a received fax's pages unchanged (TIFF in, another format out)."""
    if doc.fmt == "tiff" or not _is_fax_tiff(doc.result.source):
        return False
    try:
        pages = tiff.read(doc.result.source)
    except TiffError:
        return False  # not a fax TIFF: lay it out like any image
    doc.started = time.perf_counter()
    _finish(doc, {0: list(pages)}, None, "g4", 0)
    return True


def _finish(
    doc: _Doc,
    got: dict[int, list[Page | CodedPage]],
    options: Options | None,
    compression: str,
    offset: int,
) -> None:
    pages = [p for key in sorted(got) for p in got[key]]
    try:
        if options is not None and options.cover:
            pages.insert(0, _cover_page(options, options.layout(), len(pages) + offset))
        title = os.path.basename(doc.result.source)
        doc.result.outputs = save(pages, doc.result.target, doc.fmt, compression, title=title)
        doc.result.pages = len(pages)
    except FaxError as exc:
        doc.result.error = exc
    doc.result.seconds = time.perf_counter() - doc.started
    got.clear()


def _fail(doc: _Doc, exc: BaseException) -> None:
    if not isinstance(exc, FaxError):
        exc = ConvertError(f"internal error: {exc!r}", path=doc.result.source)
    doc.result.error = exc
    doc.got.clear()


def _run_here(
    docs: list[_Doc],
    options: Options,
    layout: Layout,
    compression: str,
    progress: Callable[[int, int], None] | None,
) -> None:
    done = known = 0
    try:
        for doc in docs:
            if doc.result.error or _as_is(doc):
                continue
            try:
                pages = _plan(doc, options, layout, keep=True)
                known += pages
                total = pages + doc.offset
                for n in range(0, pages, _CHUNK):
                    chunk = range(n, min(pages, n + _CHUNK))
                    doc.got[n] = _render_pages(
                        doc.result.source,
                        chunk,
                        options,
                        layout,
                        1 + doc.offset,
                        total,
                        _coded(doc.fmt, compression),
                    )
                    done += len(chunk)
                    if progress:
                        progress(done, known)
            except FaxError as exc:
                _fail(doc, exc)
                continue
            finally:
                _drop_cache()
            _finish(doc, doc.got, options, compression, doc.offset)
    finally:
        _drop_cache()


#: Tasks queued on one worker at a time: it starts the next while the parent reads
#: the result of the one before.
_DEPTH = 2


def _run_pool(
    docs: list[_Doc],
    options: Options,
    layout: Layout,
    compression: str,
    progress: Callable[[int, int], None] | None,
    workers: Workers,
) -> None:
    """Each worker is kept :data:`_DEPTH` tasks ahead, the next one chosen by
    :class:`Planner` (so it stays on the pages whose fonts it has loaded). A worker that
    dies fails the documents it held tasks of; a new one takes its place."""
    from .affinity import Planner
    from .workers import WorkerDied

    todo = [i for i, d in enumerate(docs) if not d.result.error]
    todo.reverse()
    planner = Planner(workers.count)
    tasks: dict[int, tuple[int, int, int]] = {}  # task -> (document, first page, pages)
    done = known = 0

    def feed(worker: int) -> None:
        nonlocal known
        while workers.pending(worker) < _DEPTH:
            while todo and not planner.has_fresh():  # plan documents as workers need them
                key = todo.pop()
                doc = docs[key]
                if _as_is(doc):
                    continue
                try:
                    planner.add(key, _plan(doc, options, layout, False))
                    known += doc.pages
                except FaxError as exc:
                    _fail(doc, exc)
            pick = planner.next(worker)
            if pick is None:
                return
            key, start, count = pick
            doc = docs[key]
            if doc.result.error:
                continue
            task = workers.submit(
                worker,
                _render_pages,
                doc.result.source,
                range(start, start + count),
                options,
                layout,
                1 + doc.offset,
                doc.pages + doc.offset,
                _coded(doc.fmt, compression),
            )
            planner.handed(worker, key, start + count - 1)
            tasks[task] = (key, start, count)

    for worker in range(workers.count):
        feed(worker)
    while tasks:
        for item in workers.wait():
            key, start, count = tasks.pop(item.task)
            doc = docs[key]
            if item.error is not None:
                planner.drop(key)
                if isinstance(item.error, WorkerDied):
                    planner.forget(item.worker)
                    error: BaseException = ConvertError(
                        "a worker process died while rendering it", path=doc.result.source
                    )
                else:
                    error = item.error
                if not doc.result.error:
                    _fail(doc, error)
            else:
                done += count
                if progress:
                    progress(done, known)
                if not doc.result.error:
                    doc.got[start] = item.value
                    doc.pages_left -= count
                    if doc.pages_left == 0:
                        _finish(doc, doc.got, options, compression, doc.offset)
            feed(item.worker)
