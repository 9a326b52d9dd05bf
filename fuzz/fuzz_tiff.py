"""atheris fuzz target for the TIFF reader, :func:`fastfax.tiff.loads`.

Run with ``fuzz/run.sh tiff SECONDS`` (see fuzz/README.md). The input is the file; the
first byte also picks the error mode. Only :class:`fastfax.errors.FaxError` may escape;
anything else is a finding. Pages that do load must survive a write -> read round trip.
An empty corpus directory is seeded with small valid files: ours in every compression,
and the same pages converted by libtiff's ``tiffcp`` (both fill orders) and by Pillow.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile

import atheris
import numpy as np
from native import load_instrumented, register_native_counters

with atheris.instrument_imports(include=["fastfax"]):
    import fastfax
    import fastfax.errors

    load_instrumented()
    from fastfax import tiff
    from fastfax.errors import FaxError

MAX_ROWS = 4000


def test_one_input(data: bytes) -> None:
    register_native_counters()
    if not data:
        return
    errors = (None, "strict", "repair")[data[0] % 3]
    try:
        pages = tiff.loads(data[1:], errors=errors, max_rows=MAX_ROWS)
    except FaxError:
        return
    for page in pages:
        assert page.height <= MAX_ROWS and len(page.data) == page.stride * page.height
    if pages:
        again = tiff.loads(tiff.dumps(pages, compression="g4"))
        assert [p.data for p in again] == [p.data for p in pages], "write -> read differs"


def _seed_pages() -> list[fastfax.Page]:
    rng = np.random.default_rng(1)
    text = np.zeros((40, 64), dtype=bool)
    text[5:9, 3:20] = True
    text[20:30, 40:44] = True
    return [
        fastfax.Page.from_array(text, 204, 196),
        fastfax.Page.from_array(rng.random((9, 13)) < 0.3, 204, 98),
    ]


def seed_corpus(directory: str) -> None:
    """Write small valid TIFFs into an empty corpus ``directory``."""
    if os.listdir(directory):
        return
    pages = _seed_pages()
    seeds: dict[str, bytes] = {}
    for compression in ("g4", "g3", "g3-2d", "rle"):
        seeds[compression] = tiff.dumps(pages, compression=compression)
    with tempfile.TemporaryDirectory() as tmp:
        ours = os.path.join(tmp, "ours.tif")
        with open(ours, "wb") as fh:
            fh.write(seeds["g4"])
        if shutil.which("tiffcp"):
            for name, args in {
                "tiffcp-g3": ["-c", "g3"],
                "tiffcp-g3-2d-fill": ["-c", "g3:2d:fill"],
                "tiffcp-g4-lsb": ["-c", "g4", "-f", "lsb2msb"],
                "tiffcp-none": ["-c", "none"],
            }.items():
                out = os.path.join(tmp, name + ".tif")
                subprocess.run(["tiffcp", *args, ours, out], check=True, capture_output=True)
                with open(out, "rb") as fh:
                    seeds[name] = fh.read()
    from PIL import Image

    for compression in ("group4", "group3", "tiff_ccitt", "raw"):
        buf = io.BytesIO()
        Image.fromarray(~pages[0].to_array()).save(buf, "TIFF", compression=compression)
        seeds["pillow-" + compression] = buf.getvalue()
    for i, (name, blob) in enumerate(sorted(seeds.items())):
        with open(os.path.join(directory, name), "wb") as fh:
            fh.write(bytes([i % 3]) + blob)


def main() -> None:
    dirs = [arg for arg in sys.argv[1:] if not arg.startswith("-") and os.path.isdir(arg)]
    if dirs:
        seed_corpus(dirs[0])
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
