"""Build and drive ``faxline``, the simulated telephone line in ``faxline.c``.

``faxline`` is a C program linking Debian's libspandsp.  Side A is an emulated Class 1
fax modem (SpanDSP T.31) on a pseudo-terminal, or (``a_send``) a SpanDSP audio fax
terminal that calls and sends a TIFF file; side B is a SpanDSP audio fax terminal that
sends or receives a TIFF file, a second emulated modem on a second pseudo-terminal, or a
telephone a person answers (``voice``).  The process is driven as every C peer is
(:class:`peer_process.PeerProcess`).  See README.md in this directory for the command
line and protocol.

Typical use::

    with FaxLine(receive=tmp_path / "rx.tif", speed=4) as line:
        run_my_dte(line.port_a)          # dial, send a page, hang up
        result = line.wait(timeout=60)   # the RESULT line, as a dict
    assert result["terminal"]["ok"]

The binary is compiled on first use into a cache directory keyed by the source's hash
(``$XDG_CACHE_HOME/fastfax-peers`` or ``~/.cache/fastfax-peers``), never into git.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from peer_process import PeerError, PeerProcess, PeerUnavailable, build_program  # noqa: E402

__all__ = ["FaxLine", "PeerError", "PeerUnavailable", "SOURCE", "build", "build_program"]

SOURCE = Path(__file__).with_name("faxline.c")


def build() -> Path:
    """Compile ``faxline.c`` (see :func:`build_program`) and return the binary's path."""
    return build_program(SOURCE)


def _list(values: list[str] | None) -> str | None:
    return None if values is None else ",".join(values)


class FaxLine(PeerProcess):
    """A running ``faxline`` process: one simulated call on one simulated line.

    Side B is a SpanDSP fax terminal when ``send`` or ``receive`` is given (a TIFF path),
    a telephone a person answers when ``voice`` (off hook ``answer_delay_ms`` after A
    dials, then speech-band sound and never a fax tone; with ``calling``, the person
    calls modem A once, and talks once A's DTE answers), otherwise a second emulated
    modem (``port_b``). Side A is an emulated modem
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

    name = "faxline"

    def __init__(
        self,
        *,
        send: str | os.PathLike[str] | None = None,
        receive: str | os.PathLike[str] | None = None,
        calling: bool = False,
        a_send: str | os.PathLike[str] | None = None,
        voice: bool = False,
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
        if voice and (send is not None or receive is not None):
            raise ValueError("side B is a telephone (voice) or a fax terminal, not both")
        args: list[str] = []
        terminal = send is not None or receive is not None
        if terminal:
            args += ["--send", os.fspath(send)] if send is not None else []
            args += ["--receive", os.fspath(receive)] if receive is not None else []
            args += ["--calling"] if calling else []
            args += ["--a-send", os.fspath(a_send)] if a_send is not None else []
        else:
            args += ["--peer", "voice" if voice else "modem"]
            args += ["--calling"] if voice and calling else []
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
        super().__init__(args, timeout, log_path)
        self.terminal = terminal
        self.port_a: str = ""
        self.port_b: str | None = None

    def binary(self) -> Path:
        return build()

    def ready_line(self, line: str) -> None:
        """``PTY A path`` and ``PTY B path``: where the emulated modems are."""
        if line.startswith("PTY A "):
            self.port_a = line[6:]
        elif line.startswith("PTY B "):
            self.port_b = line[6:]
