"""Build the Cython hot paths: every ``_*.pyx`` under src/fastfax becomes an extension."""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

SRC = Path("src")


def _extensions() -> list[Extension]:
    exts = []
    for pyx in sorted(SRC.glob("fastfax/**/_*.pyx")):
        module = ".".join(pyx.relative_to(SRC).with_suffix("").parts)
        exts.append(Extension(module, [str(pyx)], extra_compile_args=["-O3"]))
    return exts


setup(
    ext_modules=cythonize(
        _extensions(),
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
