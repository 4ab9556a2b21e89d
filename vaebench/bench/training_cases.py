"""beta-VAE training steps timed by ``benchmarks/`` and ``python -m vaebench bench``: one Adam step
(forward, fused reparam+KL, backward, update) of the experiment's ``train_step`` at a fixed batch,
in each of the speed settings a config can choose:

- ``fp32``: float32, default memory format, eager (the loop before these settings existed);
- ``bf16``: bfloat16 autocast (where the device has native bfloat16);
- ``bf16_cl``: the same with channels_last (the conv model);
- ``bf16_cl_compile``: the same with the model under ``torch.compile``.
"""
from __future__ import annotations

from typing import Callable

import torch

SETTINGS = {  # name -> (precision, channels_last, compile)
    "fp32": ("fp32", False, False),
    "bf16": ("bf16", False, False),
    "bf16_cl": ("bf16", True, False),
    "bf16_cl_compile": ("bf16", True, True),
}


def available(setting: str, device: str) -> bool:
    from vaebench.experiments.training import bf16_supported

    return SETTINGS[setting][0] == "fp32" or bf16_supported(device)


def make_case(setting: str, arch: str, batch: int, device: str = "cpu", latent_dim: int = 10) -> Callable[[], object]:
    """A zero-argument callable doing one training step; each call continues the noise stream."""
    from vaebench.experiments import beta_vae as bv
    from vaebench.experiments import training

    precision, channels_last, compile_ = SETTINGS[setting]
    cfg = bv.make_config("paper", arch=arch, latent_dim=latent_dim, batch_size=batch, precision=precision,
                         channels_last=channels_last, compile=compile_)
    model = bv.build_model(cfg, seed=0, device=device)
    optimizer = bv.make_optimizer(model, cfg)
    g = torch.Generator().manual_seed(batch)
    x = training.prepare_input((torch.rand(batch, 1, 64, 64, generator=g) < 0.1).float().to(device), arch,
                               channels_last)
    resolved = training.resolve_precision(precision, device)
    state = {"offset": 0}

    def step():
        _, state["offset"] = bv.train_step(model, optimizer, x, 4.0, impl="fused", seed=1, offset=state["offset"],
                                           precision=resolved)

    return step
