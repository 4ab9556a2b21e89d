"""Figures and the REPORT.md section of the beta-VAE experiment.

Reads only what ``vaebench.experiments.beta_vae.run`` left in ``out_dir`` (the CSVs and the
``beta_vae_arrays_*.npz`` files), so figures regenerate without the models.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vaebench.reports.plots import image_rows
from vaebench.utils.io import save_figure

PREFIX = "beta_vae"
# REFERENCE.md §4: the document's single runs (recon / KL read off its plots).
DOCUMENT = {1.0: {"mig": 0.1642, "recon": 18, "kl": 28},
            4.0: {"mig": 0.1529, "recon": 40, "kl": 15},
            8.0: {"mig": 0.1988, "recon": 75, "kl": 18}}
# One sentence per figure, for REPORT.md.
CAPTIONS = {
    "beta_vae_loss_curves.png": "Loss per sample over training, one panel per beta, split into total, reconstruction (BCE) "
                                "and KL, mean over seeds (the document's fig 2 and 4).",
    "beta_vae_loss_comparison.png": "The same curves overlaid across beta: higher beta buys a smaller KL with a worse reconstruction.",
    "beta_vae_reconstructions.png": "8 random originals (top row) over their reconstructions, one row per beta (fig 3 and 5).",
    "beta_vae_pca.png": "PCA of 5,000 latent means to 2-D coloured by shape, one panel per beta (fig 6).",
    "beta_vae_traversals.png": "Latent traversals, one panel per beta: each row varies one latent dimension from -2.5 to "
                               "2.5 with the others fixed, rows sorted by the dimension's KL (in nats, in brackets).",
    "beta_vae_mig.png": "MIG per beta (mean and spread over seeds) beside the document's single-run values.",
    "beta_vae_trajectory.png": "MIG over training (10,000 random grid images, encoder means, 20 bins) against images "
                               "seen, mean and spread over seeds per beta, then each factor's gap.",
}
SHAPES = ("square", "ellipse", "heart")  # dSprites shape classes 0, 1, 2


def _read(out_dir: Path, name: str) -> pd.DataFrame:
    path = Path(out_dir) / f"{PREFIX}_{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m vaebench run beta-vae` into {out_dir} first")
    return pd.read_csv(path)


def _arrays(out_dir: Path, beta: float, seed: int) -> dict:
    path = Path(out_dir) / f"{PREFIX}_arrays_beta{beta:g}_seed{seed}.npz"
    with np.load(path) as f:
        return dict(f)


def _first_seeds(mig: pd.DataFrame) -> list[tuple[float, int]]:
    """(beta, seed) with the smallest seed of each beta: the run the image figures show."""
    return [(float(b), int(g["seed"].min())) for b, g in mig.groupby("beta")]


def _loss_curves(losses: pd.DataFrame, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    stats = losses.groupby(["beta", "epoch"])[["total", "recon", "kl"]].agg(["mean", "std"]).reset_index()
    betas = sorted(losses["beta"].unique())
    paths = []

    # Fig 2 of the document: one panel per beta with its total / recon / KL curves.
    fig, axes = plt.subplots(1, len(betas), figsize=(4.2 * len(betas), 3.4), squeeze=False)
    for ax, beta in zip(axes[0], betas):
        s = stats[stats["beta"] == beta]
        for col, label in (("total", "total"), ("recon", "reconstruction (BCE)"), ("kl", "KL")):
            m, sd = s[(col, "mean")].to_numpy(), s[(col, "std")].fillna(0).to_numpy()
            ax.plot(s["epoch"], m, marker="o", ms=3, label=label)
            ax.fill_between(s["epoch"], m - sd, m + sd, alpha=0.2)
        ax.set(title=f"beta = {beta:g}", xlabel="epoch", ylabel="loss per sample", yscale="log")
        ax.legend(fontsize=8)
    path = out_dir / f"{PREFIX}_loss_curves.png"
    save_figure(fig, path)
    paths.append(path)

    # Fig 4: the three terms compared across betas (mean +- std over seeds).
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (col, title) in zip(axes, (("total", "total loss"), ("recon", "reconstruction (BCE)"), ("kl", "KL"))):
        for beta in betas:
            s = stats[stats["beta"] == beta]
            m, sd = s[(col, "mean")].to_numpy(), s[(col, "std")].fillna(0).to_numpy()
            ax.plot(s["epoch"], m, marker="o", ms=3, label=f"beta = {beta:g}")
            ax.fill_between(s["epoch"], m - sd, m + sd, alpha=0.2)
        ax.set(title=title, xlabel="epoch", ylabel="per sample")
        ax.legend(fontsize=8)
    path = out_dir / f"{PREFIX}_loss_comparison.png"
    save_figure(fig, path)
    paths.append(path)
    return paths


def _reconstructions(runs, out_dir: Path) -> Path:
    arrays = [_arrays(out_dir, b, s) for b, s in runs]
    rows = [("original", arrays[0]["originals"])] + [(f"beta = {b:g}", a["reconstructions"])
                                                    for (b, _), a in zip(runs, arrays)]
    return image_rows(rows, out_dir / f"{PREFIX}_reconstructions.png")


def _panels(runs, out_dir: Path, name: str, height: float, draw) -> Path:
    """One panel per (beta, seed) run, ``draw(ax, beta, seed, arrays)`` fills each."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), height), squeeze=False)
    for ax, (beta, seed) in zip(axes[0], runs):
        draw(ax, beta, seed, _arrays(out_dir, beta, seed))
    path = out_dir / f"{PREFIX}_{name}.png"
    save_figure(fig, path)
    return path


