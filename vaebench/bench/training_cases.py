"""beta-VAE training steps timed by ``benchmarks/`` and ``python -m vaebench bench``: one Adam step
(forward, fused reparam+KL, backward, update) of the experiment's ``train_step`` at a fixed batch,
in each of the speed settings a config can choose:

- ``fp32``: float32, default memory format, eager (the loop before these settings existed);
- ``bf16``: bfloat16 autocast (where the device has native bfloat16);
- ``bf16_cl``: the same with channels_last (the conv model);
- ``bf16_cl_compile``: the same with the model under ``torch.compile``.

``PROCESS_SETTINGS`` are timed in fresh worker processes started together (``time_side_by_side``):
the loop as it was before the allocator tuning (``vaebench.utils.allocator``), and two
single-threaded units side by side, which is how the ``cpu`` profile trains on 2 cores. Their
time per step is the effective one: a batch per (sum over the processes of their steps per second).
"""
from __future__ import annotations

import multiprocessing
import time
from typing import Callable

import numpy as np
import torch

SETTINGS = {  # name -> (precision, channels_last, compile)
    "fp32": ("fp32", False, False),
    "bf16": ("bf16", False, False),
    "bf16_cl": ("bf16", True, False),
    "bf16_cl_compile": ("bf16", True, True),
}
# name -> (setting of SETTINGS, processes side by side, torch threads each (0: this process's
# count split between them), allocator tuning).
PROCESS_SETTINGS = {
    "fp32_default_malloc": ("fp32", 1, 0, False),
    "bf16_cl_2proc": ("bf16_cl", 2, 1, True),
}


def available(setting: str, device: str) -> bool:
    from vaebench.models.precision import bf16_supported

    setting = PROCESS_SETTINGS[setting][0] if setting in PROCESS_SETTINGS else setting
    return SETTINGS[setting][0] == "fp32" or bf16_supported(device)


def make_case(setting: str, arch: str, batch: int, device: str = "cpu", latent_dim: int = 10) -> Callable[[], object]:
    """A zero-argument callable doing one training step; each call continues the noise stream."""
    from vaebench.experiments import beta_vae as bv
    from vaebench.methods import BetaVAE, MethodSetup
    from vaebench.models import precision as prec
    from vaebench.training import loop

    precision, channels_last, compile_ = SETTINGS[setting]
    cfg = bv.make_config("paper", arch=arch, latent_dim=latent_dim, batch_size=batch, precision=precision,
                         channels_last=channels_last, compile=compile_)
    model = loop.build_model(cfg, seed=0, device=device)
    optimizer = loop.make_optimizer(model, cfg)
    method = BetaVAE(4.0, MethodSetup(total_steps=1, data_size=batch, latent_dim=latent_dim, seed=0))
    g = torch.Generator().manual_seed(batch)
    x = prec.prepare_input((torch.rand(batch, 1, 64, 64, generator=g) < 0.1).float().to(device), arch,
                           channels_last)
    resolved = prec.resolve_precision(precision, device)
    state = {"offset": 0}

    def step():
        *_, state["offset"] = loop.train_step(model, optimizer, method, x, 0, impl="fused", seed=1,
                                              offset=state["offset"], precision=resolved)

    return step


def _timed_worker(setting, arch, batch, device, threads, tuning, warmup, repeats, barrier, results) -> None:
    from vaebench.utils import allocator

    try:
        if tuning:
            allocator.keep_freed_memory()
        torch.set_num_threads(threads)
        step = make_case(setting, arch, batch, device=device)
        for _ in range(warmup):
            step()
        barrier.wait(timeout=600)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        results.put(("ok", times))
    except BaseException as e:  # noqa: BLE001 - reported by the parent
        barrier.abort()
        results.put(("error", f"{type(e).__name__}: {e}"))


def effective_step_times(per_step) -> np.ndarray:
    """Time per batch of processes stepping side by side: ``per_step[i][j]`` is the j-th step time
    of process i; the result's j-th entry is 1 / sum_i(1 / per_step[i][j])."""
    return 1.0 / (1.0 / np.asarray(per_step, dtype=float)).sum(axis=0)


def time_side_by_side(name: str, arch: str, batch: int, device: str = "cpu", *, warmup: int = 3,
                      repeats: int = 7) -> tuple[float, float]:
    """(median, IQR) in seconds of the effective time per training step of ``PROCESS_SETTINGS[name]``:
    its processes each warm up, start timing together, and time ``repeats`` steps; the j-th effective
    time is ``effective_step_times`` of theirs. Fresh processes, so this process's allocator settings and thread
    pools do not leak into the measurement."""
    setting, procs, threads, tuning = PROCESS_SETTINGS[name]
    threads = threads or max(1, torch.get_num_threads() // procs)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_timed_worker, args=(setting, arch, batch, device, threads, tuning, warmup,
                                                       repeats, barrier, results)) for _ in range(procs)]
    for w in workers:
        w.start()
    try:
        got = [results.get(timeout=1200) for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.terminate()
    errors = [m for kind, m in got if kind == "error"]
    if errors:
        raise RuntimeError(f"side-by-side timing of {name!r} failed in a worker: {errors[0]}")
    effective = effective_step_times([m for _, m in got])
    q1, med, q3 = np.percentile(effective, [25, 50, 75])
    return float(med), float(q3 - q1)
