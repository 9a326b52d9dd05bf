"""Which worker process renders which pages of a batch.

Each document is cut into chunks of consecutive pages. A worker that has rendered some
pages of a document has its fonts loaded and its glyphs drawn and cached; taking the
next chunk of the same document keeps that work useful, while any other chunk makes the
worker load and draw them again. So :class:`Planner` hands a worker, in this order:

1. the chunk after the one it finished, if no one has it yet;
2. the first chunk of a document no one has started;
3. the middle chunk of the longest run of chunks no one has (two workers on one document
   split it in halves, and a worker that runs out takes the back half of what another
   has left), or nothing when every chunk is handed out.

The planner only decides; it starts no processes and does no I/O.
"""

from __future__ import annotations

__all__ = ["Planner"]


class Planner:
    """Chunks of documents (known by integer keys) handed out to workers (known by
    integer ids, such as process ids)."""

    def __init__(self) -> None:
        # Documents with chunks still to hand out: key -> one "taken" flag per chunk.
        self._open: dict[int, list[bool]] = {}
        self._fresh: list[int] = []  # keys of open documents no chunk of which is taken
        self._at: dict[int, tuple[int, int]] = {}  # worker -> (document, chunk) it did last

    def add(self, key: int, chunks: int) -> None:
        """A document of ``chunks`` chunks (0 adds nothing)."""
        if chunks > 0:
            self._open[key] = [False] * chunks
            self._fresh.append(key)

    def drop(self, key: int) -> None:
        """Hand out nothing more of document ``key`` (it failed)."""
        self._open.pop(key, None)
        if key in self._fresh:
            self._fresh.remove(key)

    def has_fresh(self) -> bool:
        """Whether a document no one has started is waiting."""
        return bool(self._fresh)

    def finished(self, worker: int, key: int, chunk: int) -> None:
        """``worker`` has rendered ``chunk`` of document ``key``."""
        self._at[worker] = (key, chunk)

    def forget_workers(self) -> None:
        """The workers are gone (a new pool): none has anything cached."""
        self._at.clear()

    def next(self, worker: int | None) -> tuple[int, int] | None:
        """The (document, chunk) for ``worker`` (None: a worker with nothing cached), or
        None when every chunk is handed out."""
        last = self._at.get(worker) if worker is not None else None
        if last is not None:
            key, chunk = last
            taken = self._open.get(key)
            if taken is not None and chunk + 1 < len(taken) and not taken[chunk + 1]:
                return self._take(key, chunk + 1)
        if self._fresh:
            return self._take(self._fresh[0], 0)
        best: tuple[int, int, int] | None = None  # (run length, key, first chunk of run)
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

    def _take(self, key: int, chunk: int) -> tuple[int, int]:
        taken = self._open[key]
        taken[chunk] = True
        if key in self._fresh:
            self._fresh.remove(key)
        if all(taken):
            del self._open[key]
        return key, chunk
