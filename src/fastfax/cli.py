"""The ``fastfax`` command.

``fastfax convert INPUT... -o OUTPUT``
    documents (PDF, images, TIFF, text; directories of them) to fax files (TIFF-F,
    PDF, PNG, PBM), or received fax TIFFs to PDF / PNG for viewing.
``fastfax info FILE``
    pages, size, resolution and compression of a fax or document file.
``fastfax demo [DIR]``
    make a sample PDF, walk it through conversion and back, and fax it through the
    embedded fax service over a loopback pair of lines.
``fastfax serve [--config FILE] [--spool DIR] [--host H] [--port P]``
    run the fax service as a daemon (see ``fastfax serve --help``).

Exit status: 0 when everything converted, 1 when some input failed (each failure is
reported on stderr naming the file and page), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from .document.branding import DEFAULT_HEADER
from .document.convert import FORMATS, Options, convert
from .document.cover import CoverInfo
from .document.layout import PAPER_SIZES, RESOLUTIONS, layout_for
from .document.render import DEFAULT_THRESHOLD, MODES
from .errors import ConvertError, FaxError

__all__ = ["main"]

_EXT = {"tiff": ".tif", "pdf": ".pdf", "png": ".png", "pbm": ".pbm"}
_COVER_FIELDS = {
    "to": "recipient_name",
    "to_fax": "recipient_fax",
    "to_company": "recipient_company",
    "to_address": "recipient_address",
    "sender_name": "sender_name",
    "from_fax": "sender_fax",
    "from_company": "sender_company",
    "from_address": "sender_address",
    "from_phone": "sender_phone",
    "subject": "subject",
    "note": "note",
}
_COVER_TRIGGERS = ("to", "to_fax", "to_company", "to_address", "subject", "note")


class UsageError(FaxError):
    """The command line asks for something impossible (exit status 2)."""


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="fastfax", description="Fax documents: convert to and from fax pages."
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    conv = sub.add_parser("convert", help="convert documents to fax files (or faxes to PDF/PNG)")
    conv.add_argument("inputs", nargs="+", metavar="INPUT", help="files or directories")
    conv.add_argument("-o", "--output", required=True, help="output file or directory")
    conv.add_argument("--format", choices=sorted(_EXT), help="default: from OUTPUT, else tiff")
    conv.add_argument("--resolution", choices=list(RESOLUTIONS), default="fine")
    conv.add_argument("--page-size", choices=list(PAPER_SIZES), default="a4")
    conv.add_argument("--width", type=int, help="scan-line width in pixels (a fax width)")
    conv.add_argument("--compression", choices=("g4", "g3", "g3-2d"), default="g4")
    conv.add_argument("--mode", choices=list(MODES), default="text")
    conv.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, help="text mode, 1-255")
    conv.add_argument("--jobs", "-j", type=int, help="worker processes (default: every core)")
    conv.add_argument("--password", help="password of encrypted PDFs")
    conv.add_argument(
        "--header",
        metavar="TEXT",
        help="header line on every page: the sender identity, or a template with "
        "{date} {time} {sender} {fax} {recipient} {page} {pages}",
    )
    cover = conv.add_argument_group("cover page (any of these adds one)")
    cover.add_argument("--cover", action="store_true", help="add a cover page")
    cover.add_argument("--cover-template", metavar="JSON", help="cover template file")
    cover.add_argument("--to", help="recipient name")
    cover.add_argument("--to-fax")
    cover.add_argument("--to-company")
    cover.add_argument("--to-address")
    cover.add_argument("--from", dest="sender_name", help="sender name")
    cover.add_argument("--from-fax", help="sender fax number (also in the header)")
    cover.add_argument("--from-company")
    cover.add_argument("--from-address")
    cover.add_argument("--from-phone")
    cover.add_argument("--subject")
    cover.add_argument("--note")
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")

    info = sub.add_parser("info", help="describe a fax or document file")
    info.add_argument("files", nargs="+", metavar="FILE")

    demo = sub.add_parser(
        "demo", help="make a sample PDF, convert it to a fax and back, fax it through the service"
    )
    demo.add_argument("folder", nargs="?", default="fastfax-demo", metavar="DIR")
    demo.add_argument("--jobs", "-j", type=int)

    sub.add_parser("serve", help="run the fax service daemon (fastfax serve --help)")
    return top


def _expand(inputs: Sequence[str]) -> tuple[list[str], bool]:
    files: list[str] = []
    had_folder = False
    for item in inputs:
        if os.path.isdir(item):
            had_folder = True
            names = sorted(n for n in os.listdir(item) if not n.startswith("."))
            files += [os.path.join(item, n) for n in names if os.path.isfile(os.path.join(item, n))]
        else:
            files.append(item)
    return files, had_folder


def _targets(files: list[str], output: str, fmt: str | None, to_folder: bool) -> list[str]:
    if not to_folder:
        return [output]
    ext = _EXT[fmt or "tiff"]
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    names = [
        (os.path.basename(f) if stems.count(s) > 1 else s) + ext
        for f, s in zip(files, stems, strict=True)
    ]
    return [os.path.join(output, n) for n in names]


def _options(args: argparse.Namespace) -> Options:
    cover = None
    if args.cover or args.cover_template or any(getattr(args, k) for k in _COVER_TRIGGERS):
        values = {field: getattr(args, arg) or "" for arg, field in _COVER_FIELDS.items()}
        cover = CoverInfo(**values)
    header = args.header
    sender = ""
    if header is not None and "{" not in header:
        sender, header = header, DEFAULT_HEADER
    try:
        layout_for(args.page_size, args.resolution, args.width)
    except ConvertError as exc:
        raise UsageError(str(exc)) from None
    if not 1 <= args.threshold <= 255:
        raise UsageError(f"--threshold must be from 1 to 255, got {args.threshold}")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    return Options(
        page_size=args.page_size,
        resolution=args.resolution,
        width=args.width,
        mode=args.mode,
        threshold=args.threshold,
        header=header,
        sender=sender,
        sender_fax=args.from_fax or "",
        recipient=args.to or args.to_fax or "",
        cover=cover,
        cover_template=args.cover_template,
        password=args.password,
    )


class _Progress:
    """A one-line progress bar on a terminal: pages done of known, pages per second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.start = time.perf_counter()
        self.shown = 0.0

    def __call__(self, done: int, known: int) -> None:
        now = time.perf_counter()
        if now - self.shown < 0.1 and done < known:
            return
        self.shown = now
        rate = done / max(now - self.start, 1e-6)
        filled = 30 * done // max(known, 1)
        bar = "#" * filled + "." * (30 - filled)
        self.stream.write(f"\r[{bar}] {done}/{known} pages  {rate:6.1f} pages/s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")


