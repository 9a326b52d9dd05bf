"""fastfax.document.affinity.Planner: which worker renders which pages of a batch."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fastfax.document.affinity import MAX_TASK, Planner

Task = tuple[int, int, int]  # document, first page, pages


def _run(planner: Planner, workers: int, order: list[int]) -> dict[int, list[Task]]:
    """Hand out every page; ``order`` says which busy worker finishes next (cycled)."""
    got: dict[int, list[Task]] = {w: [] for w in range(workers)}
    busy: dict[int, Task] = {}
    for w in range(workers):
        task = planner.next(None)
        if task is not None:
            busy[w] = task
            got[w].append(task)
    step = 0
    while busy:
        w = sorted(busy)[order[step % len(order)] % len(busy)]
        step += 1
        key, start, count = busy.pop(w)
        planner.handed(w, key, start + count - 1)
        task = planner.next(w)
        if task is not None:
            busy[w] = task
            got[w].append(task)
    return got


def _pages(tasks: list[Task]) -> list[tuple[int, int]]:
    return [(key, page) for key, start, count in tasks for page in range(start, start + count)]


def test_two_workers_split_one_document_in_halves_with_shrinking_tasks():
    planner = Planner(2)
    planner.add(7, 200)
    got = _run(planner, 2, [0, 1])
    first, second = _pages(got[0]), _pages(got[1])
    assert first == [(7, p) for p in range(len(first))]  # worker 0 from the start ...
    assert second[0] == (7, 108)  # ... worker 1 from the middle of 16..199, left after it
    assert sorted(first + second) == [(7, p) for p in range(200)]
    sizes = [count for _, _, count in got[0]]
    assert sizes[0] == MAX_TASK and sizes[-1] == 1  # long tasks first, single pages last
    assert sizes == sorted(sizes, reverse=True)


def test_a_worker_that_runs_out_takes_the_back_half_of_what_is_left():
    planner = Planner(2)
    planner.add(0, 40)
    assert planner.next(None) == (0, 0, 10)  # 40 pages left: a quarter
    assert planner.next(None) == (0, 25, 4)  # the middle of 10..39, a quarter of 25..39
    planner.handed(1, 0, 9)
    assert planner.next(1) == (0, 10, 4)  # on from page 10: a quarter of 10..24
    planner.handed(1, 0, 13)
    assert planner.next(1) == (0, 14, 3)  # a quarter of 14..24, rounded up
    planner.handed(2, 0, 28)
    assert planner.next(2) == (0, 29, 3)
    # Left: 17..24 and 32..39. A third worker takes from the back half of the first.
    assert planner.next(None) == (0, 21, 1)


def test_workers_start_their_own_documents_before_sharing_one():
    planner = Planner(2)
    for key, pages in ((0, 3), (1, 3), (2, 1)):
        planner.add(key, pages)
    got = _run(planner, 2, [0, 1])
    assert got[0] == [(0, 0, 3), (2, 0, 1)]  # whole documents while others wait
    assert got[1] == [(1, 0, 3)]
    assert planner.next(0) is None and not planner.has_fresh()


def test_dropped_document_hands_out_nothing_more():
    planner = Planner(1)
    planner.add(0, 4)
    planner.add(1, 2)
    assert planner.next(None) == (0, 0, 4)  # all of it: another document is waiting
    planner.handed(5, 0, 3)
    planner.drop(0)
    assert planner.next(5) == (1, 0, 1)
    planner.handed(5, 1, 0)
    assert planner.next(5) == (1, 1, 1)
    assert planner.next(5) is None
    planner.add(2, 0)  # an empty document adds nothing
    assert not planner.has_fresh() and planner.next(None) is None


def test_forgotten_workers_start_over():
    planner = Planner(1)
    planner.add(0, 6)
    assert planner.next(None) == (0, 0, 3)
    planner.handed(1, 0, 2)
    planner.forget(1)
    assert planner.next(1) == (0, 4, 1)  # not page 3: the new worker has nothing cached


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=6),
    workers=st.integers(1, 4),
    order=st.lists(st.integers(0, 3), min_size=1, max_size=8),
)
def test_every_page_is_handed_out_once(sizes, workers, order):
    planner = Planner(workers)
    for key, pages in enumerate(sizes):
        planner.add(key, pages)
    got = _run(planner, workers, order)
    tasks = [t for ts in got.values() for t in ts]
    assert all(1 <= count <= MAX_TASK for _, _, count in tasks)
    assert sorted(_pages(tasks)) == [(k, p) for k, n in enumerate(sizes) for p in range(n)]
