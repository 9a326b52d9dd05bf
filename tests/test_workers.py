"""fastfax.document.workers: forked worker processes with a pipe each, as convert uses them.

Tasks are module-level functions of this file (sent by name; the workers are forked,
so they import it as the parent did). Processes are real: tasks that die, get killed,
block on each other, or return what cannot be pickled. No test asserts on timing; a
few bound how long they wait for something that must happen, far beyond what it takes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastfax.document.convert
import fastfax.errors
from fastfax.demo import Line, make_pdf
from fastfax.document.convert import Options, convert, start_workers
from fastfax.document.workers import Done, WorkerDied, Workers

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(),
    reason="the tasks here are module-level functions found by forked workers",
)

#: Generous bound for something that takes milliseconds (a file to appear, a process to
#: exit): only a broken implementation reaches it.
PATIENCE = 10.0

# -- tasks, run in the workers ----------------------------------------------------------

_calls = 0  # tasks run by _numbered in this process
_initialized: str | None = None  # set by _init in each worker, never in the parent


def _init() -> None:
    global _initialized
    _initialized = f"initialized in {os.getpid()}"


def _value(x):
    return x


def _pid() -> int:
    return os.getpid()


def _numbered(n: int) -> tuple[int, int, int]:
    """(this process, the task's own number, how many of these this process has run)."""
    global _calls
    _calls += 1
    return os.getpid(), n, _calls


def _initialized_here() -> tuple[int, str | None]:
    return os.getpid(), _initialized


def _await_peer(mine: str, theirs: str) -> bool:
    """Announce this task by creating ``mine``, then wait for ``theirs``: True only if
    the other task ran at the same time, in another process."""
    Path(mine).write_text(str(os.getpid()))
    deadline = time.monotonic() + PATIENCE
    while not os.path.exists(theirs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _raise(kind: type[BaseException], message: str):
    raise kind(message)


def _lambda():
    return lambda: 1


def _lock():
    return threading.Lock()


def _exit(code: int):
    os._exit(code)


def _sleep(started: str, seconds: float) -> str:
    """Create ``started``, then sleep (the test kills the worker meanwhile)."""
    Path(started).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "slept"


def _touch(path: str) -> int:
    Path(path).write_text(str(os.getpid()))
    return os.getpid()


def _open_documents() -> int:
    return len(fastfax.document.convert._cached)


class _TwoArgError(Exception):
    """Pickles (its args are the one message) but cannot be unpickled: ``__init__``
    needs two arguments. Many libraries' exceptions are like this."""

    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def _raise_two_arg():
    raise _TwoArgError("one", "two")


class _RefusesPickle:
    def __reduce__(self):
        raise ValueError("this object refuses to be pickled")


def _refuses_pickle():
    return _RefusesPickle()


# -- helpers ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_process_left() -> Iterator[None]:
    """Every test closes what it started: no child process outlives it."""
    yield
    assert multiprocessing.active_children() == []


@pytest.fixture
def two() -> Iterator[Workers]:
    w = Workers(2, _init)
    try:
        yield w
    finally:
        w.close(kill=True)


def _collect(w: Workers, count: int) -> dict[int, Done]:
    """Wait for ``count`` tasks; by task number."""
    got: dict[int, Done] = {}
    deadline = time.monotonic() + PATIENCE
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} tasks came back"
        for item in w.wait(timeout=PATIENCE):
            assert item.task not in got, "a task came back twice"
            got[item.task] = item
    return got


def _run(w: Workers, worker: int, function, *args) -> Done:
    task = w.submit(worker, function, *args)
    (item,) = _collect(w, 1).values()
    assert (item.worker, item.task) == (worker, task)
    return item


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + PATIENCE
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.005)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- results ----------------------------------------------------------------------------