def _convert(args: argparse.Namespace) -> int:
    options = _options(args)
    files, had_folder = _expand(args.inputs)
    if not files:
        raise UsageError("no input files")
    fmt = args.format
    out = args.output
    to_folder = had_folder or len(files) > 1 or os.path.isdir(out) or out.endswith(os.sep)
    if not to_folder and fmt is None:
        fmt = FORMATS.get(os.path.splitext(out)[1].lower())
        if fmt is None:
            raise UsageError(f"cannot tell the format from {out!r}: use .tif, .pdf, .png, .pbm")
    if to_folder:
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the output folder {out!r}: {exc.strerror}") from None
    targets = _targets(files, out, fmt, to_folder)
    show = not args.quiet and sys.stderr.isatty()
    bar = _Progress(sys.stderr) if show else None
    start = time.perf_counter()
    results = convert(
        zip(files, targets, strict=True),
        options,
        fmt=fmt,  # type: ignore[arg-type]
        compression=args.compression,
        processes=args.jobs,
        progress=bar,
    )
    if bar:
        bar.close()
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"fastfax: {r.error}", file=sys.stderr)
    if show:
        pages = sum(r.pages for r in results)
        seconds = time.perf_counter() - start
        print(
            f"{len(results) - len(failed)} of {len(results)} files, {pages} pages in "
            f"{seconds:.2f} s ({pages / max(seconds, 1e-6):.1f} pages/s)",
            file=sys.stderr,
        )
    return 1 if failed else 0


def describe(path: str) -> list[tuple[str, str]]:
    """What ``fastfax info`` prints for one file, as (key, value) pairs."""
    from PIL import Image

    from .document.render import open_source

    src = open_source(path)
    try:
        rows = [("file", path), ("kind", src.kind), ("pages", str(src.pages))]
        if src.kind == "pdf":
            import pypdfium2 as pdfium

            doc = pdfium.PdfDocument(path)
            for n in range(len(doc)):
                w, h = doc[n].get_size()
                rows.append(
                    (
                        f"page {n + 1}",
                        f"{w:.0f} x {h:.0f} pt ({w / 72 * 25.4:.0f} x {h / 72 * 25.4:.0f} mm)",
                    )
                )
            doc.close()
        elif src.kind == "image":
            with Image.open(path) as img:
                rows.insert(2, ("format", str(img.format)))
                for n in range(getattr(img, "n_frames", 1)):
                    img.seek(n)
                    dpi = img.info.get("dpi")
                    res = f" at {float(dpi[0]):g} x {float(dpi[1]):g} dpi" if dpi else ""
                    comp = img.info.get("compression")
                    comp = f", {comp}" if comp else ""
                    rows.append(
                        (
                            f"page {n + 1}",
                            f"{img.width} x {img.height} px{res}, mode {img.mode}{comp}",
                        )
                    )
        else:
            rows.append(("layout", "monospaced 10 pt on A4"))
    finally:
        src.close()
    return rows


def _info(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            rows = describe(path)
        except FaxError as exc:
            print(f"fastfax: {exc}", file=sys.stderr)
            status = 1
            continue
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value}")
    return status


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    start = time.perf_counter()
    for line in run_demo(args.folder, jobs=args.jobs):
        print(line)
    print(f"done in {time.perf_counter() - start:.1f} s; open {args.folder} to look")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 some input failed, 2 usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from .service.http import serve_main

        return serve_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "convert":
            return _convert(args)
        if args.command == "info":
            return _info(args)
        return _demo(args)
    except UsageError as exc:
        print(f"fastfax: error: {exc}", file=sys.stderr)
        return 2
    except FaxError as exc:
        print(f"fastfax: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