def _draw_pca(ax, beta, seed, a) -> None:
    for k, name in enumerate(SHAPES):
        sel = a["pca_shape"] == k
        ax.scatter(a["pca_points"][sel, 0], a["pca_points"][sel, 1], s=2, alpha=0.5, label=name)
    ev = a["pca_explained"]
    ax.set(title=f"beta = {beta:g} (seed {seed})", xlabel=f"PC1 ({ev[0]:.0%})", ylabel=f"PC2 ({ev[1]:.0%})")
    ax.legend(markerscale=4, fontsize=8)


def _draw_traversal(ax, beta, seed, a) -> None:
    draw_traversal(ax, a, f"beta = {beta:g} (seed {seed}): latent (KL nats)")


def draw_traversal(ax, a: dict, title: str) -> None:
    """A unit's latent traversals (its arrays ``a``): one row per latent, ordered by KL."""
    t = a["traversals"]  # [D, steps, H, W], rows ordered by KL
    d, steps, h, w = t.shape
    t = np.pad(t, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=128)  # grey frame around each image
    grid = t.transpose(0, 2, 1, 3).reshape(d * (h + 2), steps * (w + 2))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
    dims = a["traversal_dims"]
    ax.set_yticks(np.arange(d) * (h + 2) + h / 2 + 1, [f"z{j} ({kl:.1f})" for j, kl in zip(dims, a["kl_per_dim"][dims])],
                  fontsize=7)
    v = a["traversal_values"]
    ax.set_xticks([w / 2 + 1, steps * (w + 2) - w / 2 - 1], [f"{v[0]:g}", f"{v[-1]:g}"])
    ax.set_title(title, fontsize=9)


