"""What the ``fastfax`` command's modules share (:mod:`fastfax.cli` and
:mod:`fastfax.cli_service`): the service commands' names, the usage and time-out errors
that set the exit status, and the progress display."""

from __future__ import annotations

import sys
import time
from typing import Any

from .errors import FaxError

__all__ = ["SERVICE_COMMANDS", "LOG_EVERY", "UsageError", "WaitTimeout", "Progress"]

#: Seconds between progress lines when stderr is not a terminal (a log, a pipe).
LOG_EVERY = 10.0
#: The service commands (run by :mod:`fastfax.cli_service`) and their one-line help.
SERVICE_COMMANDS = {
    "send": "send documents as one fax to one or more numbers",
    "jobs": "list the fax queue (like faxstat -s); --all with finished jobs",
    "job": "show one job, or --cancel, --pause, --resume, --restart, --delete it",
    "ports": "list the lines (ports): kind, number, state, send / receive",
    "events": "follow the service's events, one a line, until Ctrl-C or --count N",
    "users": "add, remove or list the users of the service and their rights",
}


class UsageError(FaxError):
    """The command line asks for something impossible (exit status 2)."""


class WaitTimeout(FaxError, TimeoutError):
    """``--wait`` ran out of time (exit status 4)."""


class Progress:
    """Pages done of pages known, as the conversion reports them: a ``tqdm`` bar on a
    terminal; into a pipe or a log, a plain line every :data:`LOG_EVERY` seconds (none
    for a short run); nothing when ``quiet``."""

    def __init__(self, unit: str = "page", *, quiet: bool = False) -> None:
        self.unit = unit
        self.start = time.perf_counter()
        self.logged = self.start
        self.bar: Any = None
        self.terminal = not quiet and sys.stderr.isatty()
        self.quiet = quiet

    def __call__(self, done: int, known: int) -> None:
        if self.terminal:
            if self.bar is None:
                import shutil

                from tqdm import tqdm

                size = shutil.get_terminal_size()  # 80 x 24 when the terminal says 0 x 0
                self.bar = tqdm(
                    total=known,
                    unit=self.unit,
                    file=sys.stderr,
                    ncols=size.columns,
                    nrows=size.lines,
                    leave=False,
                    smoothing=0,  # the rate over the whole run
                )
            self.bar.total = known
            self.bar.update(done - self.bar.n)
        elif not self.quiet:
            now = time.perf_counter()
            if now - self.logged >= LOG_EVERY:
                self.logged = now
                rate = done / max(now - self.start, 1e-6)
                print(
                    f"fastfax: {done}/{known} {self.unit}s, {rate:.1f} {self.unit}s/s",
                    file=sys.stderr,
                    flush=True,
                )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
