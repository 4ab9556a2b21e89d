"""Recipe sweep for the beta-VAE experiment: which training recipe disentangles dSprites
fastest per image seen?

Each variant is a set of config overrides on the base profile ``sweep`` (the conv model of the
literature with MIG scored every ``trajectory_every`` steps). ``run_sweep`` trains every variant
as its own ``python -m vaebench run beta-vae`` process into ``<out>/<variant>/`` (so variants run
side by side, resume one by one, and a variant that fails does not stop the others);
``collect`` merges their MIG trajectories into ``sweep_trajectories.csv`` and a summary table
``sweep_summary.csv`` (final MIG and images to reach MIG >= 0.10 per variant), and draws
``sweep_mig.png``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vaebench.utils import io

# name -> overrides of the "sweep" profile of vaebench.experiments.beta_vae ("seed": the run's
# seed, default 0). The sweep ranks recipes; the chosen profile then runs every beta over
# several seeds. Two seeds where the spread matters: the likely recipes and the precision pair.
VARIANTS: dict[str, dict] = {
    "conv_b4_lr1e-4": {"betas": "4", "lr": "1e-4"},  # disentanglement_lib's recipe
    "conv_b4_lr5e-4": {"betas": "4", "lr": "5e-4"},
    "conv_b4_lr5e-4_s1": {"betas": "4", "lr": "5e-4", "seed": "1"},
    "conv_b4_lr5e-4_fp32": {"betas": "4", "lr": "5e-4", "precision": "fp32"},  # pairs with conv_b4_lr5e-4
    "conv_b4_lr5e-4_fp32_s1": {"betas": "4", "lr": "5e-4", "precision": "fp32", "seed": "1"},
    "conv_b4_lr1e-3": {"betas": "4", "lr": "1e-3"},
    "conv_b8_lr5e-4": {"betas": "8", "lr": "5e-4"},
    "conv_b8_lr5e-4_s1": {"betas": "8", "lr": "5e-4", "seed": "1"},
    "conv_b8_lr1e-3": {"betas": "8", "lr": "1e-3"},
    "conv_b8_lr1e-3_warmup": {"betas": "8", "lr": "1e-3", "beta_warmup_steps": "10000"},
    "conv_b8_lr5e-4_warmup": {"betas": "8", "lr": "5e-4", "beta_warmup_steps": "10000"},
    "conv_b4_lr5e-4_warmup": {"betas": "4", "lr": "5e-4", "beta_warmup_steps": "10000"},
    "conv_b1_lr5e-4": {"betas": "1", "lr": "5e-4"},
    "chen_b4_lr1e-3_bs256": {"betas": "4", "lr": "1e-3", "arch": "chen", "batch_size": "256",
                             "trajectory_every": "625"},
}
# The precision pair on the `cpu` profile's first recipe (batch 64, lr 5e-4, beta warm-up 10k;
# results/cpu_bs64): bf16 autocast vs fp32, beta 4, three seeds each, to show that bf16 leaves the
# ELBO terms and MIG within the seed spread of fp32 (select with --only precision, usually with a
# shorter --set steps=...).
GROUPS: dict[str, list[str]] = {"precision": []}
for _p in ("bf16", "fp32"):
    for _s in range(3):
        _name = f"cpu_b4_{_p}" + (f"_s{_s}" if _s else "")
        VARIANTS[_name] = {"betas": "4", "lr": "5e-4", "beta_warmup_steps": "10000", "precision": _p, "seed": str(_s)}
        GROUPS["precision"].append(_name)
# The breadth group: one change at a time from the first cpu recipe's core (conv, beta 4, Adam 5e-4,
# batch 64, latent 10, no warm-up; that is ``conv_b4_lr5e-4``), each on the same budget of
# images, so a 2-core CPU can run the whole group in about an hour, two variants at a time.
BREADTH_IMAGES = 1_600_000
GROUPS["breadth"] = []
for _name, _changes in {
    "conv_b4_lr1e-4": {"lr": "1e-4"},
    "conv_b4_lr1e-3": {"lr": "1e-3"},
    "conv_b4_lr5e-4_bs256": {"batch_size": "256"},
    "conv_b4_lr5e-4_z20": {"latent_dim": "20"},
    "conv_b4_lr5e-4_warmup": {"beta_warmup_steps": "10000"},
    "chen_b4_lr1e-3_bs256": {"arch": "chen", "lr": "1e-3", "batch_size": "256"},  # Chen et al.'s recipe
}.items():
    _v = {"betas": "4", "lr": "5e-4", **_changes}
    _batch = int(_v.get("batch_size", 64))
    # Same images between MIG scores (160k) and in all, whatever the batch.
    _v.update(steps=str(BREADTH_IMAGES // _batch), trajectory_every=str(160_000 // _batch))
    VARIANTS[_name + "_1.6M"] = _v
    GROUPS["breadth"].append(_name + "_1.6M")
# The budget group: the `cpu` profile's recipe (batch 256, Adam 5e-4, constant beta) trained on twice
# its images, at beta 4 and 8, seed 0. Does a longer run win back the reconstruction the recipe
# gives up, and does MIG hold? Seed 0's first 2.56M images repeat the reference run's.
BUDGET_IMAGES = 5_120_000
GROUPS["budget"] = []
for _b in ("4", "8"):
    VARIANTS[f"cpu_b{_b}_5.12M"] = {"betas": _b, "lr": "5e-4", "batch_size": "256",
                                    "steps": str(BUDGET_IMAGES // 256), "trajectory_every": "625"}
    GROUPS["budget"].append(f"cpu_b{_b}_5.12M")
TARGET_MIG = 0.10


def variant_command(name: str, out: Path, *, device: str, seed: int, extra: dict[str, str]) -> list[str]:
    sets = {**VARIANTS[name], **extra}
    seed = int(sets.pop("seed", 0)) + seed
    cmd = [sys.executable, "-m", "vaebench", "run", "beta-vae", "--profile", "sweep", "--out", str(out / name),
           "--device", device, "--seed", str(seed), "--no-progress"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def run_sweep(out: str | Path, names: list[str] | None = None, *, jobs: int = 2, device: str = "cpu",
              seed: int = 0, extra: dict[str, str] | None = None, progress: bool = True) -> dict[str, int]:
    """Runs the variants ``names`` (default all) at most ``jobs`` at a time; returns each exit code.
    Each variant's output goes to ``<out>/<name>/log.txt``."""
    from tqdm.auto import tqdm

    out = Path(out)
    names = list(VARIANTS) if names is None else [v for n in names for v in GROUPS.get(n, [n])]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise ValueError(f"sweep: unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    if jobs < 1:
        raise ValueError(f"sweep: jobs must be >= 1, got {jobs}")
    pending, running, codes = list(names), {}, {}
    bar = tqdm(total=len(names), desc="sweep", unit="variant", disable=not progress)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                name = pending.pop(0)
                (out / name).mkdir(parents=True, exist_ok=True)
                log = open(out / name / "log.txt", "a")
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                running[name] = (subprocess.Popen(variant_command(name, out, device=device, seed=seed,
                                                                  extra=extra or {}),
                                                  stdout=log, stderr=subprocess.STDOUT, env=env), log)
            for name, (proc, log) in list(running.items()):
                if proc.poll() is not None:
                    log.close()
                    codes[name] = proc.returncode
                    del running[name]
                    bar.update(1)
                    bar.write(f"[sweep] {name}: {'done' if proc.returncode == 0 else f'failed ({proc.returncode})'}")
            time.sleep(1.0)
    finally:
        for proc, log in running.values():
            proc.terminate()
            log.close()
        bar.close()
    return codes


def _images_to(g: pd.DataFrame, target: float) -> float:
    hit = g[g["mig"] >= target]
    return float(hit["images"].iloc[0]) if len(hit) else float("nan")


def collect(out: str | Path) -> pd.DataFrame:
    """Merges the variants' trajectories in ``out`` into ``sweep_trajectories.csv`` and
    ``sweep_summary.csv``; draws ``sweep_mig.png``. Returns the summary."""
    out = Path(out)
    frames = []
    for path in sorted(out.glob("*/beta_vae_trajectory.csv")):
        t = pd.read_csv(path)
        info = json.loads((path.parent / "beta_vae_config.json").read_text())
        c = info["config"]
        t.insert(0, "variant", path.parent.name)
        for key in ("arch", "latent_dim", "batch_size", "lr", "beta_warmup_steps"):
            t[key] = c[key]
        t["precision"] = info.get("precision", c["precision"])
        t["device"] = info.get("provenance", {}).get("device", "")
        frames.append(t)
    if not frames:
        raise FileNotFoundError(f"{out} holds no variant trajectories (*/beta_vae_trajectory.csv): run the sweep first")
    traj = pd.concat(frames, ignore_index=True)
    io.write_csv(out / "sweep_trajectories.csv", traj)
    rows = []
    for name, g in traj.groupby("variant", sort=False):
        g = g.sort_values("images")
        last = g.iloc[-1]
        rows.append({"variant": name, "beta": last["beta"], "seed": int(last["seed"]), "arch": last["arch"], "latent_dim": last["latent_dim"],
                     "batch_size": last["batch_size"], "lr": last["lr"], "precision": last["precision"],
                     "images": int(last["images"]), "final_mig": last["mig"],
                     "best_mig": g["mig"].max(), "images_to_0.10": _images_to(g, TARGET_MIG),
                     "active_dims": int(last["active_dims"]), "recon": last["recon"], "kl": last["kl"]})
    summary = pd.DataFrame(rows)
    io.write_csv(out / "sweep_summary.csv", summary)
    _figure(traj, out / "sweep_mig.png")
    pairs = precision_pairs(traj)
    if len(pairs):
        io.write_csv(out / "sweep_precision.csv", pairs)
        _precision_figure(pairs, out / "sweep_precision.png")
    return summary


RECIPE = ["arch", "beta", "lr", "beta_warmup_steps", "batch_size", "latent_dim"]


def precision_pairs(traj: pd.DataFrame, metrics: tuple[str, ...] = ("mig", "recon", "kl")) -> pd.DataFrame:
    """bf16 against fp32 at each trajectory step of a recipe trained in both precisions with at least
    two seeds each: per precision the seeds' mean and sd of each metric, the difference of the means
    (bf16 - fp32), its standard error sqrt(sd_bf16^2/n_bf16 + sd_fp32^2/n_fp32), and whether the
    difference is within two standard errors (the seed spread). Empty where no recipe has a pair."""
    rows = []
    for key, g in traj.groupby(RECIPE + ["step"], sort=True):
        by = {p: g[g["precision"] == p] for p in ("bf16", "fp32")}
        if any(len(b["seed"].unique()) < 2 for b in by.values()):
            continue
        row = dict(zip(RECIPE + ["step"], key))
        row["images"] = int(g["images"].iloc[0])
        for p, b in by.items():
            row[f"n_{p}"] = len(b)
        for m in metrics:
            se2 = 0.0
            for p, b in by.items():
                row[f"{m}_{p}_mean"], row[f"{m}_{p}_sd"] = b[m].mean(), b[m].std(ddof=1)
                se2 += b[m].var(ddof=1) / len(b)
            row[f"{m}_diff"] = row[f"{m}_bf16_mean"] - row[f"{m}_fp32_mean"]
            row[f"{m}_diff_se"] = float(np.sqrt(se2))
            # None where a metric is not scored at that step (recon and KL before the first step).
            row[f"{m}_within_2se"] = (bool(abs(row[f"{m}_diff"]) <= 2 * row[f"{m}_diff_se"])
                                      if np.isfinite(row[f"{m}_diff"]) else None)
        rows.append(row)
    return pd.DataFrame(rows)


def _figure(traj: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from vaebench.utils.io import save_figure

    gaps = [c for c in traj.columns if c.startswith("gap_")]
    fig, axes = plt.subplots(1, 1 + len(gaps), figsize=(4.2 * (1 + len(gaps)), 3.6), squeeze=False)
    for name, g in traj.groupby("variant", sort=False):
        g = g.sort_values("images")
        line, = axes[0, 0].plot(g["images"] / 1e6, g["mig"], label=name, lw=1.2)
        for ax, col in zip(axes[0, 1:], gaps):
            ax.plot(g["images"] / 1e6, g[col], color=line.get_color(), lw=1.0)
    axes[0, 0].axhline(TARGET_MIG, color="k", ls=":", lw=0.8)
    axes[0, 0].set(title="MIG", xlabel="images seen (millions)", ylabel="MIG")
    axes[0, 0].legend(fontsize=6)
    for ax, col in zip(axes[0, 1:], gaps):
        ax.set(title=f"gap: {col[4:]}", xlabel="images seen (millions)")
    save_figure(fig, path)


def _precision_figure(pairs: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    from vaebench.utils.io import save_figure

    metrics = [("mig", "MIG"), ("recon", "reconstruction (nats)"), ("kl", "KL (nats)")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for recipe, g in pairs.groupby(RECIPE, sort=False):
        x = g["images"] / 1e6
        for ax, (m, title) in zip(axes[0], metrics):
            for p, color in (("fp32", "C0"), ("bf16", "C3")):
                mean, sd = g[f"{m}_{p}_mean"], g[f"{m}_{p}_sd"]
                ax.plot(x, mean, color=color, lw=1.4, label=f"{p} (n={int(g[f'n_{p}'].iloc[0])}), beta {recipe[1]:g}")
                ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
            ax.set(title=title, xlabel="images seen (millions)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("bf16 autocast vs fp32: mean and sd over seeds", fontsize=9)
    save_figure(fig, path)


def summary_markdown(out: str | Path) -> str:
    s = pd.read_csv(Path(out) / "sweep_summary.csv")
    lines = ["| variant | beta | seed | arch | z | batch | lr | precision | images | MIG (last) | MIG (best) | "
             "images to 0.10 |", "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for _, r in s.iterrows():
        reach = "-" if np.isnan(r["images_to_0.10"]) else f"{r['images_to_0.10'] / 1e6:.2f}M"
        lines.append(f"| {r['variant']} | {r['beta']:g} | {r['seed']} | {r['arch']} | {r['latent_dim']} | {r['batch_size']} | "
                     f"{r['lr']:g} | {r['precision']} | {r['images'] / 1e6:.2f}M | {r['final_mig']:.3f} | "
                     f"{r['best_mig']:.3f} | {reach} |")
    return "\n".join(lines) + "\n"