def _mig_bars(mig: pd.DataFrame, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    g = mig.groupby("beta")["mig"].agg(["mean", "std", "count"]).reset_index()
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    x = np.arange(len(g))
    ax.bar(x - 0.2, g["mean"], 0.4, yerr=g["std"].fillna(0), capsize=3, label="vaebench (mean +- std)")
    ax.bar(x + 0.2, [DOCUMENT.get(float(b), {}).get("mig", np.nan) for b in g["beta"]], 0.4, label="document")
    ax.set_xticks(x, [f"beta = {b:g}" for b in g["beta"]])
    ax.set(ylabel="MIG")
    ax.legend(fontsize=8)
    path = out_dir / f"{PREFIX}_mig.png"
    save_figure(fig, path)
    return path


def _trajectory(traj: pd.DataFrame, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    gaps = [c for c in traj.columns if c.startswith("gap_")]
    stats = traj.groupby(["beta", "images"])[["mig", *gaps]].agg(["mean", "std"]).reset_index()
    fig, axes = plt.subplots(1, 1 + len(gaps), figsize=(3.6 * (1 + len(gaps)), 3.3), squeeze=False, sharey=True)
    for beta, s in stats.groupby("beta"):
        x = s["images"].to_numpy() / 1e6
        for ax, col in zip(axes[0], ["mig", *gaps]):
            m, sd = s[(col, "mean")].to_numpy(), s[(col, "std")].fillna(0).to_numpy()
            ax.plot(x, m, label=f"beta = {beta:g}", lw=1.3)
            ax.fill_between(x, m - sd, m + sd, alpha=0.2)
    for beta, doc in DOCUMENT.items():
        if beta in set(traj["beta"]):
            axes[0, 0].axhline(doc["mig"], ls=":", lw=0.8, color="k")
    axes[0, 0].set(title="MIG (dotted: the document's)", xlabel="images seen (millions)", ylabel="MIG")
    axes[0, 0].legend(fontsize=8)
    for ax, col in zip(axes[0, 1:], gaps):
        ax.set(title=f"gap: {col[4:]}", xlabel="images seen (millions)")
    path = out_dir / f"{PREFIX}_trajectory.png"
    save_figure(fig, path)
    return path


def make_figures(out_dir: str | Path) -> list[Path]:
    """Loss curves (fig 2, 4), reconstructions (fig 3, 5), PCA (fig 6), traversals, MIG bars,
    and MIG over training where the run scored it."""
    out_dir = Path(out_dir)
    losses, mig = _read(out_dir, "losses"), _read(out_dir, "mig")
    runs = _first_seeds(mig)
    paths = _loss_curves(losses, out_dir)
    paths += [_reconstructions(runs, out_dir), _panels(runs, out_dir, "pca", 4, _draw_pca),
              _panels(runs, out_dir, "traversals", 5, _draw_traversal), _mig_bars(mig, out_dir)]
    if (out_dir / f"{PREFIX}_trajectory.csv").exists():
        paths.append(_trajectory(_read(out_dir, "trajectory"), out_dir))
    return paths


# A results folder's own commentary on its numbers, written by hand and kept beside the CSVs;
# the report includes it verbatim after the tables.
NOTES = f"{PREFIX}_notes.md"


def _pm(values: pd.Series, fmt: str) -> str:
    if len(values) > 1:
        return f"{values.mean():{fmt}} +- {values.std():{fmt}}"
    return f"{values.mean():{fmt}}"


def summary_markdown(out_dir: str | Path) -> str:
    """The REPORT.md section: our MIG / end recon / KL per beta (mean +- std over seeds) beside the document's."""
    out_dir = Path(out_dir)
    mig = _read(out_dir, "mig")
    gap_cols = [c for c in mig.columns if c.startswith("gap_")]
    lines = ["## beta-VAE on dSprites", ""]
    cfg_path = out_dir / f"{PREFIX}_config.json"
    if cfg_path.exists():
        import json

        info = json.loads(cfg_path.read_text())
        c = info["config"]
        size = c["train_size"] or "full grid (737,280)"
        budget = (f"{c['steps']:,} steps ({c['steps'] * c['batch_size'] / 1e6:.2f}M images) on the {size} images"
                  if c.get("steps") else f"{c['epochs']} epochs of {size} images")
        lines += [f"Profile `{info.get('profile')}`: {c['arch']} model, latent dim {c['latent_dim']}, "
                  f"{budget}, batch {c['batch_size']}, Adam lr {c['lr']:g}, precision {info.get('precision', 'fp32')}, "
                  f"seeds {info['seeds']}; MIG ({c['num_bins']} bins) on {c['eval_size'] or 'all 737,280'} images.", ""]
    lines += ["| beta | seeds | MIG | MIG (doc) | MIG per seed | recon | recon (doc) | KL | KL (doc) | active dims |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for beta, g in mig.groupby("beta"):
        doc = DOCUMENT.get(float(beta), {})
        per_seed = ", ".join(f"{m:.3f}" for m in g.sort_values("seed")["mig"])
        lines.append(f"| {beta:g} | {len(g)} | {_pm(g['mig'], '.4f')} | {doc.get('mig', '-')} | {per_seed} | "
                     f"{_pm(g['recon'], '.1f')} | ~{doc.get('recon', '-')} | {_pm(g['kl'], '.1f')} | ~{doc.get('kl', '-')} | "
                     f"{_pm(g['active_dims'], '.1f')} |")
    lines += ["", "Per-factor MIG gaps (mean over seeds):", "",
              "| beta | " + " | ".join(c[4:] for c in gap_cols) + " |", "|---:|" + "---:|" * len(gap_cols)]
    for beta, g in mig.groupby("beta"):
        lines.append(f"| {beta:g} | " + " | ".join(f"{g[c].mean():.3f}" for c in gap_cols) + " |")
    traj_path = out_dir / f"{PREFIX}_trajectory.csv"
    if traj_path.exists():
        traj = pd.read_csv(traj_path)
        lines += ["", "MIG over training (encoder means of the fixed scoring images; mean +- sd over the seeds "
                  "scored at each step):", "",
                  "| beta | images seen | seeds | MIG | seconds (mean) |", "|---:|---:|---:|---:|---:|"]
        for beta, g in traj.groupby("beta"):
            steps = [s for _, s in g.groupby("images")]
            picks = sorted(set(np.linspace(0, len(steps) - 1, min(5, len(steps))).round().astype(int)))
            for i in picks:
                r = steps[i]
                lines.append(f"| {beta:g} | {r['images'].iloc[0] / 1e6:.2f}M | {len(r)} | {_pm(r['mig'], '.4f')} | "
                             f"{r['seconds'].mean():.0f} |")
    lines += ["", "Recon is the Bernoulli BCE summed over the 4,096 pixels and KL the analytic KL, per sample, "
              "on the evaluation images with one posterior sample each; the document's values are single runs "
              "read off its plots.", ""]
    notes = out_dir / NOTES
    if notes.exists():  # hand-written: where and why this run differs from the document
        lines += [notes.read_text().strip(), ""]
    return "\n".join(lines)
