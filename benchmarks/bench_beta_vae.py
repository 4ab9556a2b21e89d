"""pytest-benchmark: one beta-VAE training step (forward, backward, Adam) with the fused
reparam+KL op vs the eager reference on the same Philox noise, per architecture.

Run: ``pytest benchmarks/bench_beta_vae.py --benchmark-only --benchmark-group-by=param:arch,param:device``.
The reparam+KL itself is a small part of a step: this shows what the fused op buys end to end.
"""
import pytest
import torch

from vaebench.bench import training_cases
from vaebench.experiments.beta_vae import train_step
from vaebench.models import VAE

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("impl", ["fused", "eager"])
def test_train_step(benchmark, impl, arch, device):
    torch.manual_seed(0)
    model = VAE(arch=arch, latent_dim=10).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = (torch.rand(64, 1, 64, 64, device=device) < 0.1).float()
    state = {"offset": 0}

    def step():
        _, state["offset"] = train_step(model, opt, x, 4.0, impl=impl, seed=1, offset=state["offset"])
        if device == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    benchmark(step)


@pytest.mark.parametrize("arch", ["conv", "mlp"])
@pytest.mark.parametrize("setting", list(training_cases.SETTINGS))
def test_train_step_speed_setting(benchmark, setting, arch):
    """One training step per speed setting on the CPU (bf16 ones skip where bf16 is not native);
    ``python -m vaebench bench`` adds the allocator and side-by-side rows to these."""
    if not training_cases.available(setting, "cpu"):
        pytest.skip("no native bfloat16 on this CPU")
    step = training_cases.make_case(setting, arch, 64)
    for _ in range(4 if "compile" in setting else 2):
        step()  # warm-up (torch.compile compiles on its first calls)
    benchmark(step)