def test_results_come_back_under_their_task_numbers(two):
    tasks = {}
    for n in range(6):
        tasks[two.submit(n % 2, _value, {"n": n, "payload": [n] * n})] = n
    assert len(tasks) == 6, "task numbers are unique"
    assert two.busy() == 6 and two.pending(0) == two.pending(1) == 3
    got = _collect(two, 6)
    assert set(got) == set(tasks)
    for task, n in tasks.items():
        item = got[task]
        assert item.error is None
        assert item.value == {"n": n, "payload": [n] * n}
        assert item.worker == n % 2
    assert two.busy() == 0 and two.pending(0) == two.pending(1) == 0
    assert two.count == 2


def test_tasks_queued_on_one_worker_run_in_order(two):
    tasks = [two.submit(0, _numbered, n) for n in range(8)]
    got = _collect(two, 8)
    results = [got[t].value for t in tasks]
    pids = {pid for pid, _, _ in results}
    assert len(pids) == 1 and pids != {os.getpid()}
    assert [n for _, n, _ in results] == list(range(8))
    # the process's own count of tasks run follows the order they were queued in
    assert [calls for _, _, calls in results] == list(range(1, 9))
    assert _calls == 0, "tasks did not run in the parent"


def test_two_workers_are_distinct_processes_running_at_the_same_time(two, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    first = two.submit(0, _await_peer, a, b)
    second = two.submit(1, _await_peer, b, a)
    got = _collect(two, 2)
    # each task saw the other's file while it was still waiting: they overlapped
    assert got[first].value is True and got[second].value is True
    pids = {int(Path(a).read_text()), int(Path(b).read_text())}
    assert len(pids) == 2 and os.getpid() not in pids


def test_wait_with_nothing_in_flight_returns_nothing(two):
    assert two.wait() == []
    assert two.wait(timeout=0) == []
    _run(two, 0, _value, 1)
    assert two.wait() == [], "a collected task is not returned again"


def test_wait_returns_nothing_when_no_task_finishes_in_time(two, tmp_path):
    started = tmp_path / "started"
    task = two.submit(0, _sleep, str(started), 60)
    _wait_for(started)
    assert two.wait(timeout=0.05) == []
    assert two.busy() == 1 and two.pending(0) == 1
    # the other worker is free meanwhile
    assert _run(two, 1, _value, "free").value == "free"
    assert two.pending(0) == 1 and task not in {d.task for d in two.wait(timeout=0)}


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", [ValueError, KeyError, ZeroDivisionError, fastfax.errors.ConvertError, SystemExit]
)
def test_an_exception_comes_back_and_the_worker_carries_on(two, kind):
    pid = _run(two, 0, _pid).value
    item = _run(two, 0, _raise, kind, "it went wrong")
    assert item.value is None
    assert type(item.error) is kind
    assert item.error.args == ("it went wrong",)
    assert _run(two, 0, _pid).value == pid, "the same process, not a replacement"
    assert _run(two, 0, _value, 7).value == 7


@pytest.mark.parametrize("task", [_lambda, _lock])
def test_a_result_that_cannot_be_pickled_comes_back_as_an_error(two, task):
    pid = _run(two, 0, _pid).value
    queued = two.submit(0, task)
    after = two.submit(0, _value, "after")  # queued behind it in the same pipe
    got = _collect(two, 2)
    error = got[queued].error
    assert isinstance(error, RuntimeError) and not isinstance(error, WorkerDied)
    assert "cannot send the result back" in str(error)
    assert got[queued].value is None
    assert got[after].error is None and got[after].value == "after"
    assert _run(two, 0, _pid).value == pid, "the same process, not a replacement"


def test_submitting_what_cannot_be_pickled_raises_and_leaves_nothing_pending(two):
    with pytest.raises(TypeError, match="pickle"):
        two.submit(0, _value, threading.Lock())
    assert two.busy() == 0
    assert _run(two, 0, _value, 3).value == 3


def _raise_convert_error():
    raise fastfax.document.convert.ConvertError("cannot render", path="doc.pdf", page=3)


