"""Build and drive ``t38peer``, the SpanDSP T.38 endpoint in ``t38peer.c``.

``t38peer`` is a C program linking Debian's libspandsp.  It runs a SpanDSP
``t38_terminal`` that sends or receives a TIFF-F file, or (``gateway=True``) a SpanDSP
``t38_gateway`` joined in-process by audio to a SpanDSP fax terminal: a G3 fax machine
behind a T.38 gateway.  IFP packets travel in UDPTL over a real UDP socket on 127.0.0.1
(the UDPTL code is the program's own: redundancy or parity FEC, duplicates dropped,
reordering within a few packets absorbed).  See README.md in this directory.

Typical use::

    with T38Peer(receive=tmp_path / "rx.tif", speed=8) as rx:
        with T38Peer(send=page, calling=True, remote=("127.0.0.1", rx.port), speed=8) as tx:
            sent = tx.wait(timeout=60)
        received = rx.wait(timeout=60)
    assert sent["ok"] and received["ok"] and received["pages"] == 1

The binary is compiled on first use into a cache directory keyed by the source's hash
(``$XDG_CACHE_HOME/fastfax-peers`` or ``~/.cache/fastfax-peers``), never into git.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from faxline import PeerError, PeerUnavailable, build_program  # noqa: E402

__all__ = ["PeerError", "PeerUnavailable", "SOURCE", "T38Peer", "build"]

SOURCE = Path(__file__).with_name("t38peer.c")


def build() -> Path:
    """Compile ``t38peer.c`` (once per source version, as :func:`faxline.build_program`
    does) and return the binary's path."""
    return build_program(SOURCE)


def _list(values: list[str] | None) -> str | None:
    return None if values is None else ",".join(values)


