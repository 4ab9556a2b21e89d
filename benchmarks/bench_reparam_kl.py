"""pytest-benchmark: eager vs torch.compile vs fused reparam+KL, forward and forward+backward.

Run: ``pytest benchmarks/bench_reparam_kl.py --benchmark-only --benchmark-json=bench.json``
(``--benchmark-group-by=param:size,param:mode`` lines the three implementations up).
"""
import pytest
import torch

from vaebench.bench.reparam_cases import IMPLS, MODES, make_case
from vaebench.bench.timing import run_benchmark

SIZES = [(256, 10), (4096, 64), (65536, 128)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_reparam_kl(benchmark, impl, mode, size, device):
    if impl == "fused_uncached" and device != "cpu":
        pytest.skip("the output cache is the CPU op's")
    case = make_case(impl, mode, *size, device=device)
    run_benchmark(benchmark, case, device)
