"""The ``fastfax`` command.

Documents:

``fastfax convert INPUT... -o OUTPUT``
    documents (PDF, images, TIFF, text; directories of them) to fax files (TIFF-F,
    PDF, PNG, PBM), or received fax TIFFs to PDF / PNG for viewing. A progress bar on a
    terminal; a summary line on stderr at the end (also into a pipe) unless ``-q``.
``fastfax info FILE...``
    pages, size, resolution and compression of a fax or document file.
``fastfax demo [DIR]``
    make a sample PDF, walk it through conversion and back, and fax it through the
    embedded fax service over a loopback pair of lines.

The fax service (:mod:`fastfax.cli_service`), each on the embedded spool (default, or
``--spool DIR``) or a daemon (``--server URL --token-file FILE``):

``fastfax send FILE... --to NUMBER [--to NUMBER ...] [--cover ...] [--wait]``,
``fastfax jobs [--all]``, ``fastfax job ID [--cancel|--pause|--resume|--restart]``,
``fastfax ports``, ``fastfax events [--count N]``,
``fastfax users add NAME --rights R,R | remove NAME | list``, and
``fastfax serve [--config FILE] [--spool DIR] [--host H] [--port P]`` (the daemon).
Listing commands take ``--json`` (one JSON document; ``events``: one object a line).

Exit status (:data:`EXIT_STATUS`):

- 0: everything asked for was done;
- 1: an input or a job failed: a file that did not convert (each failure is reported
  on stderr naming the file and page), a fax that ended failed, cancelled or out of
  retries under ``send --wait``, a job or user that does not exist, a request the
  server refused (a bad number, a job in the wrong state);
- 2: usage: the command line is wrong;
- 3: the fax server cannot be reached, or refused the token or the right the call
  needs; also the embedded spool when a daemon holds it (use ``--server``);
- 4: ``send --wait --timeout S``: the time ran out before every job was final;
- 130: interrupted (Ctrl-C), except ``fastfax events``, for which Ctrl-C is the end.

Start-up is lazy: this module imports only the standard library (and the ``fastfax``
package itself); the conversion pipeline, PDFium, the service and ``tqdm`` are imported
by the command that needs them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .cli_common import SERVICE_COMMANDS, Progress, UsageError, WaitTimeout
from .errors import FaxError

__all__ = [
    "main",
    "describe",
    "exit_status",
    "Progress",
    "EXIT_STATUS",
    "SERVICE_COMMANDS",
    "UsageError",
    "WaitTimeout",
]

#: The exit statuses, as the module docstring and ``fastfax --help`` explain them.
EXIT_STATUS = {
    0: "everything asked for was done",
    1: "an input or a job failed (a file that did not convert, a fax that failed under "
    "--wait, a job or user that does not exist, a request the server refused)",
    2: "usage: the command line is wrong",
    3: "the fax server cannot be reached, or refused the token or the right needed "
    "(or a daemon holds the embedded spool: use --server)",
    4: "send --wait: --timeout ran out before every job was final",
    130: "interrupted (Ctrl-C); fastfax events ends with 0",
}

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
#: A single input of at most this many pages converts in this process: starting worker
#: processes (each opening the document again) costs more than it saves on short ones.
#: So does any single input while every core is busy (see :func:`_cores_busy`).
IN_PROCESS_PAGES = 24

_DOCUMENT_COMMANDS = {
    "convert": "convert documents to fax files (or faxes to PDF/PNG)",
    "info": "describe a fax or document file",
    "demo": "make a sample PDF, convert it to a fax and back, fax it through the service",
}
_SERVE_HELP = "run the fax service daemon (fastfax serve --help)"


# -- the parser ---------------------------------------------------------------------------


def _exit_epilog() -> str:
    lines = ["exit status:"]
    lines += [f"  {code:<4} {text}" for code, text in EXIT_STATUS.items()]
    return "\n".join(lines)


def _parser(command: str | None) -> argparse.ArgumentParser:
    """The parser: of ``command`` alone when it is one (so that a command neither builds
    the others' parsers nor imports what their options need: the conversion's tables, the
    service), else of every command (for the help and the error that list them)."""
    top = argparse.ArgumentParser(
        prog="fastfax",
        description="Fax documents: convert to and from fax pages; send and manage faxes "
        "through the embedded fax service or a fastfax daemon.",
        epilog=_exit_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    top.add_argument("--version", action="version", version=f"fastfax {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {**_DOCUMENT_COMMANDS, **SERVICE_COMMANDS, "serve": _SERVE_HELP}
    if command in helps:
        helps = {command: helps[command]}
    for name, text in helps.items():
        parser = sub.add_parser(
            name,
            help=text,
            description=text,
            epilog=_exit_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name != command:
            continue
        if name == "convert":
            _convert_arguments(parser)
        elif name == "info":
            parser.add_argument("files", nargs="+", metavar="FILE")
        elif name == "demo":
            parser.add_argument("folder", nargs="?", default="fastfax-demo", metavar="DIR")
            parser.add_argument("--jobs", "-j", type=int)
        elif name in SERVICE_COMMANDS:
            from . import cli_service

            cli_service.add_arguments(name, parser)
    return top


def _convert_arguments(conv: argparse.ArgumentParser) -> None:
    from .document.layout import PAPER_SIZES, RESOLUTIONS
    from .document.render import DEFAULT_THRESHOLD, MODES

    conv.add_argument("inputs", nargs="+", metavar="INPUT", help="files or directories")
    conv.add_argument("-o", "--output", required=True, help="output file or directory")
    conv.add_argument("--format", choices=sorted(_EXT), help="default: from OUTPUT, else tiff")
    conv.add_argument("--resolution", choices=list(RESOLUTIONS), default="fine")
    conv.add_argument("--page-size", choices=list(PAPER_SIZES), default="a4")
    conv.add_argument("--width", type=int, help="scan-line width in pixels (a fax width)")
    conv.add_argument("--compression", choices=("g4", "g3", "g3-2d"), default="g4")
    conv.add_argument("--mode", choices=list(MODES), default="text")
    conv.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, help="text mode, 1-255")
    conv.add_argument(
        "--jobs",
        "-j",
        type=int,
        help=f"worker processes (default: every core; one input of up to {IN_PROCESS_PAGES}"
        " pages, or any one input while every core is busy, converts in this process)",
    )
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
    conv.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar, progress lines or summary"
    )


# -- convert ------------------------------------------------------------------------------


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


def _options(args: argparse.Namespace) -> Any:
    from .document.branding import DEFAULT_HEADER
    from .document.convert import Options
    from .document.layout import layout_for
    from .errors import ConvertError

    cover = None
    if args.cover or args.cover_template or any(getattr(args, k) for k in _COVER_TRIGGERS):
        from .document.cover import CoverInfo  # Pillow: only for a cover page

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


def _cores_busy() -> bool:
    """Whether every core is already busy: the 1-minute load average is at least the
    number of cores (False where the system has no load average). Worker processes for
    one document then only share the cores the command's own process would have, and
    their start and hand-overs make it slower."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return load >= (os.cpu_count() or 1)


