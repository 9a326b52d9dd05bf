"""fastfax.affinity.Planner: which worker renders which chunk of a batch."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fastfax.affinity import Planner


def _run(planner: Planner, workers: int, order: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Hand out every chunk; ``order`` says which busy worker finishes next (cycled)."""
    got: dict[int, list[tuple[int, int]]] = {w: [] for w in range(workers)}
    busy: dict[int, tuple[int, int]] = {}
    for w in range(workers):
        pick = planner.next(None)
        if pick is not None:
            busy[w] = pick
            got[w].append(pick)
    step = 0
    while busy:
        w = sorted(busy)[order[step % len(order)] % len(busy)]
        step += 1
        planner.finished(w, *busy.pop(w))
        pick = planner.next(w)
        if pick is not None:
            busy[w] = pick
            got[w].append(pick)
    return got


def test_two_workers_split_one_document_in_halves():
    planner = Planner()
    planner.add(7, 20)
    got = _run(planner, 2, [0, 1])
    assert [c for _, c in got[0]] == list(range(10))
    assert [c for _, c in got[1]] == list(range(10, 20))
    assert {k for picks in got.values() for k, _ in picks} == {7}


def test_a_worker_that_runs_out_takes_the_back_half_of_what_is_left():
    planner = Planner()
    planner.add(0, 20)
    assert [planner.next(None), planner.next(None)] == [(0, 0), (0, 10)]
    for chunk in range(9):  # worker 1 renders chunks 0 to 9 while worker 2 is on 10
        planner.finished(1, 0, chunk)
        assert planner.next(1) == (0, chunk + 1)
    planner.finished(1, 0, 9)
    assert planner.next(1) == (0, 15)  # chunks 11 to 19 are left: it takes 15 to 19
    planner.finished(2, 0, 10)
    assert planner.next(2) == (0, 11)


def test_workers_start_their_own_documents_before_sharing_one():
    planner = Planner()
    for key, chunks in ((0, 3), (1, 3), (2, 1)):
        planner.add(key, chunks)
    got = _run(planner, 2, [0, 1])
    assert got[0] == [(0, 0), (0, 1), (0, 2), (2, 0)]
    assert got[1] == [(1, 0), (1, 1), (1, 2)]
    assert planner.next(0) is None and not planner.has_fresh()


def test_dropped_document_hands_out_nothing_more():
    planner = Planner()
    planner.add(0, 4)
    planner.add(1, 2)
    assert planner.next(None) == (0, 0)
    planner.finished(5, 0, 0)
    planner.drop(0)
    assert planner.next(5) == (1, 0)
    assert planner.next(5) == (1, 1)
    assert planner.next(5) is None
    planner.add(2, 0)  # an empty document adds nothing
    assert not planner.has_fresh() and planner.next(None) is None


def test_forgotten_workers_start_over():
    planner = Planner()
    planner.add(0, 6)
    assert planner.next(None) == (0, 0)
    planner.finished(1, 0, 0)
    planner.forget_workers()
    assert planner.next(1) == (0, 3)  # not chunk 1: the new worker has nothing cached


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), min_size=1, max_size=6),
    workers=st.integers(1, 4),
    order=st.lists(st.integers(0, 3), min_size=1, max_size=8),
)
def test_every_chunk_is_handed_out_once(sizes, workers, order):
    planner = Planner()
    for key, chunks in enumerate(sizes):
        planner.add(key, chunks)
    got = _run(planner, workers, order)
    picks = [p for ps in got.values() for p in ps]
    assert sorted(picks) == [(k, c) for k, n in enumerate(sizes) for c in range(n)]
