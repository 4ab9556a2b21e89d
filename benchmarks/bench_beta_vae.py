"""pytest-benchmark: one beta-VAE training step (forward, backward, Adam) with the fused
reparam+KL op vs the eager reference on the same Philox noise, per architecture; and one step of
every method on the conv model (what each method's own terms cost beside the shared pass).

Run: ``pytest benchmarks/bench_beta_vae.py --benchmark-only --benchmark-group-by=param:arch,param:device``.
The reparam+KL itself is a small part of a step: this shows what the fused op buys end to end.
"""
import pytest
import torch

from vaebench.bench import training_cases
from vaebench.methods import METHODS, MethodSetup, make_method
from vaebench.models import VAE
from vaebench.training.loop import train_step

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("impl", ["fused", "eager"])
def test_train_step(benchmark, impl, arch, device):
    torch.manual_seed(0)
    model = VAE(arch=arch, latent_dim=10).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = (torch.rand(64, 1, 64, 64, device=device) < 0.1).float()
    _bench_steps(benchmark, model, opt, "beta_vae", 4.0, x, impl, device)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_step(benchmark, method):
    torch.manual_seed(0)
    model = VAE(arch="conv", latent_dim=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = (torch.rand(64, 1, 64, 64) < 0.1).float()
    _bench_steps(benchmark, model, opt, method, METHODS[method].study_values[2], x, "fused", "cpu")


def _bench_steps(benchmark, model, opt, name, value, x, impl, device):
    method = make_method(name, value, MethodSetup(total_steps=10_000, data_size=737_280, latent_dim=model.latent_dim,
                                                  seed=0, device=device))
    state = {"offset": 0, "step": 0}

    def step():
        *_, state["offset"] = train_step(model, opt, method, x, state["step"], impl=impl, seed=1,
                                         offset=state["offset"])
        state["step"] += 1
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
