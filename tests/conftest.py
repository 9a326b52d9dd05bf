"""Fixtures shared by the tests: the faxline peer (tests/peers/faxline.c), a PostgreSQL
server for the store tests, a check that no thread is left behind."""

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


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One real PostgreSQL server for the whole session (``service_helpers.PostgresServer``;
    ``.database()`` gives a fresh database's URL), stopped at the end; skip without it."""
    from service_helpers import PostgresServer, PostgresUnavailable

    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg 3 is not installed (pip install 'psycopg[binary]')")
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a service test once per store: spools made by ``service_helpers`` then name
    a fresh PostgreSQL database in their TOML (``[store] url``), or none (SQLite)."""
    import service_helpers

    url = request.getfixturevalue("postgres").database() if request.param == "postgresql" else None
    service_helpers.STORE["url"] = url
    try:
        yield request.param
    finally:
        service_helpers.STORE["url"] = None
