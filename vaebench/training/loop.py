"""The training loop every method shares, top to bottom in ``train``: precision, prefetched
batches, the method's loss, trajectory scoring, checkpoints and resume.

Data order (per-epoch permutations seeded by (seed, epoch)) and the Philox noise stream (offset
advances by B*D per step) are pure functions of the step, and a method's own draws are functions
of (seed, step), so a run resumed from its ``last`` checkpoint computes what an uninterrupted one
would.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from vaebench.executors import fault_point
from vaebench.methods import Method
from vaebench.models import VAE, checkpoint_state, precision as prec
from vaebench.ops import draw_seed
from vaebench.training.config import TrainConfig
from vaebench.training.evaluation import Probe
from vaebench.training.files import UnitFiles, resume_state
from vaebench.training.prefetch import Prefetcher
from vaebench.utils import io

LOSS_COLUMNS = ["epoch", "step", "total", "recon", "kl", "images_per_s"]  # after the unit's keys, before the method's


def unit_seeds(seed: int) -> tuple[int, int]:
    """(training noise seed, evaluation noise seed) of a unit: Philox keys drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return draw_seed(g), draw_seed(g)


def build_model(cfg: TrainConfig, seed: int, device: str, method: Method | None = None) -> VAE:
    """The unit's model before training (the config's, as ``method`` changes it): the same init
    for every method and setting at a given seed (paired comparisons), in the memory format the
    config asks for, compiled if asked."""
    torch.manual_seed(seed)
    config = cfg.model_config() if method is None else method.model_config(cfg.model_config())
    model = VAE(config)
    if method is not None:
        method.init_model(model)
    model = prec.prepare_model(model.to(device), cfg.arch, cfg.channels_last)
    if cfg.compile:
        model.compile()  # in place: state_dict keys stay those of the plain model
    return model


def make_optimizer(model: VAE, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)


def train_step(model, optimizer, method: Method, x, step: int, *, impl: str, seed: int, offset: int,
               precision: str = "fp32"):
    """One update on ``x``: the model's Adam step on the method's loss, then the method's own
    (``after_step``). Returns ``(loss, pass, logs, next_offset)`` (offset advances by B*D).
    ``precision`` is a resolved one ("fp32" or "bf16", see ``vaebench.models.precision``)."""
    optimizer.zero_grad(set_to_none=True)
    with prec.autocast(precision, x.device):
        p = method.forward(model, x, step, impl=impl, seed=seed, offset=offset)
        loss, logs = method.loss(p, step)
    loss.backward()
    optimizer.step()
    with prec.autocast(precision, x.device):
        logs = {**logs, **method.after_step(p, step)}
    return loss, p, logs, offset + x.shape[0] * model.latent_dim


