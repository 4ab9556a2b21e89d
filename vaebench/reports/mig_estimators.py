"""The two MIG estimators side by side on every committed model: disentanglement_lib's (posterior
means binned into 20 equal-width bins per latent, plug-in mutual information with each factor on
the whole grid, gaps averaged over all five factors) and Chen et al.'s (one sample z per image of
the grid, H(z_j) and H(z_j | v_k) by Monte Carlo with q(z_j) the mixture of the posteriors,
normalised by log |V_k|, shape left out).

Reads ``mig_chen.csv`` (``evaluate --metrics mig_chen``: one row per model file) and, from each
model file itself, the full-grid MIG and per-factor gaps its training run recorded
(``metrics``); writes ``mig_estimators.csv`` (the join), ``mig_estimators.png`` and a REPORT
section. On dSprites every factor is uniform over the grid, so H(v_k) = log |V_k|: the two
normalisations agree, and what differs is the MI estimate and the factors averaged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vaebench.utils import io
from vaebench.utils.io import save_figure

CHEN_FACTORS = ("scale", "orientation", "posX", "posY")
CAPTIONS = {
    "mig_estimators.png": "Chen et al.'s MIG against disentanglement_lib's on every committed model: the score "
                          "(left; disentanglement_lib's over its five factors, and over Chen's four without shape) "
                          "and the per-factor gaps (right), one dot per model (and factor), the diagonal for equality.",
}


def _model_path(out_dir: Path, name: str) -> Path:
    """A model path as the CSV names it: relative to the working directory or to the repository
    that holds ``out_dir`` (``results/<folder>``)."""
    p = Path(name)
    return p if p.exists() or p.is_absolute() else Path(out_dir).resolve().parents[1] / p


def _read(out_dir: Path) -> pd.DataFrame:
    out_dir = Path(out_dir)
    path = out_dir / "mig_chen.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m vaebench evaluate MODELS --metrics mig_chen "
                                f"--csv {path}` first")
    chen = pd.read_csv(path)
    rows = []
    for _, r in chen.iterrows():
        metrics = io.load_torch(_model_path(out_dir, r["model"]))["metrics"]
        gaps = {f: metrics[f"gap_{f}"] for f in ("shape", *CHEN_FACTORS)}
        rows.append({"model": r["model"], "folder": Path(r["model"]).parts[-3], "mig_dlib": metrics["mig"],
                     "mig_dlib_no_shape": float(np.mean([gaps[f] for f in CHEN_FACTORS])), "mig_chen": r["mig_chen"],
                     **{f"dlib_gap_{f}": g for f, g in gaps.items()},
                     **{f"chen_gap_{f}": r[f"chen_gap_{f}"] for f in CHEN_FACTORS}})
    return pd.DataFrame(rows)


def comparison(out_dir) -> pd.DataFrame:
    """The join, also written to ``mig_estimators.csv``."""
    table = _read(out_dir)
    io.write_csv(Path(out_dir) / "mig_estimators.csv", table)
    return table


def make_figures(out_dir) -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    t = comparison(out_dir)
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.2))
    ax = axes[0]
    ax.scatter(t["mig_dlib"], t["mig_chen"], s=14, label="disentanglement_lib, 5 factors")
    ax.scatter(t["mig_dlib_no_shape"], t["mig_chen"], s=14, marker="x", label="disentanglement_lib, shape left out")
    top = max(t[["mig_dlib", "mig_dlib_no_shape", "mig_chen"]].max().max(), 0.05) * 1.05
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set(xlabel="disentanglement_lib MIG (binned means)", ylabel="Chen et al. MIG (sampled posteriors)",
           title="MIG per model", xlim=(0, top), ylim=(0, top))
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, f in enumerate(CHEN_FACTORS):
        ax.scatter(t[f"dlib_gap_{f}"], t[f"chen_gap_{f}"], s=12, color=f"C{i}", label=f)
    top = max(max(t[f"dlib_gap_{f}"].max(), t[f"chen_gap_{f}"].max()) for f in CHEN_FACTORS) * 1.05
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set(xlabel="disentanglement_lib gap", ylabel="Chen et al. gap", title="gap per factor", xlim=(0, top),
           ylim=(0, top))
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "mig_estimators.png"
    save_figure(fig, path)
    return [path]


def _spearman(a: pd.Series, b: pd.Series) -> float:
    return float(a.rank().corr(b.rank()))


def summary_markdown(out_dir) -> str:
    t = _read(out_dir)
    ratio = t["mig_chen"] / t["mig_dlib"]
    diff = t["mig_chen"] - t["mig_dlib_no_shape"]
    gap_d = np.concatenate([t[f"chen_gap_{f}"] - t[f"dlib_gap_{f}"] for f in CHEN_FACTORS])
    lines = ["## Two MIG estimators", "",
             f"Chen et al.'s MIG (10,000 samples per entropy) against disentanglement_lib's full-grid MIG on "
             f"{len(t)} models. Rank correlation of the two scores: {_spearman(t['mig_dlib'], t['mig_chen']):.2f} "
             f"(Spearman); Chen / disentanglement_lib: median {ratio.median():.2f}, range {ratio.min():.2f}-"
             f"{ratio.max():.2f}. With shape left out of disentanglement_lib's average too (the same four factors), "
             f"Chen's minus it: median {diff.median():+.3f}, range {diff.min():+.3f} to {diff.max():+.3f}; per "
             f"factor gap, Chen's minus disentanglement_lib's: median {np.median(gap_d):+.3f}, "
             f"range {gap_d.min():+.3f} to {gap_d.max():+.3f}.", "",
             "| model | disentanglement_lib MIG | same, without shape | Chen et al. MIG |", "|---|---:|---:|---:|"]
    for _, r in t.iterrows():
        lines.append(f"| {r['model']} | {r['mig_dlib']:.3f} | {r['mig_dlib_no_shape']:.3f} | {r['mig_chen']:.3f} |")
    return "\n".join(lines) + "\n"
