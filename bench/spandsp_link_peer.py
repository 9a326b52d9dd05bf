"""SpanDSP as the anchor of the link-layer benchmarks.

The HDLC and FCS anchors are the C peer of the interop tests (``tests/peers/
spandsp_link.c``), which times SpanDSP's ``hdlc_tx_get`` / ``hdlc_rx_put`` /
``crc_itu16_calc`` / ``crc_itu32_calc`` itself in CPU time, so no Python overhead counts
against SpanDSP. Bit reversal goes through ctypes to SpanDSP's bulk ``bit_reverse``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PEER = Path(__file__).resolve().parent.parent / "tests" / "peers" / "spandsp_link.py"
NAME = "fastfax_bench_spandsp_link"


def peer_module() -> ModuleType:
    """``tests/peers/spandsp_link.py``, imported once under a private name."""
    if NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(NAME, PEER)
        module = importlib.util.module_from_spec(spec)
        sys.modules[NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[NAME]


def libspandsp() -> ctypes.CDLL:
    """libspandsp.so through ctypes; OSError when it is not installed."""
    name = ctypes.util.find_library("spandsp")
    if name is None:
        raise OSError("libspandsp is not installed")
    lib = ctypes.CDLL(name)
    lib.bit_reverse.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    lib.bit_reverse.restype = None
    return lib


def bit_reverse(lib: ctypes.CDLL, data: bytes) -> bytes:
    """SpanDSP's bit_reverse of ``data`` (every byte's bit order reversed)."""
    out = ctypes.create_string_buffer(len(data))
    lib.bit_reverse(out, data, len(data))
    return out.raw