class T38Peer:
    """A running ``t38peer`` process: one T.38 endpoint (or, with ``pairs``, many).

    Endpoint: ``send`` or ``receive`` (a TIFF-F path), ``calling`` (originates the call:
    sends CNG, waits for DIS), ``gateway`` (a SpanDSP T.38 gateway fronting an audio fax
    terminal instead of a T.38 terminal).

    Network: ``local_port`` (0 = any; learn it from :attr:`port` after :meth:`start`),
    ``local_host`` (default 127.0.0.1), ``remote`` (``(host, port)`` or ``"host:port"``;
    without it the peer waits, its clock stopped, for the first well-formed UDPTL packet
    and answers its sender), ``pcap`` (write every datagram sent and received as IPv4/UDP
    to this pcap file).

    T.38/UDPTL: ``version`` (0-3: T.38 version and IFP field encoding), ``ec``
    (``"none"``, ``"redundancy"`` or ``"fec"``), ``redundancy`` (secondary IFP packets per
    datagram, default 3), ``fec_span``/``fec_entries`` (default 3/3),
    ``rate_management`` (2 = transferred TCF, default; 1 = local TCF, a sending
    terminal only), ``fill_bit_removal``, ``max_bitrate`` (2400-14400).

    T.30: ``ecm``, ``compressions`` (of ``["mh", "mr", "mmr"]``), ``resolutions`` (of
    ``["standard", "fine", "superfine"]``), ``ident``.

    Test knobs: ``loss`` (probability that an outgoing datagram is dropped), ``reorder``
    (probability that one is held back behind the next), ``seed`` (for both).

    Run: ``speed`` (SpanDSP's clock runs this many times faster than real time; the far
    end must use the same), ``timeout`` (wall seconds before the peer gives up),
    ``linger`` (wall seconds it stays after its call ended), ``log_level`` (SpanDSP's,
    0-10; 5 = flow), ``log_path`` (stderr goes here; a temporary file by default).

    Benchmark: ``pairs=N`` with ``send`` runs N sender/receiver t38_terminal pairs in
    one process (``receive`` may name a directory to keep the received files in); the
    RESULT then has ``pages_ok``, ``wall_seconds`` and ``cpu_seconds``.
    """

    def __init__(
        self,
        *,
        send: str | os.PathLike[str] | None = None,
        receive: str | os.PathLike[str] | None = None,
        calling: bool = False,
        gateway: bool = False,
        local_port: int = 0,
        local_host: str = "127.0.0.1",
        remote: tuple[str, int] | str | None = None,
        ecm: bool = True,
        version: int = 0,
        ec: str = "redundancy",
        redundancy: int | None = None,
        fec_span: int | None = None,
        fec_entries: int | None = None,
        rate_management: int | None = None,
        fill_bit_removal: bool | None = None,
        max_bitrate: int | None = None,
        compressions: list[str] | None = None,
        resolutions: list[str] | None = None,
        ident: str | None = None,
        speed: float = 1.0,
        timeout: float = 120.0,
        linger: float | None = None,
        log_level: int | None = None,
        pcap: str | os.PathLike[str] | None = None,
        loss: float | None = None,
        reorder: float | None = None,
        seed: int | None = None,
        pairs: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if pairs is None and (send is None) == (receive is None):
            raise ValueError("give send or receive (one of them)")
        if pairs is not None and send is None:
            raise ValueError("pairs needs send")
        if isinstance(remote, tuple):
            remote = f"{remote[0]}:{remote[1]}"
        args: list[str] = []
        args += ["--send", os.fspath(send)] if send is not None else []
        args += ["--receive", os.fspath(receive)] if receive is not None else []
        args += ["--calling"] if calling else []
        args += ["--gateway"] if gateway else []
        options: dict[str, Any] = {
            "--pairs": pairs,
            "--local": None if pairs is not None else f"{local_host}:{local_port}",
            "--remote": remote,
            "--ecm": int(ecm),
            "--version": version,
            "--ec": ec,
            "--redundancy": redundancy,
            "--fec-span": fec_span,
            "--fec-entries": fec_entries,
            "--rate-management": rate_management,
            "--fill-bit-removal": None if fill_bit_removal is None else int(fill_bit_removal),
            "--max-bitrate": max_bitrate,
            "--compressions": _list(compressions),
            "--resolutions": _list(resolutions),
            "--ident": ident,
            "--speed": speed,
            "--timeout": timeout,
            "--linger": linger,
            "--log-level": log_level,
            "--pcap": None if pcap is None else os.fspath(pcap),
            "--loss": loss,
            "--reorder": reorder,
            "--seed": seed,
        }
        for name, value in options.items():
            if value is not None:
                args += [name, str(value)]
        self.args = args
        self.timeout = timeout
        self.port: int = 0
        self.result: dict[str, Any] | None = None
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = b""  # stdout read past the READY line

    @property
    def address(self) -> tuple[str, int]:
        """Where this peer listens: ``("127.0.0.1", port)``."""
        return ("127.0.0.1", self.port)

    def start(self, ready_timeout: float = 10.0) -> T38Peer:
        """Start the peer; return once it printed its port (``.port``) and READY."""
        binary = build()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="t38peer-", suffix=".log")
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
                raise PeerError(f"t38peer did not become ready:\n{self.log()[-2000:]}")
            if line.startswith("PORT "):
                self.port = int(line[5:])
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
        """Wait for the peer to finish by itself; return its RESULT line as a dict.

        The peer exits once its call is over (plus ``linger``) or after its own
        ``timeout``.  Raises PeerError (after killing it) if it is still running after
        ``timeout`` seconds here (default: the peer's own timeout plus 10 s).
        """
        assert self._proc is not None, "start() first"
        limit = self.timeout + 10.0 if timeout is None else timeout
        try:
            out, _ = self._proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PeerError(f"t38peer still running after {limit} s") from None
        self.result = self._parse(self._pending + out)
        return self.result

    @property
    def returncode(self) -> int | None:
        """The process's exit status, once it has exited."""
        return None if self._proc is None else self._proc.poll()

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
        if self.result is None and (self._pending or out):
            try:
                self.result = self._parse(self._pending + out)
            except PeerError:
                pass
        return self.result

    @staticmethod
    def _parse(out: bytes) -> dict[str, Any]:
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        raise PeerError("t38peer printed no RESULT line")

    def log(self) -> str:
        """The peer's log so far: SpanDSP's T.30/T.38 logs and the peer's own lines."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Stop the peer and remove its log file if this object created it."""
        self.stop()
        if self._own_log and self.log_path is not None and self.log_path.exists():
            self.log_path.unlink()

    def __enter__(self) -> T38Peer:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()
