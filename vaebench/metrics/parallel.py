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
