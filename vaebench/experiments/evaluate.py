"""Re-scores trained models without training: the metric suite (``vaebench.metrics``) on saved
models (``load_vae`` files, such as the committed ``results/cpu/models/*.pt``, or anyone's), one
row per model. Model files are read as data (weights only), never as code.

MIG is scored on ``size`` random grid images (or the full grid), as the runs score it; the other
metrics at disentanglement_lib's study sizes times ``scale``. With ``out``, the rows go to that CSV
as each model finishes; a rerun reuses rows of the same weights and settings instead of scoring
again."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vaebench.experiments import scoring
from vaebench.models import precision as prec
from vaebench.metrics import HEADLINE, SuiteSizes, parse_metrics


def model_files(paths: list[str | Path]) -> list[Path]:
    """``.pt`` files named directly, or found in folders (``models/*.pt`` first, else ``*.pt``)."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted((p / "models").glob("*.pt")) or sorted(p.glob("*.pt"))
            if not found:
                raise FileNotFoundError(f"evaluate: {p} holds no models (looked for {p}/models/*.pt and {p}/*.pt)")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"evaluate: no such file or folder: {p}")
    return files


def score_models(paths: list[str | Path], *, size: int | None = 10_000, seed: int = 0, device: str = "cpu",
                 precision: str = "fp32", num_bins: int = 20, data_path: str | None = None,
                 progress: bool = True, metrics="mig", scale: float = 1.0, n_jobs: int = 2,
                 out: str | Path | None = None, force: bool = False) -> pd.DataFrame:
    """One row per model: file, weights digest, method, param, setting or beta, seed, step (where
    the file records them), then the columns of ``metrics`` ("all" or names of
    ``vaebench.metrics.METRICS``): mig, gap_<factor>, active_dims on ``size`` random grid images
    (None: the whole grid), the same for every model; the others at the study sizes times ``scale``.
    ``seed`` fixes every draw."""
    from vaebench.data.dsprites import load_dsprites

    if size is not None and size < 2:
        raise ValueError(f"evaluate: --size must be >= 2 images or 'all' (the full grid), got {size}")
    wanted = parse_metrics(metrics)
    sizes = SuiteSizes(num_bins=num_bins).scaled(scale)
    files = model_files(paths)
    data = load_dsprites(data_path)
    n = len(data)
    indices = np.arange(n) if size is None or size >= n else np.random.default_rng(seed).choice(n, size, replace=False)
    resolved = prec.resolve_precision(precision, device)
    settings = {"metrics": list(wanted), "mig_images": len(indices), "seed": seed, "scale": scale,
                "num_bins": num_bins, "precision": resolved, "data": data.source}
    entries = [{"path": p, "model": str(p)} for p in files]
    return scoring.score_files(entries, data, Path(out) if out else None, settings=settings, seed=seed,
                               sizes=sizes, metrics=wanted, mig_indices=indices, device=device, precision=resolved,
                               n_jobs=n_jobs, progress=progress, key="model", force=force)


def _group(row: pd.Series) -> tuple[str, str, float] | None:
    """A model's family, group label and setting from what its file records: ``factor_vae gamma=10``
    for a method's model, ``beta=4`` for a beta-VAE (a method file's or a beta-VAE run's); None
    where the file records neither."""
    method, setting = row.get("method"), row.get("setting")
    if isinstance(method, str) and pd.notna(setting):
        label = f"{row.get('param')}={setting:g}"
        return method, label if method == "beta_vae" else f"{method} {label}", float(setting)
    beta = row.get("beta")
    return ("beta_vae", f"beta={beta:g}", float(beta)) if pd.notna(beta) else None


def summarize(table: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Per group (a method at one setting, e.g. seeds pooled from several results folders): n, and
    the mean, sd (n - 1), min and max of every headline metric present. Models whose file records
    no setting are left out."""
    columns = columns or [c for c in HEADLINE if c in table]
    keys = [_group(r) for _, r in table.iterrows()]
    rows = sorted((i for i, k in enumerate(keys) if k), key=lambda i: (keys[i][0], keys[i][2]))  # family, then setting
    known = table.iloc[rows].assign(group=[keys[i][1] for i in rows])
    g = known.groupby("group", sort=False)
    out = pd.DataFrame({"n": g.size()})
    for c in columns:
        out[f"{c}_mean"], out[f"{c}_sd"] = g[c].mean(), g[c].std(ddof=1)
        out[f"{c}_min"], out[f"{c}_max"] = g[c].min(), g[c].max()
    return out.reset_index()


def format_table(table: pd.DataFrame) -> str:
    cols = [c for c in table.columns if c in ("method", "setting", "beta", "seed", "step", "active_dims")
            or c in HEADLINE or c.startswith("gap_")]
    lines = []
    for _, r in table.iterrows():
        present = [c for c in cols if not pd.isna(r[c])]  # a beta-VAE file has no method, a method's no beta
        values = " ".join(f"{c}={r[c]:.4f}" if isinstance(r[c], float) else f"{c}={r[c]}" for c in present)
        lines.append(f"{r['model']}: {values}")
    summary = summarize(table)
    headline = [c for c in HEADLINE if c in table]
    for r in summary.to_dict("records"):
        parts = []
        for c in headline:
            sd = "" if np.isnan(r[f"{c}_sd"]) else f" +- {r[f'{c}_sd']:.4f}"
            parts.append(f"{c}={r[f'{c}_mean']:.4f}{sd}")
        lines.append(f"{r['group']} over {r['n']} model(s): " + " ".join(parts))
    if "mig" in headline:
        for r in summary.to_dict("records"):
            lines.append(f"{r['group']}: mig min {r['mig_min']:.4f}, max {r['mig_max']:.4f}")
    return "\n".join(lines) + "\n"
