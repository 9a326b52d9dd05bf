"""Build and drive ``faxline``, the simulated telephone line in ``faxline.c``.

``faxline`` is a C program linking Debian's libspandsp.  Side A is an emulated Class 1
fax modem (SpanDSP T.31) on a pseudo-terminal, or (``a_send``) a SpanDSP audio fax
terminal that calls and sends a TIFF file; side B is either a SpanDSP audio fax terminal
that sends or receives a TIFF file, or a second emulated modem on a second
pseudo-terminal.  See README.md in this directory for the command line and protocol.

Typical use::

    with FaxLine(receive=tmp_path / "rx.tif", speed=4) as line:
        run_my_dte(line.port_a)          # dial, send a page, hang up
        result = line.wait(timeout=60)   # the RESULT line, as a dict
    assert result["terminal"]["ok"]

The binary is compiled on first use into a cache directory keyed by the source's hash
(``$XDG_CACHE_HOME/fastfax-peers`` or ``~/.cache/fastfax-peers``), never into git.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("faxline.c")


class PeerUnavailable(RuntimeError):
    """The peer cannot be built here (no gcc, or no libspandsp development files)."""


class PeerError(RuntimeError):
    """The peer did not start, or did not finish in time."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastfax-peers"


def build_program(source: Path) -> Path:
    """Compile the C peer ``source`` (linking libspandsp) once per source version, into the
    cache directory as ``<stem>-<sha256 prefix>``, and return the binary's path.

    Raises PeerUnavailable when gcc or pkg-config's ``spandsp`` package is missing, and
    PeerError when the compiler fails.
    """
    name = source.stem
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = _cache_dir() / f"{name}-{digest}"
    if target.exists():
        return target
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        raise PeerUnavailable(f"gcc and pkg-config are needed to build the {name} peer")
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "spandsp"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if flags.returncode != 0:
        raise PeerUnavailable("libspandsp development files not found (apt install libspandsp-dev)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}-")
    os.close(fd)
    try:
        cc = subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", tmp, str(source), *flags.stdout.split(), "-lm"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if cc.returncode != 0:
            raise PeerError(f"gcc failed to build {name}:\n{cc.stderr}")
        os.replace(tmp, target)  # atomic: concurrent builders never see a partial binary
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def build() -> Path:
    """Compile ``faxline.c`` (see :func:`build_program`) and return the binary's path."""
    return build_program(SOURCE)


def _list(values: list[str] | None) -> str | None:
    return None if values is None else ",".join(values)