def test_an_exception_keeps_its_attributes(two):
    """convert's workers raise ConvertError naming file and page: all of it comes back."""
    error = _run(two, 0, _raise_convert_error).error
    assert type(error) is fastfax.document.convert.ConvertError
    assert (error.path, error.page, error.reason) == ("doc.pdf", 3, "cannot render")
    assert str(error) == "doc.pdf, page 3: cannot render"


# -- workers that die -------------------------------------------------------------------


def _check_replacement(w: Workers, worker: int, dead_pid: int) -> None:
    assert w.pending(worker) == 0 and w.count == 2
    pid, initialized = _run(w, worker, _initialized_here).value
    assert pid != dead_pid and _running(pid)
    assert initialized == f"initialized in {pid}", "the initializer ran in the new process"
    assert _run(w, worker, _value, "works").value == "works"


def test_a_task_that_exits_fails_every_task_its_worker_held(two):
    dead_pid = _run(two, 0, _pid).value
    other_pid = _run(two, 1, _pid).value
    exits = two.submit(0, _exit, 3)
    queued = two.submit(0, _value, "never runs")
    others = [two.submit(1, _numbered, n) for n in range(3)]
    got = _collect(two, 5)
    for task in (exits, queued):
        assert got[task].worker == 0
        assert isinstance(got[task].error, WorkerDied) and got[task].value is None
    assert [got[t].value[:2] for t in others] == [(other_pid, 0), (other_pid, 1), (other_pid, 2)]
    assert all(got[t].error is None for t in others)
    assert not _running(dead_pid)
    _check_replacement(two, 0, dead_pid)
    assert _run(two, 1, _pid).value == other_pid, "the other worker was left alone"


def test_a_worker_killed_from_outside_fails_every_task_it_held(two, tmp_path):
    dead_pid = _run(two, 0, _pid).value
    other_pid = _run(two, 1, _pid).value
    started = tmp_path / "started"
    sleeping = two.submit(0, _sleep, str(started), 60)
    queued = two.submit(0, _value, "never runs")
    other = two.submit(1, _value, "unaffected")
    _wait_for(started)
    assert int(started.read_text()) == dead_pid
    os.kill(dead_pid, signal.SIGKILL)
    got = _collect(two, 3)
    assert isinstance(got[sleeping].error, WorkerDied)
    assert isinstance(got[queued].error, WorkerDied)
    assert got[other].error is None and got[other].value == "unaffected"
    _check_replacement(two, 0, dead_pid)
    assert _run(two, 1, _pid).value == other_pid


def test_a_worker_that_died_idle_is_found_out_on_the_next_task(two):
    dead_pid = _run(two, 1, _pid).value
    os.kill(dead_pid, signal.SIGKILL)
    deadline = time.monotonic() + PATIENCE
    while _running(dead_pid):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    item = _run(two, 1, _value, "lost")
    assert isinstance(item.error, WorkerDied)
    _check_replacement(two, 1, dead_pid)


# -- broadcast --------------------------------------------------------------------------


def test_broadcast_runs_once_on_every_worker(two):
    pids = {_run(two, w, _pid).value for w in range(2)}
    assert two.broadcast(_numbered, 0) is None
    assert two.busy() == 0
    counts = [_run(two, w, _numbered, 1).value for w in range(2)]
    assert {pid for pid, _, _ in counts} == pids
    assert [calls for _, _, calls in counts] == [2, 2], "broadcast ran once in each"


def test_broadcast_writes_from_every_process(two, tmp_path):
    pids = {_run(two, w, _pid).value for w in range(2)}
    marks = tmp_path / "marks"
    marks.mkdir()
    two.broadcast(_touch_in, str(marks))
    assert {int(name) for name in os.listdir(marks)} == pids


def _touch_in(folder: str) -> None:
    Path(folder, str(os.getpid())).touch()


