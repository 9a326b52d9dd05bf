"""What the drivers of the C test peers share: building a peer, and running one as a child
process that prints its set-up lines, ``READY`` and at exit one ``RESULT {json}`` line on
stdout, and logs to stderr (see README.md in this directory).

:func:`build_program` compiles a peer's C source (linking libspandsp) once per source
version into a cache directory; :class:`PeerProcess` starts the binary, waits for
``READY``, and waits for, or stops, the process and reads its RESULT.  ``faxline.py`` and
``t38peer.py`` extend it with their own options and set-up lines.
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
from typing import Any, Self

__all__ = ["PeerError", "PeerProcess", "PeerUnavailable", "build_program"]


class PeerUnavailable(RuntimeError):
    """The peer cannot be built here (no gcc, or no libspandsp development files)."""


class PeerError(RuntimeError):
    """The peer did not start, or did not finish in time."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastfax-peers"


def build_program(source: Path) -> Path:
    """Compile the C peer ``source`` (linking libspandsp) once per source version, into the
    cache directory as ``<stem>-<sha256 prefix>``, and return the binary's path.  The hash
    covers the headers of this directory that the source includes (``#include "x.h"``).

    Raises PeerUnavailable when gcc or pkg-config's ``spandsp`` package is missing, and
    PeerError when the compiler fails.
    """
    name = source.stem
    text = source.read_bytes()
    digest = hashlib.sha256(text)
    for line in text.splitlines():
        header = line.strip()
        if header.startswith(b'#include "') and header.endswith(b'"'):
            local = source.with_name(header[10:-1].decode())
            if local.exists():
                digest.update(local.read_bytes())
    target = _cache_dir() / f"{name}-{digest.hexdigest()[:16]}"
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


class PeerProcess:
    """One run of a C peer: ``args`` (its command line after the binary), ``timeout``
    (the peer's own, in wall seconds: :meth:`wait` allows 10 s more by default),
    ``log_path`` (its stderr; a temporary file, removed at :meth:`close`, by default).

    A subclass names the peer (:attr:`name`), builds its binary (:meth:`binary`) and
    takes the lines it prints before ``READY`` (:meth:`ready_line`).  Nothing runs until
    :meth:`start` or ``with``; leaving the ``with`` block always stops the process.
    """

    #: The peer's name, in messages and temporary file names.
    name = "peer"

    def __init__(
        self, args: list[str], timeout: float, log_path: str | os.PathLike[str] | None
    ) -> None:
        self.args = args
        self.timeout = timeout
        self.result: dict[str, Any] | None = None
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = b""  # stdout read past the READY line

    def binary(self) -> Path:
        """The peer's binary, built if need be."""
        raise NotImplementedError

    def ready_line(self, line: str) -> None:
        """Take one line the peer printed before ``READY`` (e.g. where it listens)."""

    def start(self, ready_timeout: float = 10.0) -> Self:
        """Start the peer; return once it printed ``READY``."""
        binary = self.binary()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
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
                raise PeerError(f"{self.name} did not become ready:\n{self.log()[-2000:]}")
            if line == "READY":
                return self
            self.ready_line(line)

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
        """Wait for the peer to exit by itself; return its RESULT line as a dict.

        Raises PeerError (after killing it) if it is still running after ``timeout``
        seconds (default: the peer's own timeout plus 10 s), or printed no RESULT.
        """
        assert self._proc is not None, "start() first"
        limit = self.timeout + 10.0 if timeout is None else timeout
        try:
            out, _ = self._proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PeerError(f"{self.name} still running after {limit} s") from None
        self.result = self._parse(self._pending + out)
        return self.result

    @property
    def returncode(self) -> int | None:
        """The process's exit status, once it has exited."""
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> dict[str, Any] | None:
        """End the peer now (SIGTERM, then SIGKILL after 5 s); return its RESULT if it
        printed one."""
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

    def _parse(self, out: bytes) -> dict[str, Any]:
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        raise PeerError(f"{self.name} printed no RESULT line")

    def log(self) -> str:
        """The peer's log (its stderr) so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Stop the peer and remove its log file if this object created it."""
        self.stop()
        if self._own_log and self.log_path is not None and self.log_path.exists():
            self.log_path.unlink()

    def __enter__(self) -> Self:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()
