"""Figure pieces the report modules share: a grid of panels, rows of images, and one dot per model
per group with the group's mean and sd beside it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vaebench.metrics.suite import HEADLINE
from vaebench.utils.io import save_figure


def panel_grid(n: int, ncol: int, width: float, height: float):
    """``(fig, axes)`` with at least ``n`` panels in rows of ``ncol`` (axes as a flat list)."""
    import matplotlib.pyplot as plt

    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, height * nrow), squeeze=False)
    return fig, list(axes.flat)


def finish_grid(fig, axes: list, used: int, path: Path) -> Path:
    """Blanks the panels past ``used``, lays the figure out and saves it (PNG and PDF)."""
    for ax in axes[used:]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
    return path


def dots_by_group(groups: list[tuple[str, pd.DataFrame]], cols: list[str], path: Path, *, xlabel: str | None = None,
                  rotate: bool = False) -> Path:
    """One panel per metric column: each group's models as dots (one colour per group), and the
    group's mean +- sd as a bar beside them."""
    fig, axes = panel_grid(len(cols), 4, 3.2, 2.6)
    for ax, col in zip(axes, cols):
        for i, (_, g) in enumerate(groups):
            v = g[col].dropna()
            ax.scatter(np.full(len(v), i) + np.linspace(-0.12, 0.12, max(len(v), 1))[:len(v)], v, s=12,
                       color=f"C{i}", alpha=0.7)
            if len(v):
                ax.errorbar(i + 0.3, v.mean(), yerr=v.std() if len(v) > 1 else 0, fmt="_", color="k", capsize=3)
        ax.set_xticks(range(len(groups)), [label for label, _ in groups], rotation=45 if rotate else 0,
                      ha="right" if rotate else "center", fontsize=7 if rotate else None)
        ax.set_title(HEADLINE[col], fontsize=9)
        if xlabel:
            ax.set_xlabel(xlabel, fontsize=8)
    return finish_grid(fig, axes, len(cols), path)


def image_rows(rows: list[tuple[str, np.ndarray]], path: Path, size: float = 1.2) -> Path:
    """One row of images per ``(label, uint8 images [n, H, W])``, the label on the left (rows may
    hold different counts: a short row leaves blanks)."""
    import matplotlib.pyplot as plt

    n = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, (size + 0.1) * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            ax.spines[:].set_visible(c < len(images))
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    save_figure(fig, path)
    return path


def setting_groups(table: pd.DataFrame, label) -> list[tuple[str, pd.DataFrame]]:
    """``(label(method, param, setting), rows)`` per (method, setting) of a grid's table, in the
    order they first appear."""
    order = list(dict.fromkeys(zip(table["method"], table["param"], table["setting"])))
    return [(label(*k), table[(table["method"] == k[0]) & (table["setting"] == k[2])]) for k in order]


def first_seed_arrays(groups, out_dir: Path, prefix: str) -> list[tuple[str, int, dict]]:
    """``(label, seed, arrays)`` of each group's first seed, where its unit's arrays file exists."""
    out = []
    for label, g in groups:
        row = g.sort_values("seed").iloc[0]
        seed = int(row["seed"])
        path = Path(out_dir) / f"{prefix}_arrays_{row['method']}_{row['param']}{row['setting']:g}_seed{seed}.npz"
        if path.exists():
            with np.load(path) as f:
                out.append((label, seed, dict(f)))
    return out
