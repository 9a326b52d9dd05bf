"""Run SIPp (Debian package ``sip-tester``) with one of the scenarios in ``sipp/``.

``Sipp(scenario, workdir, keys=..., sets=..., remote=...)`` starts ``sipp`` for one call
on a free UDP port of 127.0.0.1 (``.port``), writing its message and error traces into
``workdir``; ``fill`` replaces ``{{name}}`` in the scenario before SIPp loads it (for
what SIPp fixes at load time, such as a response's status); :meth:`Sipp.wait` returns
the exit status (0: the scenario ran to its end, every expected message arrived) and
:meth:`Sipp.messages` the traced messages.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

SCENARIOS = Path(__file__).with_name("sipp")


def available() -> bool:
    return shutil.which("sipp") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sipp:
    def __init__(self, scenario: str, workdir: Path, *, keys: dict[str, object] | None = None,
                 sets: dict[str, object] | None = None, remote: tuple[str, int] | None = None,
                 service: str = "fax", calls: int = 1, rate: float | None = None,
                 limit: int | None = None, timeout: float = 60.0,
                 extra: list[str] | None = None, fill: dict[str, object] | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        # a name in sipp/, or the path of a scenario file
        self.scenario = Path(scenario) if scenario.endswith(".xml") else \
            SCENARIOS / f"{scenario}.xml"
        if fill:  # values SIPp reads when it loads the scenario (a response's status code)
            text = self.scenario.read_text()
            for name, value in fill.items():
                text = text.replace(f"{{{{{name}}}}}", str(value))
            self.scenario = workdir / self.scenario.name
            self.scenario.write_text(text)
        args = ["sipp", "-sf", str(self.scenario), "-i", "127.0.0.1", "-p", str(self.port),
                "-m", str(calls), "-nostdin", "-timeout", f"{timeout:g}", "-timeout_error",
                "-trace_err", "-trace_msg", "-s", service, "-max_recv_loops", "10000"]
        for name, value in (keys or {}).items():
            args += ["-key", name, str(value)]
        for name, value in (sets or {}).items():
            args += ["-set", name, str(value)]
        if rate is not None:
            args += ["-r", f"{rate:g}"]
        if limit is not None:
            args += ["-l", str(limit)]
        args += extra or []
        if remote is not None:
            args.append(f"{remote[0]}:{remote[1]}")
        self.args = args
        self.stderr = workdir / f"sipp-{self.port}.stderr"
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL,
                                         stderr=err)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def errors(self) -> str:
        text = "".join(p.read_text(errors="replace")
                       for p in self.workdir.glob(f"{self.scenario.stem}_*_errors.log"))
        return self.stderr.read_text(errors="replace") + text

    def messages(self) -> str:
        return "".join(p.read_text(errors="replace")
                       for p in self.workdir.glob(f"{self.scenario.stem}_*_messages.log"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
