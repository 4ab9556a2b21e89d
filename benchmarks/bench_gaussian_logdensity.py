"""pytest-benchmark: eager vs torch.compile vs fused gaussian_logdensity_lse, forward + backward.

Run: ``pytest benchmarks/bench_gaussian_logdensity.py --benchmark-only --benchmark-group-by=param:size``
(B = M = size components, D = 10). Peak memory is not pytest-benchmark's: ``python -m vaebench bench``
measures it in fresh processes (``vaebench.bench.logdensity_cases.peak_bytes``).
"""
import pytest
import torch

from vaebench.bench.logdensity_cases import IMPLS, make_case
from vaebench.bench.timing import run_benchmark

SIZES = [64, 256, 2048]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", IMPLS)
def test_gaussian_logdensity_lse(benchmark, impl, size, device):
    case = make_case(impl, size, size, 10, device=device)
    run_benchmark(benchmark, case, device)
