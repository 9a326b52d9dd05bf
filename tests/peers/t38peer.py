"""Build and drive ``t38peer``, the SpanDSP T.38 endpoint in ``t38peer.c``.

``t38peer`` is a C program linking Debian's libspandsp.  It runs a SpanDSP
``t38_terminal`` that sends or receives a TIFF-F file, or (``gateway=True``) a SpanDSP
``t38_gateway`` joined in-process by audio to a SpanDSP fax terminal: a G3 fax machine
behind a T.38 gateway.  IFP packets travel in UDPTL over a real UDP socket on 127.0.0.1
(the UDPTL code is the program's own: redundancy or parity FEC, duplicates dropped,
reordering within a few packets absorbed).  The process is driven as every C peer is
(:class:`peer_process.PeerProcess`).  See README.md in this directory.

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

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from peer_process import PeerError, PeerProcess, PeerUnavailable, build_program  # noqa: E402

__all__ = ["PeerError", "PeerUnavailable", "SOURCE", "T38Peer", "build"]

SOURCE = Path(__file__).with_name("t38peer.c")


def build() -> Path:
    """Compile ``t38peer.c`` (once per source version, see
    :func:`peer_process.build_program`) and return the binary's path."""
    return build_program(SOURCE)


def _list(values: list[str] | None) -> str | None:
    return None if values is None else ",".join(values)


class T38Peer(PeerProcess):
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

    name = "t38peer"

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
        super().__init__(args, timeout, log_path)
        self.port: int = 0

    @property
    def address(self) -> tuple[str, int]:
        """Where this peer listens: ``("127.0.0.1", port)``."""
        return ("127.0.0.1", self.port)

    def binary(self) -> Path:
        return build()

    def ready_line(self, line: str) -> None:
        """``PORT n``: the UDP port the peer listens on."""
        if line.startswith("PORT "):
            self.port = int(line[5:])