def train(cfg: TrainConfig, method: Method, data, train_idx: np.ndarray, seed: int, files: UnitFiles,
          keys: dict, device: str = "cpu", progress: bool = True, probe: Probe | None = None,
          on_trajectory=None, run_id: str | None = None) -> tuple[VAE, list[dict], list[dict]]:
    """Trains (or resumes) one unit with ``method``; saves init/mid/last checkpoints on the way
    (``files``; each records ``keys``, the unit's identifying columns). Scores ``probe`` every
    ``trajectory_every`` steps (``on_trajectory(rows)`` is called after each). Returns the trained
    model, its loss history and its MIG trajectory. A ``last`` checkpoint of another ``run_id`` (a
    run since forced) or a damaged one is not resumed from."""
    steps_per_epoch = len(train_idx) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"train_size ({len(train_idx)}) must be >= batch_size ({cfg.batch_size})")
    total_steps = cfg.total_steps(len(train_idx))
    precision = prec.resolve_precision(cfg.precision, device)
    prec.use_exact_fp32(precision, device)
    noise_seed, _ = unit_seeds(seed)
    score = probe is not None and cfg.trajectory_every > 0
    log_names = list(method.log_names)

    model = build_model(cfg, seed, device, method)
    optimizer = make_optimizer(model, cfg)
    step, offset, seconds, history, trajectory = 0, 0, 0.0, [], []
    last = files.checkpoint("last")
    state = resume_state(last, run_id, device)
    if state is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        if state.get("method_state"):
            method.load_state_dict(state["method_state"])
        step, offset, history = state["step"], state["offset"], state["history"]
        seconds, trajectory = state.get("seconds", 0.0), state.get("trajectory", [])
    else:
        io.save_torch(files.checkpoint("init"), checkpoint_state(model, **keys, step=0))
        if score:
            trajectory.append({**keys, "step": 0, "images": 0, "seconds": 0.0, **probe.score(model, precision),
                               "recon": float("nan"), "kl": float("nan")})
    if score and on_trajectory:
        on_trajectory(trajectory)

    epoch_order = {}

    def make_batch(i: int) -> torch.Tensor:  # runs in the prefetch thread, one step ahead or more
        epoch, j = divmod(i, steps_per_epoch)
        if epoch not in epoch_order:  # per-epoch permutation seeded by (seed, epoch): resumable
            epoch_order.clear()
            epoch_order[epoch] = train_idx[np.random.default_rng([seed, epoch]).permutation(len(train_idx))]
        x = prec.prepare_input(data.batch(epoch_order[epoch][j * cfg.batch_size:(j + 1) * cfg.batch_size]),
                               cfg.arch, cfg.channels_last)
        return x.pin_memory() if str(device).startswith("cuda") else x

    bar = tqdm(total=total_steps, initial=step, desc=files.tag, leave=False, disable=not progress, unit="step")
    model.train()
    method.train()
    mid = max(1, total_steps // 2)
    # total, recon, kl, then the method's values: summed on the device, no per-step sync
    sums, n_sum = torch.zeros(3 + len(log_names), dtype=torch.float64, device=device), 0
    t_last = time.perf_counter()
    with Prefetcher(make_batch, step, total_steps) as batches:
        for x in batches:
            x = x.to(device, non_blocking=True)
            loss, p, logs, offset = train_step(model, optimizer, method, x, step, impl=cfg.impl, seed=noise_seed,
                                               offset=offset, precision=precision)
            values = [loss.detach(), p.recon.detach().mean(), p.kl.detach().mean()] + [logs[n] for n in log_names]
            sums += torch.stack([v.double() for v in values])
            n_sum += 1
            step += 1
            fault_point(step)  # tests: a worker killed here resumes from the last checkpoint
            bar.update(1)
            if step == mid:
                io.save_torch(files.checkpoint("mid"), checkpoint_state(model, **keys, step=step))
            scored = score and (step % cfg.trajectory_every == 0 or step == total_steps)
            if step % steps_per_epoch and not scored and step != total_steps:
                continue  # loss rows and resume points at epoch ends and scoring steps
            interval = time.perf_counter() - t_last
            seconds += interval
            total, recon, kl, *extra = (sums / n_sum).tolist()
            history.append({**keys, "epoch": step / steps_per_epoch, "step": step, "total": total, "recon": recon,
                            "kl": kl, "images_per_s": n_sum * cfg.batch_size / interval, **dict(zip(log_names, extra))})
            if scored:
                model.eval()
                trajectory.append({**keys, "step": step, "images": step * cfg.batch_size, "seconds": seconds,
                                   **probe.score(model, precision), "recon": recon, "kl": kl})
                model.train()
                bar.set_postfix(loss=f"{total:.1f}", mig=f"{trajectory[-1]['mig']:.3f}")
            io.save_torch(last, checkpoint_state(model, **keys, step=step, offset=offset, history=history,
                                                 trajectory=trajectory, seconds=seconds,
                                                 optimizer_state=optimizer.state_dict(),
                                                 method_state=method.state_dict(), run_id=run_id))
            if scored and on_trajectory:
                on_trajectory(trajectory)
            sums.zero_()
            n_sum = 0
            t_last = time.perf_counter()  # evaluation and checkpoint time are not training time
    bar.close()
    model.eval()
    method.train(False)
    return model, history, trajectory


def train_seconds(history: list[dict], batch_size: int) -> float:
    """Training time (evaluations excluded) from the loss rows: images over images per second."""
    steps = [0] + [h["step"] for h in history]
    return float(sum((b - a) * batch_size / h["images_per_s"] for a, b, h in zip(steps, steps[1:], history)))