class FaxLine:
    """A running ``faxline`` process: one simulated call on one simulated line.

    Side B is a SpanDSP fax terminal when ``send`` or ``receive`` is given (a TIFF path),
    otherwise a second emulated modem (``port_b``). Side A is an emulated modem
    (``port_a``) unless ``a_send`` names a TIFF: then it is a SpanDSP fax terminal that
    dials at once and sends it to side B's terminal, which must ``receive`` (no ports;
    the same line, terminal options and timing, so SpanDSP -> SpanDSP can be timed
    against a DTE -> SpanDSP call).

    Terminal options: ``send``/``receive`` (TIFF-F path), ``calling`` (the terminal dials
    modem A, which then rings its DTE; by default the DTE dials and the terminal answers),
    ``ecm``, ``ident`` (local ident, CSI/TSI), ``header`` (page header text the terminal
    adds when sending), ``modems`` (subset of ``["v27", "v29", "v17"]``), ``resolutions``
    (of ``["standard", "fine", "superfine"]``), ``compressions`` (of ``["mh", "mr", "mmr"]``).

    Line options: ``speed`` (1 = real time; N = N times real time; 0 = unpaced; time
    always runs at real time while a DTE has the turn), ``delay_ms`` (one-way line delay),
    ``noise_dbm0`` (white noise level added under each side's signal, e.g. -30), ``seed``
    (noise seed; one seed, one noise for calls that take the same course), ``timeout``
    (wall seconds after which the peer gives up), ``linger`` (wall seconds of DTE
    silence after the call before the peer exits), ``max_rings``,
    ``ring_interval_ms``, ``answer_delay_ms``, ``trace`` (log every byte to and from
    the DTEs), ``log_level`` (SpanDSP's, 0-10; 5 = flow).
    """

    def __init__(
        self,
        *,
        send: str | os.PathLike[str] | None = None,
        receive: str | os.PathLike[str] | None = None,
        calling: bool = False,
        a_send: str | os.PathLike[str] | None = None,
        ecm: bool = True,
        ident: str = "FAXLINE",
        header: str | None = None,
        modems: list[str] | None = None,
        resolutions: list[str] | None = None,
        compressions: list[str] | None = None,
        speed: float = 0.0,
        delay_ms: int = 30,
        noise_dbm0: float | None = None,
        seed: int | None = None,
        timeout: float = 120.0,
        linger: float | None = None,
        max_rings: int | None = None,
        ring_interval_ms: int | None = None,
        answer_delay_ms: int | None = None,
        trace: bool = False,
        log_level: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if send is not None and receive is not None:
            raise ValueError("give send or receive, not both")
        if a_send is not None and (receive is None or calling):
            raise ValueError("a_send needs a receiving, answering terminal on side B")
        args: list[str] = []
        terminal = send is not None or receive is not None
        if terminal:
            args += ["--send", os.fspath(send)] if send is not None else []
            args += ["--receive", os.fspath(receive)] if receive is not None else []
            args += ["--calling"] if calling else []
            args += ["--a-send", os.fspath(a_send)] if a_send is not None else []
        else:
            args += ["--peer", "modem"]
        options: dict[str, Any] = {
            "--ecm": int(ecm),
            "--ident": ident,
            "--header": header,
            "--modems": _list(modems),
            "--resolutions": _list(resolutions),
            "--compressions": _list(compressions),
            "--speed": speed,
            "--delay": delay_ms,
            "--noise": noise_dbm0,
            "--seed": seed,
            "--timeout": timeout,
            "--linger": linger,
            "--max-rings": max_rings,
            "--ring-interval": ring_interval_ms,
            "--answer-delay": answer_delay_ms,
            "--log-level": log_level,
        }
        for name, value in options.items():
            if value is not None:
                args += [name, str(value)]
        if trace:
            args.append("--trace")
        self.terminal = terminal
        self.args = args
        self.timeout = timeout
        self.port_a: str = ""
        self.port_b: str | None = None
        self.result: dict[str, Any] | None = None
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = b""  # stdout read past the READY line

    def start(self, ready_timeout: float = 10.0) -> FaxLine:
        """Start the peer and wait until its pseudo-terminals are ready."""
        binary = build()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="faxline-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [str(binary), *self.args], stdout=subprocess.PIPE, stderr=log
            )
        deadline = time.monotonic() + ready_timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                self.stop()
                raise PeerError(f"faxline did not become ready:\n{self.log()[-2000:]}")
            if line.startswith("PTY A "):
                self.port_a = line[6:]
            elif line.startswith("PTY B "):
                self.port_b = line[6:]
            elif line == "READY":
                return self

    def _readline(self, deadline: float) -> str | None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the peer to finish the call; return its RESULT line as a dict.

        The peer exits by itself once the call is over and the DTEs have been quiet for
        ``linger`` seconds, or after its own ``timeout``.  Raises PeerError (after
        killing it) if it is still running after ``timeout`` seconds here (default: the
        peer's own timeout plus 10 s).
        """
        assert self._proc is not None, "start() first"
        limit = self.timeout + 10.0 if timeout is None else timeout
        try:
            out, _ = self._proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PeerError(f"faxline still running after {limit} s") from None
        self.result = self._parse(self._pending + out)
        return self.result

    def stop(self) -> dict[str, Any] | None:
        """End the peer now (SIGTERM, then SIGKILL); return its RESULT if it printed one."""
        proc = self._proc
        if proc is None:
            return self.result
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate(timeout=5)
        if self.result is None and out:
            self.result = self._parse(self._pending + out)
        return self.result

    @staticmethod
    def _parse(out: bytes) -> dict[str, Any]:
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        raise PeerError("faxline printed no RESULT line")

    def log(self) -> str:
        """The peer's log so far: SpanDSP's T.30/T.31 logs and, with trace, DTE traffic."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Stop the peer and remove its log file if this object created it."""
        self.stop()
        if self._own_log and self.log_path is not None and self.log_path.exists():
            self.log_path.unlink()

    def __enter__(self) -> FaxLine:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()
