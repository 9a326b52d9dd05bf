"""Fixtures shared by the tests that run the faxline peer (tests/peers/faxline.c)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "peers"))
from faxline import PeerUnavailable, build  # noqa: E402


@pytest.fixture(scope="module")
def faxline_built() -> None:
    """The faxline binary, built once (cached by source hash); skip where it cannot be."""
    try:
        build()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def no_thread_left() -> Iterator[None]:
    """Fail the test if it leaves a thread running (5 s to wind down)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(threading.enumerate()) - before, "a thread was left behind"
