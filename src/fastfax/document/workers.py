"""Worker processes for rendering on every core, each with a pipe of its own.

PDFium is not thread-safe, so :mod:`fastfax.document.convert` renders in processes. A
:class:`Workers` starts ``count`` of them (forked where the platform allows) and sends
each task to a chosen worker, so that a worker keeps to the pages whose fonts it has
loaded (:mod:`fastfax.document.affinity` chooses). Several tasks may wait in one worker's pipe:
it starts the next as soon as it has sent a result, without waiting for the parent to
read it.

A worker that dies (a crash in native code, a kill) is noticed when its pipe closes: the
tasks it held come back failed with :class:`WorkerDied` and a new process takes its
place. Workers can be kept for many batches (``with Workers(2) as w: ...``): they
start once, and each batch's ``release`` call lets them drop what they hold open.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = ["Workers", "Done", "WorkerDied"]


class WorkerDied(Exception):
    """The worker process holding a task exited before sending its result."""


@dataclass(frozen=True)
class Done:
    """A finished task: the worker that held it, the task's number, and its value or the
    exception it raised (``error``; :class:`WorkerDied` if the worker died)."""

    worker: int
    task: int
    value: Any = None
    error: BaseException | None = None


def _serve(
    conn: Connection, inherited: list[Connection], initializer: Callable[[], None] | None
) -> None:
    """A worker's loop: run each ``(task, function, args)`` received and send back
    ``(task, ok, pickled value or exception)``; stop at ``None`` or when the pipe closes.

    ``inherited``: the parent's ends of the pipes (this worker's and those of workers
    started before it), closed first so that the pipe closes when the parent dies."""
    for end in inherited:
        end.close()
    if initializer is not None:
        initializer()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task, function, args = message
        try:
            ok, value = True, function(*args)
        except BaseException as exc:  # everything goes back to the parent
            ok, value = False, exc
        try:
            payload = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # any error pickling the value fails the task only
            ok = False
            payload = pickle.dumps(RuntimeError(f"cannot send the result back: {exc!r}"))
        conn.send((task, ok, payload))


class _Proc:
    def __init__(
        self, ctx: Any, initializer: Callable[[], None] | None, others: list[Connection]
    ) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(child, [self.conn, *others], initializer), daemon=True
        )
        # A forked child's garbage collector would walk every object it inherited,
        # writing to their pages (copies of the parent's memory, one fault each): frozen
        # at the fork, they stay out of its collections. The parent's are thawed at once.
        gc.freeze()
        try:
            self.process.start()
        finally:
            gc.unfreeze()
        child.close()
        self.tasks: list[int] = []  # sent and not yet answered, oldest first


class Workers:
    """``count`` worker processes; ``initializer`` runs first in each (and in each
    replacement for one that died)."""

    #: Seconds :meth:`close` waits for a worker to finish before killing it.
    grace = 10.0

    def __init__(self, count: int, initializer: Callable[[], None] | None = None) -> None:
        if count < 1:
            raise ValueError(f"need at least one worker, not {count}")
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        self._initializer = initializer
        self._next_task = 0
        self._procs: list[_Proc] = []
        try:
            for _ in range(count):
                self._procs.append(_Proc(self._ctx, initializer, self._ends()))
        except BaseException:
            self.close()
            raise

    @property
    def count(self) -> int:
        return len(self._procs)

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, in worker order."""
        return [p.process.pid for p in self._procs]

    def pending(self, worker: int) -> int:
        """Tasks sent to ``worker`` and not answered yet."""
        return len(self._procs[worker].tasks)

    def busy(self) -> int:
        """Tasks sent to any worker and not answered yet."""
        return sum(len(p.tasks) for p in self._procs)

    def submit(self, worker: int, function: Callable[..., Any], *args: Any) -> int:
        """Queue ``function(*args)`` on ``worker``; returns the task's number. The
        function and arguments must pickle (a module-level function is sent by name)."""
        proc = self._procs[worker]
        task = self._next_task
        self._next_task += 1
        try:
            proc.conn.send((task, function, args))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            proc.tasks.append(task)  # answered as WorkerDied by the next wait()
            return task
        proc.tasks.append(task)
        return task

    def wait(self, timeout: float | None = None) -> list[Done]:
        """Block until at least one task finishes (or ``timeout`` seconds pass); return
        every task finished so far."""
        if not self.busy():
            return []
        waiting = {p.conn: i for i, p in enumerate(self._procs) if p.tasks}
        sentinels = {self._procs[i].process.sentinel: i for i in waiting.values()}
        ready = wait([*waiting, *sentinels], timeout)
        done: list[Done] = []
        dead: set[int] = set()
        for obj in ready:
            if obj in waiting:
                worker = waiting[obj]
                if not self._drain(worker, done):
                    dead.add(worker)
            else:
                dead.add(sentinels[obj])
        for worker in sorted(dead):
            self._drain(worker, done)  # what it sent before it died still counts
            proc = self._procs[worker]
            for task in proc.tasks:
                done.append(Done(worker, task, error=WorkerDied("the worker process died")))
            self._replace(worker)
        return done

    def _drain(self, worker: int, done: list[Done]) -> bool:
        """Collect the replies waiting in ``worker``'s pipe; False if the pipe closed."""
        proc = self._procs[worker]
        try:
            while proc.tasks and proc.conn.poll():
                task, ok, payload = proc.conn.recv()
                proc.tasks.remove(task)
                try:
                    value = pickle.loads(payload)
                except Exception as exc:  # e.g. an exception class that cannot be rebuilt
                    ok, value = False, RuntimeError(f"cannot read the result back: {exc!r}")
                done.append(Done(worker, task, value if ok else None, None if ok else value))
        except (EOFError, OSError):
            return False
        return True

    def _replace(self, worker: int) -> None:
        old = self._procs[worker]
        old.conn.close()
        if old.process.is_alive():
            old.process.kill()
        old.process.join()
        self._procs[worker] = _Proc(self._ctx, self._initializer, self._ends(worker))

    def _ends(self, leaving_out: int | None = None) -> list[Connection]:
        """The parent's ends of the other workers' pipes."""
        return [p.conn for i, p in enumerate(self._procs) if i != leaving_out]

    def broadcast(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` on every idle worker and wait for them all (values
        and errors are dropped)."""
        if self.busy():
            raise RuntimeError("broadcast needs idle workers")
        tasks = {self.submit(w, function, *args) for w in range(self.count)}
        while tasks:
            for item in self.wait():
                tasks.discard(item.task)

    def close(self, *, kill: bool = False) -> None:
        """Stop every worker: after its tasks (killed if still going after ``grace``
        seconds), or at once with ``kill``."""
        for proc in self._procs:
            if not kill:
                try:
                    proc.conn.send(None)
                except OSError:
                    pass
        for proc in self._procs:
            proc.process.join(0 if kill else self.grace)
            if proc.process.is_alive():
                proc.process.kill()
                proc.process.join()
            proc.conn.close()
        self._procs.clear()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(kill=exc[0] is not None)
