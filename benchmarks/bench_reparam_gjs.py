"""pytest-benchmark: eager vs torch.compile vs fused reparam+GJS (plain and dual), forward + backward.

Run: ``pytest benchmarks/bench_reparam_gjs.py --benchmark-only --benchmark-group-by=param:op,param:batch``
(D = 10; alpha trainable, so the backward also computes its gradient). ``python
benchmarks/bench_reparam_gjs.py`` times the same cases side by side and prints the ratios.
"""
import pytest
import torch

from vaebench.bench.reparam_cases import make_case
from vaebench.bench.timing import run_benchmark

BATCHES = [256, 4096, 65536]
DIM = 10
IMPLS = ["eager", "compile", "fused"]
OPS = ["reparam_gjs", "reparam_gjs_dual"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("impl", IMPLS)
def test_reparam_gjs(benchmark, impl, op, batch, device):
    case = make_case(impl, "forward_backward", batch, DIM, device=device, op=op)
    run_benchmark(benchmark, case, device)


def main() -> None:
    """Median forward + backward times side by side (``vaebench.bench.timing.time_call``), and
    eager's and torch.compile's times over the fused op's."""
    from vaebench.bench.timing import time_call

    print(f"threads={torch.get_num_threads()}  D={DIM}  forward+backward, median ms")
    print(f"{'op':<17}{'B':>7}{'eager':>10}{'compile':>10}{'fused':>10}{'eager/fused':>13}{'compile/fused':>15}")
    for device in DEVICES:
        for op in OPS:
            for batch in BATCHES:
                ms = {}
                for impl in IMPLS:
                    case = make_case(impl, "forward_backward", batch, DIM, device=device, op=op)
                    t = time_call(case, device=device, warmup=3 if impl == "compile" else 2, repeats=15)
                    ms[impl] = 1e3 * t.median_s
                print(f"{op:<17}{batch:>7}{ms['eager']:>10.3f}{ms['compile']:>10.3f}{ms['fused']:>10.3f}"
                      f"{ms['eager'] / ms['fused']:>13.2f}{ms['compile'] / ms['fused']:>15.2f}  {device}")


if __name__ == "__main__":
    main()
