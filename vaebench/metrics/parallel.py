"""Independent classifier fits in worker processes: the metrics' fits share nothing, and
scikit-learn's tree and linear solvers are single-threaded, so on a small CPU one fit per core is
the speed-up that is left."""
from __future__ import annotations

from typing import Callable, Sequence


def run_jobs(jobs: Sequence[tuple[Callable, tuple]], *, n_jobs: int = 1, cost: Sequence[float] | None = None) -> list:
    """``[fn(*args) for fn, args in jobs]``, in ``n_jobs`` processes when above 1 (joblib's loky,
    started largest ``cost`` first so the longest fit does not start last). Results in job order."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an integer >= 1, got {n_jobs!r}")
    if n_jobs == 1 or len(jobs) < 2:
        return [fn(*args) for fn, args in jobs]
    from joblib import Parallel, delayed

    order = sorted(range(len(jobs)), key=lambda i: -(cost[i] if cost is not None else 0))
    done = Parallel(n_jobs=min(n_jobs, len(jobs)), backend="loky")(delayed(jobs[i][0])(*jobs[i][1]) for i in order)
    out = [None] * len(jobs)
    for i, r in zip(order, done):
        out[i] = r
    return out


def start_jobs(jobs: Sequence[tuple[Callable, tuple]]) -> Callable[[], list]:
    """Starts ``jobs`` now, one after another in one background process (joblib's loky), and
    returns a function that waits for them and gives their results in job order."""
    if not jobs:
        return lambda: []
    from joblib.externals.loky import ProcessPoolExecutor  # its own, not joblib's shared one

    executor = ProcessPoolExecutor(max_workers=1)
    futures = [executor.submit(fn, *args) for fn, args in jobs]

    def wait() -> list:
        try:
            return [f.result() for f in futures]
        finally:
            executor.shutdown(wait=True)

    return wait


def split_beside(cost: Sequence[float], busy: float) -> tuple[list[int], list[int]]:
    """Two lists of job indices, for a background process and for this one, which is first
    ``busy`` for other work (in the same units as ``cost``): largest job first to the less loaded
    of the two, so both finish about together."""
    background, here, loads = [], [], [0.0, float(busy)]
    for i in sorted(range(len(cost)), key=lambda i: -cost[i]):
        side = 0 if loads[0] <= loads[1] else 1
        (background if side == 0 else here).append(i)
        loads[side] += cost[i]
    return background, here
