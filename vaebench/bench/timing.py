"""Wall-clock timing with warm-up and repeats, and the machine's copy bandwidth."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class Timing:
    median_s: float
    iqr_s: float
    repeats: int


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], *, device: str = "cpu", warmup: int = 2, repeats: int = 7,
              max_seconds: float = 20.0) -> Timing:
    """Median and interquartile range of ``repeats`` timed calls after ``warmup`` untimed ones.

    Stops early (with at least 3 repeats) once ``max_seconds`` of timed calls have passed, so
    slow references (per-pair scikit-learn MIG on the full grid) stay affordable.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and (len(times) < 3 or spent < max_seconds):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return Timing(float(med), float(q3 - q1), len(times))


def run_benchmark(benchmark, case: Callable[[], object], device: str = "cpu") -> None:
    """pytest-benchmark's ``benchmark`` fixture on ``case`` after one warm-up call (which compiles
    a torch.compile variant), each timed call waiting for the device."""
    case()
    if not str(device).startswith("cuda"):
        benchmark(case)
        return

    def timed():
        case()
        torch.cuda.synchronize()
    benchmark(timed)


def copy_bandwidth(device: str = "cpu", nbytes: int = 256 << 20) -> float:
    """Measured device-memory bandwidth in bytes/s: a tensor copy reads and writes
    ``nbytes`` each, so bandwidth = 2 * nbytes / time. This is the floor each kernel is
    compared with (no kernel moving the same bytes can beat a plain copy by much)."""
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    t = time_call(lambda: dst.copy_(src), device=device, warmup=3, repeats=15)
    return 2 * nbytes / t.median_s