def test_broadcast_refuses_while_tasks_are_in_flight(two, tmp_path):
    task = two.submit(1, _value, "in flight")
    with pytest.raises(RuntimeError, match="idle"):
        two.broadcast(_touch_in, str(tmp_path))
    assert os.listdir(tmp_path) == [], "nothing was sent"
    got = _collect(two, 1)
    assert got[task].value == "in flight"
    two.broadcast(_touch_in, str(tmp_path))
    assert len(os.listdir(tmp_path)) == 2


def test_broadcast_replaces_a_worker_that_dies_in_it(two):
    pids = [_run(two, w, _pid).value for w in range(2)]
    two.broadcast(_exit_if, pids[0])  # returns: the death counts as the worker's answer
    assert two.busy() == 0
    _check_replacement(two, 0, pids[0])
    assert _run(two, 1, _pid).value == pids[1]


def _exit_if(pid: int) -> None:
    if os.getpid() == pid:
        os._exit(1)


# -- closing ----------------------------------------------------------------------------


def test_close_runs_queued_tasks_then_stops_every_process(tmp_path):
    w = Workers(2)
    try:
        procs = [p.process for p in w._procs]
        for n in range(3):
            w.submit(n % 2, _touch, str(tmp_path / f"t{n}"))
        w.grace = 3600  # a worker killed after the grace would hang the test, not pass it
    finally:
        w.close()
    assert sorted(os.listdir(tmp_path)) == ["t0", "t1", "t2"], "queued tasks ran"
    assert [p.is_alive() for p in procs] == [False, False]
    assert [p.exitcode for p in procs] == [0, 0], "they stopped on their own, not killed"
    assert w.count == 0 and w.busy() == 0
    w.close()  # again: nothing left to do


def _close_in_thread(w: Workers, **kwargs) -> None:
    """``close`` must come back promptly: bounded, so that a broken one fails the test
    (after PATIENCE) instead of hanging it for the hour of grace it was given."""
    closer = threading.Thread(target=w.close, kwargs=kwargs, daemon=True)
    closer.start()
    closer.join(PATIENCE)
    if closer.is_alive():
        for p in w._procs:
            p.process.kill()
        closer.join()
        pytest.fail("close did not stop the workers promptly")


def test_close_with_kill_stops_a_worker_stuck_in_a_task(tmp_path):
    w = Workers(2)
    try:
        procs = [p.process for p in w._procs]
        started = tmp_path / "started"
        w.submit(0, _sleep, str(started), 3600)
        w.submit(0, _touch, str(tmp_path / "queued"))
        _wait_for(started)
        w.grace = 3600
    except BaseException:
        w.close(kill=True)
        raise
    _close_in_thread(w, kill=True)
    assert [p.is_alive() for p in procs] == [False, False]
    assert procs[0].exitcode == -signal.SIGKILL
    assert not (tmp_path / "queued").exists()
    assert w.count == 0


def test_with_block_closes_the_workers(tmp_path):
    with Workers(2, _init) as w:
        procs = [p.process for p in w._procs]
        assert _run(w, 1, _initialized_here).value[1] is not None
        w.submit(0, _touch, str(tmp_path / "queued"))
        w.grace = 3600
    assert (tmp_path / "queued").exists()
    assert [p.is_alive() for p in procs] == [False, False]
    assert [p.exitcode for p in procs] == [0, 0]


def test_an_exception_in_the_with_block_kills_the_workers(tmp_path):
    started = tmp_path / "started"
    procs = []

    def body():
        with Workers(2) as w:
            procs.extend(p.process for p in w._procs)
            w.submit(1, _sleep, str(started), 3600)
            _wait_for(started)
            w.grace = 3600  # closing after the task would hang: only a kill ends it
            raise KeyError("out of the with block")

    runner = threading.Thread(target=lambda: pytest.raises(KeyError, body), daemon=True)
    runner.start()
    runner.join(PATIENCE)
    if runner.is_alive():
        for p in procs:
            p.kill()
        runner.join()
        pytest.fail("the with block's exit did not kill the workers")
    assert len(procs) == 2
    assert [p.is_alive() for p in procs] == [False, False]
    assert procs[1].exitcode == -signal.SIGKILL


