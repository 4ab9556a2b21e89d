"""Figures and the REPORT.md section of the methods experiment: MIG over training per method, every
headline metric per method (one dot per seed), traversals per method, and a method x metric table
with the seed spread set against the spread between methods (the study's finding: seeds matter
more than methods). Reads ``methods_metrics.csv`` (else ``methods_mig.csv``), ``methods_trajectory.csv``,
``methods_losses.csv`` and the units' arrays."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vaebench.metrics.suite import HEADLINE, LOWER_IS_BETTER
from vaebench.reports.beta_vae import draw_traversal
from vaebench.reports.metrics import headline_columns
from vaebench.reports.plots import dots_by_group, finish_grid, first_seed_arrays, panel_grid, setting_groups
from vaebench.utils.io import save_figure

PREFIX = "methods"
NAMES = {"beta_vae": "beta-VAE", "annealed_vae": "AnnealedVAE", "factor_vae": "FactorVAE", "dip_vae_i": "DIP-VAE-I",
         "dip_vae_ii": "DIP-VAE-II", "beta_tcvae": "beta-TCVAE"}
NOTES = f"{PREFIX}_notes.md"  # a results folder's hand-written reading of its table
CAPTIONS = {
    "methods_mig_trajectory.png": "MIG on 10,000 fixed grid images over training, per method: the mean over seeds, "
                                  "each seed a thin line.",
    "methods_metrics.png": "Every headline metric per method: one dot per seed, the bar the mean and sd.",
    "methods_traversals.png": "Latent traversals of each method's first seed (rows ordered by KL).",
}


def _read(out_dir: Path, name: str) -> pd.DataFrame:
    path = Path(out_dir) / f"{PREFIX}_{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m vaebench run methods` into {out_dir} first")
    return pd.read_csv(path)


def _table(out_dir: Path) -> pd.DataFrame:
    try:
        return _read(out_dir, "metrics")
    except FileNotFoundError:
        return _read(out_dir, "mig")


def _label(method: str, param: str, setting: float) -> str:
    return f"{NAMES.get(method, method)} ({param} {setting:g})"


def _groups(table: pd.DataFrame):
    return setting_groups(table, _label)


def _trajectory(traj: pd.DataFrame, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    for i, (label, g) in enumerate(_groups(traj)):
        color = f"C{i}"
        for _, s in g.groupby("seed"):
            ax.plot(s["images"] / 1e6, s["mig"], color=color, lw=0.5, alpha=0.5)
        mean = g.groupby("images")["mig"].mean()
        ax.plot(mean.index / 1e6, mean.to_numpy(), color=color, lw=1.6, label=label)
    ax.set(xlabel="images seen (millions)", ylabel="MIG", title="MIG over training")
    ax.legend(fontsize=7)
    path = out_dir / f"{PREFIX}_mig_trajectory.png"
    save_figure(fig, path)
    return path


def _metrics(table: pd.DataFrame, out_dir: Path) -> Path:
    groups = [(NAMES.get(g["method"].iloc[0], "?"), g) for _, g in _groups(table)]
    return dots_by_group(groups, headline_columns(table), out_dir / f"{PREFIX}_metrics.png", rotate=True)


def _traversals(table: pd.DataFrame, out_dir: Path) -> Path | None:
    panels = [(f"{label}, seed {seed}", a) for label, seed, a in first_seed_arrays(_groups(table), out_dir, PREFIX)]
    if not panels:
        return None
    fig, axes = panel_grid(len(panels), 3, 4.4, 4.6)
    for ax, (title, arrays) in zip(axes, panels):
        draw_traversal(ax, arrays, title)
    return finish_grid(fig, axes, len(panels), out_dir / f"{PREFIX}_traversals.png")


def make_figures(out_dir) -> list[Path]:
    out_dir = Path(out_dir)
    table = _table(out_dir)
    paths = [_metrics(table, out_dir)]
    try:
        paths.append(_trajectory(_read(out_dir, "trajectory"), out_dir))
    except FileNotFoundError:
        pass
    traversals = _traversals(table, out_dir)
    return paths + ([traversals] if traversals else [])


def images_per_second(losses: pd.DataFrame, batch_size: int) -> pd.Series:
    """Training throughput per unit (method, setting, seed): its images over its training seconds
    (each loss row covers the steps since the previous row of its unit). Per unit, because the
    seeds of a run may be trained on different machines: compare methods within a seed."""
    keys = ["method", "setting", "seed"]
    steps = losses.groupby(keys)["step"].diff().fillna(losses["step"])
    images = steps * batch_size
    per = pd.DataFrame({**{k: losses[k] for k in keys}, "images": images,
                        "seconds": images / losses["images_per_s"]}).groupby(keys).sum()
    return per["images"] / per["seconds"]


def spread(table: pd.DataFrame, col: str) -> tuple[float, float]:
    """(mean sd over seeds within a method, sd of the methods' means) of metric ``col``."""
    by = table.groupby(["method", "setting"])[col]
    return float(by.std().mean()), float(by.mean().std())


def _cell(v: pd.Series, fmt: str = "{:.3f}") -> str:
    v = v.dropna()
    if not len(v):
        return "-"
    seeds = " / ".join(fmt.format(x) for x in v)
    return f"{fmt.format(v.mean())} +- {fmt.format(v.std())} ({seeds})" if len(v) > 1 else fmt.format(v.mean())


def summary_markdown(out_dir) -> str:
    out_dir = Path(out_dir)
    table = _table(out_dir)
    groups = _groups(table)
    cols = headline_columns(table)
    seeds = sorted(table["seed"].unique())
    lines = ["## Methods", "",
             f"disentanglement_lib's methods on the shared trainer, {len(table)} models over seeds "
             f"{', '.join(map(str, seeds))}: mean +- sd over seeds (per-seed values in brackets).", "",
             "| metric | " + " | ".join(label for label, _ in groups) + " |", "|---|" + "---:|" * len(groups)]
    for c in cols:
        lines.append(f"| {HEADLINE[c]} | " + " | ".join(_cell(g[c]) for _, g in groups) + " |")
    try:  # each unit's own evaluation (one posterior sample per evaluation image)
        own = _read(out_dir, "mig")
        for col, name in (("recon", "recon (nats)"), ("kl", "KL (nats)")):
            cells = []
            for _, g in groups:
                rows = own[(own["method"] == g["method"].iloc[0]) & (own["setting"] == g["setting"].iloc[0])]
                cells.append(_cell(rows[col], "{:.1f}"))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    except FileNotFoundError:
        pass
    try:
        speed = images_per_second(_read(out_dir, "losses"), _batch_size(out_dir))
        lines.append("| training images/s | " + " | ".join(
            _cell(speed.get((g["method"].iloc[0], g["setting"].iloc[0]), pd.Series(dtype=float)), "{:,.0f}")
            for _, g in groups) + " |")
    except FileNotFoundError:
        pass
    machines = _machines(out_dir)
    if machines:
        lines += ["", "Where each seed was trained (images/s compare methods trained on one machine):", "",
                  *(f"- {m}" for m in machines)]
    if len(groups) > 1 and len(seeds) > 1:
        ranks, wider = [], 0
        for c in cols:
            means = {label: g[c].mean() for label, g in groups}
            lower = c in LOWER_IS_BETTER
            order = sorted(means, key=lambda k: means[k] if lower else -means[k])
            within, between = spread(table, c)
            wider += within > between
            ranks.append(f"- {HEADLINE[c]}{' (lower is better)' if lower else ''}: "
                         f"{' > '.join(k.split(' (')[0] for k in order)} (seed sd {within:.3f} "
                         f"vs sd between methods {between:.3f})")
        lines += ["", f"Ranking by mean, best first, and the seed spread against the spread between methods: on "
                      f"{wider} of {len(cols)} metrics the seeds of one method spread more than the methods' "
                      "means do.", "", *ranks]
    notes = out_dir / NOTES
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"


def _machines(out_dir: Path) -> list[str]:
    """One line per seed: "seed S: <hardware>, <precision> (N units)", naming the methods where a seed's
    units come from several machines, from the units' own records (``trained_on``, recorded since units
    carry it; older units count as "machine not recorded")."""
    try:
        own = _read(out_dir, "mig")
    except FileNotFoundError:
        return []
    if "trained_on" not in own.columns:
        return []
    own = own.assign(trained_on=own["trained_on"].fillna("machine not recorded"),
                     precision=own["precision"].fillna("?"))
    out = []
    for seed, units in own.groupby("seed", sort=True):
        parts = []
        for (where, precision), g in units.groupby(["trained_on", "precision"], sort=True):
            what = (f"{len(g)} unit{'s' * (len(g) > 1)}" if len(g) == len(units)
                    else ", ".join(NAMES.get(m, m) for m in g["method"]))
            parts.append(f"{where}, {precision} ({what})")
        out.append(f"seed {seed}: " + "; ".join(parts))
    return out


def _batch_size(out_dir: Path) -> int:
    import json

    path = out_dir / f"{PREFIX}_config.json"
    if not path.exists():
        raise FileNotFoundError(path)
    return int(json.loads(path.read_text())["config"]["batch_size"])
