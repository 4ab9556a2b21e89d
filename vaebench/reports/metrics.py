"""Figures and the REPORT.md section of the metric suite: every metric against beta, the rank
correlation between the metrics over all models (Locatello et al. 2019, Fig. 2 style), and the
document's two qualitative readings (shapes separating in the PCA at beta 8; beta 8 dropping
orientation) as numbers. Reads ``beta_vae_metrics.csv`` (written by ``run beta-vae``) or, where a
folder has none, ``evaluation.csv`` (written by ``evaluate``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from vaebench.metrics.suite import HEADLINE
from vaebench.reports.plots import dots_by_group
from vaebench.utils.io import save_figure

TABLES = ("beta_vae_metrics.csv", "evaluation.csv")
NOTES = "metrics_notes.md"  # a results folder's hand-written reading of its metric table
CAPTIONS = {
    "metrics_vs_beta.png": "Every metric of the suite against beta: one dot per model, the bar the mean and "
                           "sd over seeds.",
    "metrics_rank_correlation.png": "Spearman rank correlation between the metrics over all models of this folder "
                                    "(the style of Locatello et al. 2019, Fig. 2).",
}


def _read(out_dir: Path) -> pd.DataFrame:
    for name in TABLES:
        path = Path(out_dir) / name
        if path.exists():
            return pd.read_csv(path)
    raise FileNotFoundError(f"{out_dir} holds no metric table ({' or '.join(TABLES)})")


def headline_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in HEADLINE if c in table and table[c].notna().any()]


def _vs_beta(table: pd.DataFrame, out_dir: Path) -> Path:
    groups = [(f"{b:g}", g) for b, g in table.dropna(subset=["beta"]).groupby("beta")]
    return dots_by_group(groups, headline_columns(table), out_dir / "metrics_vs_beta.png", xlabel="beta")


def rank_correlation(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation between the headline metrics that vary over the models."""
    cols = [c for c in headline_columns(table) if table[c].nunique() > 1]
    return table[cols].corr(method="spearman")


def _correlation(table: pd.DataFrame, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    corr = rank_correlation(table)
    fig, ax = plt.subplots(figsize=(0.5 * len(corr) + 2.5, 0.5 * len(corr) + 1.8))
    im = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="RdBu_r")
    labels = [HEADLINE[c] for c in corr.columns]
    ax.set_xticks(range(len(labels)), labels, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i in range(len(corr)):
        for j in range(len(corr)):
            ax.text(j, i, f"{corr.iat[i, j] * 100:.0f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.7, label="Spearman rank correlation")
    ax.set_title(f"over {len(table)} models", fontsize=9)
    fig.tight_layout()
    path = out_dir / "metrics_rank_correlation.png"
    save_figure(fig, path)
    return path


def make_figures(out_dir) -> list[Path]:
    out_dir = Path(out_dir)
    table = _read(out_dir)
    paths = [_vs_beta(table, out_dir)]
    if len(table) > 2 and len(rank_correlation(table)) > 1:
        paths.append(_correlation(table, out_dir))
    return paths


def mean_sd(v: pd.Series) -> str:
    v = v.dropna()
    if not len(v):
        return "-"
    return f"{v.mean():.3f} +- {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def summary_markdown(out_dir) -> str:
    out_dir = Path(out_dir)
    table = _read(out_dir).dropna(subset=["beta"])
    cols = headline_columns(table)
    betas = sorted(table["beta"].unique())
    groups = {b: table[table["beta"] == b] for b in betas}
    scales = sorted({json.loads(t).get("scale", 1.0) for t in table["settings"].dropna()}) if "settings" in table else []
    at = ("its study sizes" if scales == [1.0] else
          f"its study sizes x {', '.join(f'{x:g}' for x in scales)}" if scales else "the sizes its rows record")
    lines = ["## Disentanglement metrics", "",
             f"The metric suite (`vaebench.metrics`: disentanglement_lib's definitions, at {at}) on {len(table)} "
             f"models; mean +- sd over the seeds of each beta.", "",
             "| metric | " + " | ".join(f"beta {b:g} (n = {len(groups[b])})" for b in betas) + " |",
             "|---|" + "---:|" * len(betas)]
    for c in cols:
        lines.append(f"| {HEADLINE[c]} | " + " | ".join(mean_sd(groups[b][c]) for b in betas) + " |")
    claims = []
    if "pca_shape_knn_accuracy" in table:
        per = ", ".join(f"beta {b:g}: {mean_sd(groups[b]['pca_shape_knn_accuracy'])}" for b in betas)
        claims.append(f"- **Shapes in the 2-D PCA of 5,000 means** (the document: they separate at beta 8, mix at "
                      f"beta 1 and 4). 5-fold k-NN (k = 15) accuracy of shape, chance 1/3: {per}.")
    orient = [c for c in ("dci_accuracy_orientation", "info_orientation", "gap_orientation") if c in table]
    if orient:
        names = {"dci_accuracy_orientation": "its DCI test accuracy (chance 1/40)",
                 "info_orientation": "the share of its entropy held by its most informative code",
                 "gap_orientation": "its MIG gap"}
        parts = "; ".join(f"{names[c]}: " + ", ".join(f"beta {b:g} {mean_sd(groups[b][c])}" for b in betas)
                          for c in orient)
        claims.append(f"- **Orientation** (the document: beta 8's traversals drop it). {parts}.")
    if claims:
        lines += ["", "The document's readings of its figures, as numbers:", "", *claims]
    corr = rank_correlation(table)
    if len(corr) > 1 and "mig" in corr:
        mig_corr = corr["mig"].drop("mig").sort_values(ascending=False)
        lines += ["", "Spearman rank correlation of MIG with the others over these models: " +
                  ", ".join(f"{HEADLINE[c]} {v:+.2f}" for c, v in mig_corr.items()) + "."]
    notes = out_dir / NOTES
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"