@pytest.mark.parametrize("count", [0, -1])
def test_at_least_one_worker(count):
    with pytest.raises(ValueError, match="at least one"):
        Workers(count)
    assert multiprocessing.active_children() == []


# -- through convert --------------------------------------------------------------------


def _pdf(path: Path, pages: int, words: str) -> str:
    make_pdf(path, [[Line(f"{words} {n + 1} of {pages}", 14)] for n in range(pages)])
    return str(path)


def test_convert_on_lent_workers_twice_matches_one_process(tmp_path):
    sources = [_pdf(tmp_path / "a.pdf", 3, "alpha page"), _pdf(tmp_path / "b.pdf", 4, "beta")]
    options = Options(header="{page}/{pages}")
    pairs = [(s, tmp_path / f"{Path(s).stem}-one.tif") for s in sources]
    assert all(r.ok for r in convert(pairs, options, processes=1))
    expected = {Path(s).stem: (tmp_path / f"{Path(s).stem}-one.tif").read_bytes() for s in sources}

    workers = start_workers(2)
    try:
        pids = [_run(workers, w, _pid).value for w in range(2)]
        for call in range(2):
            pairs = [(s, tmp_path / f"{Path(s).stem}-{call}.tif") for s in sources]
            results = convert(pairs, options, workers=workers)
            assert [r.error for r in results] == [None, None]
            for s in sources:
                stem = Path(s).stem
                assert (tmp_path / f"{stem}-{call}.tif").read_bytes() == expected[stem]
            assert workers.busy() == 0
            # the call let each worker close the documents it had open
            assert [_run(workers, w, _open_documents).value for w in range(2)] == [0, 0]
        # the same processes served both calls
        assert [_run(workers, w, _pid).value for w in range(2)] == pids
    finally:
        workers.close(kill=True)


# -- results that do not travel, parents that die ----------------------------------------


def test_an_exception_that_cannot_be_unpickled_still_comes_back(two):
    first = two.submit(0, _value, "collected first")
    _wait_for_answer(two, 0)
    bad = two.submit(1, _raise_two_arg)
    _wait_for_answer(two, 1)
    got = _collect(two, 2)
    assert got[first].value == "collected first"
    assert got[bad].error is not None and not isinstance(got[bad].error, WorkerDied)
    assert two.busy() == 0


def _wait_for_answer(w: Workers, worker: int) -> None:
    """Until ``worker`` has sent its answer (unread) to the parent."""
    conn = w._procs[worker].conn
    assert conn.poll(PATIENCE), "no answer"


def test_a_result_refusing_to_pickle_comes_back_as_an_error(two):
    pid = _run(two, 0, _pid).value
    queued = two.submit(0, _refuses_pickle)
    after = two.submit(0, _value, "after")
    got = _collect(two, 2)
    assert not isinstance(got[queued].error, WorkerDied)
    assert got[after].value == "after"
    assert _run(two, 0, _pid).value == pid


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_exit_when_their_parent_dies_without_closing_them():
    script = textwrap.dedent(
        """
        import os
        from fastfax.document.workers import Workers
        w = Workers(2)
        print(*w.pids, flush=True)
        os._exit(0)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    # read one line only: orphaned workers would keep stdout open (no communicate())
    pids = [int(p) for p in parent.stdout.readline().split()]
    parent.stdout.close()
    parent.wait()
    try:
        assert len(pids) == 2
        deadline = time.monotonic() + 1.5
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not any(_running(p) for p in pids), "workers left behind"
    finally:
        for p in pids:
            if _running(p):
                os.kill(p, signal.SIGKILL)