def _processes(args: argparse.Namespace, files: list[str]) -> int | None:
    """``--jobs``; else 1 for a single input of at most :data:`IN_PROCESS_PAGES` pages
    (counted without rendering) or while :func:`_cores_busy`, else None: a worker per
    core."""
    if args.jobs is not None:
        return args.jobs
    if len(files) != 1:
        return None
    if _cores_busy():
        return 1
    from .document.render import open_source

    try:
        source = open_source(files[0], password=args.password, decode=False)
    except (FaxError, OSError, TypeError):
        return None  # the conversion reports what is wrong with it
    try:
        return 1 if source.pages <= IN_PROCESS_PAGES else None
    finally:
        source.close()


def _convert(args: argparse.Namespace) -> int:
    from .document.convert import FORMATS, convert

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
    start = time.perf_counter()
    bar = Progress(quiet=args.quiet)
    try:
        results = convert(
            zip(files, targets, strict=True),
            options,
            fmt=fmt,  # type: ignore[arg-type]
            compression=args.compression,
            processes=_processes(args, files),
            progress=bar,
        )
    finally:
        bar.close()
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"fastfax: {r.error}", file=sys.stderr)
    if not args.quiet:
        pages = sum(r.pages for r in results)
        seconds = time.perf_counter() - start
        print(
            f"{len(results) - len(failed)} of {len(results)} files, {pages} pages in "
            f"{seconds:.2f} s ({pages / max(seconds, 1e-6):.1f} pages/s)",
            file=sys.stderr,
        )
    return 1 if failed else 0


# -- info, demo ---------------------------------------------------------------------------


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


# -- main ---------------------------------------------------------------------------------


def exit_status(exc: FaxError) -> int:
    """The exit status for an error that ended a command (see :data:`EXIT_STATUS`)."""
    if isinstance(exc, UsageError):
        return 2
    if isinstance(exc, TimeoutError):
        return 4
    if isinstance(exc, (ConnectionError, PermissionError)):
        return 3  # RemoteError; AuthenticationError and AccessDenied
    if type(exc).__name__ == "SpoolBusy":
        return 3
    return 1


def _end_process(status: int) -> int:
    """End the process at once with ``status``, its output flushed, skipping Python's
    shutdown (which tears down every module and object: 10-20 ms after a conversion,
    for nothing a finished conversion needs: its files are written and closed, its worker
    processes gone). Returns ``status`` if the output cannot be flushed (Python's own
    shutdown then reports it)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return status
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (see :data:`EXIT_STATUS`).

    With ``argv`` None (the program's own command line: the ``fastfax`` console script,
    ``python -m fastfax.cli``), ``convert`` ends the process when done instead of
    returning (see :func:`_end_process`)."""
    if argv is None and sys.argv[1:2] == ["convert"]:
        return _end_process(main(sys.argv[1:]))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from .service.http import serve_main

        return serve_main(argv[1:])
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = _parser(command).parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command == "convert":
            return _convert(args)
        if args.command == "info":
            return _info(args)
        if args.command == "demo":
            return _demo(args)
        from . import cli_service

        return cli_service.run(args)
    except FaxError as exc:
        status = exit_status(exc)
        prefix = "fastfax: error: " if status == 2 else "fastfax: "
        print(f"{prefix}{exc}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
