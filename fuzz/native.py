"""Swapping in the coverage builds of fastfax's native extensions that ``fuzz/run.sh``
makes, and handing their edge counters to atheris's libFuzzer.

``FASTFAX_FUZZ_EXT`` lists ``module=path`` pairs (space separated); without it the
installed extensions are used (Python coverage only).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys


def _builds() -> list[tuple[str, str]]:
    pairs = os.environ.get("FASTFAX_FUZZ_EXT", "").split()
    return [tuple(pair.split("=", 1)) for pair in pairs]  # type: ignore[misc]


def load_instrumented() -> None:
    """Import each coverage build under its module name, before anything imports the
    installed one (call it inside ``atheris.instrument_imports``, first)."""
    import fastfax  # noqa: F401  (the parent packages must exist first)

    for module, path in _builds():
        parent = module.rsplit(".", 1)[0]
        importlib.import_module(parent)
        spec = importlib.util.spec_from_file_location(module, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[module] = loaded
        spec.loader.exec_module(loaded)


_registered = False


def register_native_counters() -> None:
    """Hand every build's edge counters to libFuzzer (once it is loaded, in Fuzz())."""
    global _registered
    if _registered or not _builds():
        return
    _registered = True
    with open("/proc/self/maps") as maps:
        cores = [line.split()[-1] for line in maps if "core_with_libfuzzer" in line]
    if not cores:
        print("fuzz: libFuzzer core not found; native coverage is off", file=sys.stderr)
        return
    core = ctypes.CDLL(cores[0])
    for _, path in _builds():
        ext = ctypes.CDLL(path)
        size = ctypes.c_ulong.in_dll(ext, "ff_cov_size").value
        counters = (ctypes.c_uint8 * size).in_dll(ext, "ff_cov_counters")
        start = ctypes.addressof(counters)
        core.__sanitizer_cov_8bit_counters_init(
            ctypes.c_void_p(start), ctypes.c_void_p(start + size)
        )
