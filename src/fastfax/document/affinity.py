"""Which worker process renders which pages of a batch.

A worker that has rendered some pages of a document has its fonts loaded and its glyphs
drawn and cached; going on with the next pages of the same document keeps that work
useful, while pages anywhere else make the worker load and draw them again. So
:class:`Planner` hands a worker, in this order:

1. the pages after the last ones it was handed, if no one has them yet;
2. the first pages of a document no one has started;
3. pages from the middle of the longest run of pages no one has (two workers on one
   document split it in halves, and a worker that runs out takes the back half of what
   another has left); or nothing when every page is handed out.

A task is a run of consecutive pages (at most :data:`MAX_TASK`): the whole run while
documents no one has started are waiting for the other workers, else a
``2 * workers``-th of the run it comes from, so tasks are long while much is left and
shorter towards the end (guided self-scheduling): workers seldom wait for their next
task, and finish together.
The planner only decides; it starts no processes and does no I/O.
"""

from __future__ import annotations

__all__ = ["Planner", "MAX_TASK"]

#: The most pages in one task.
MAX_TASK = 16


class Planner:
    """Pages of documents (known by integer keys) handed out as tasks to ``workers``
    workers (known by integer ids, such as process ids)."""

    def __init__(self, workers: int) -> None:
        self._split = 2 * max(1, workers)
        self._all: dict[int, list[bool]] = {}  # key -> one "taken" flag per page
        self._open: dict[int, list[bool]] = {}  # the documents with pages still to hand out
        self._fresh: list[int] = []  # keys of open documents no page of which is taken
        self._at: dict[int, tuple[int, int]] = {}  # worker -> (document, last page it did)

    def add(self, key: int, pages: int) -> None:
        """A document of ``pages`` pages (0 adds nothing)."""
        if pages > 0:
            self._all[key] = self._open[key] = [False] * pages
            self._fresh.append(key)

    def drop(self, key: int) -> None:
        """Hand out nothing more of document ``key`` (it failed)."""
        self._all.pop(key, None)
        self._open.pop(key, None)
        if key in self._fresh:
            self._fresh.remove(key)

    def has_fresh(self) -> bool:
        """Whether a document no one has started is waiting."""
        return bool(self._fresh)

    def handed(self, worker: int, key: int, last: int) -> None:
        """``worker`` has been handed a task of document ``key`` ending with page
        ``last`` (its next task goes on from there)."""
        self._at[worker] = (key, last)

    def forget(self, worker: int) -> None:
        """``worker`` was replaced by a new process: it has nothing cached."""
        self._at.pop(worker, None)

    def next(self, worker: int | None) -> tuple[int, int, int] | None:
        """The task (document, first page, pages) for ``worker`` (None: a worker with
        nothing cached), or None when every page is handed out."""
        at = self._at.get(worker) if worker is not None else None
        if at is not None:
            key, last = at
            taken = self._open.get(key)
            if taken is not None and last + 1 < len(taken) and not taken[last + 1]:
                return self._take(key, last + 1)
        if self._fresh:
            return self._take(self._fresh[0], 0)
        best: tuple[int, int, int] | None = None  # (run length, key, first page of run)
        for key, taken in self._open.items():
            start = 0
            while start < len(taken):
                if taken[start]:
                    start += 1
                    continue
                end = start
                while end < len(taken) and not taken[end]:
                    end += 1
                if best is None or end - start > best[0]:
                    best = (end - start, key, start)
                start = end
        if best is None:
            return None
        length, key, start = best
        return self._take(key, start + length // 2)

    def _take(self, key: int, start: int) -> tuple[int, int, int]:
        taken = self._open[key]
        end = start
        while end < len(taken) and not taken[end]:
            end += 1
        if key in self._fresh:
            self._fresh.remove(key)
        share = 1 if self._fresh else self._split
        count = max(1, min(MAX_TASK, -(-(end - start) // share)))
        taken[start : start + count] = [True] * count
        if all(taken):
            del self._open[key]
        return key, start, count
