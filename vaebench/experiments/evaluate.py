"""Re-scores trained beta-VAE models without training: MIG of saved models (``load_vae`` files,
such as the committed ``results/cpu/models/*.pt``) on random dSprites grid images, with the
disentanglement_lib protocol (encoder means, ``num_bins`` equal-width bins per latent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from vaebench.experiments import training
from vaebench.experiments.beta_vae import encode_means, score_means
from vaebench.models import load_vae
from vaebench.utils import io


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
                 progress: bool = True) -> pd.DataFrame:
    """One row per model: file, beta, seed, step (where the file records them), mig, gap_<factor>,
    active_dims. ``size`` random grid images (None: the whole grid), the same for every model."""
    from vaebench.data.dsprites import load_dsprites

    if size is not None and size < 2:
        raise ValueError(f"evaluate: size must be >= 2 images or None (the full grid), got {size}")
    files = model_files(paths)
    data = load_dsprites(data_path)
    n = len(data)
    indices = np.arange(n) if size is None or size >= n else np.random.default_rng(seed).choice(n, size, replace=False)
    resolved = training.resolve_precision(precision, device)
    rows = []
    for path in tqdm(files, desc="evaluate", unit="model", disable=not progress):
        state = io.load_torch(path)  # data only: a crafted file is refused, never run
        model = load_vae(state, map_location=device, source=path)
        means = encode_means(model, data, indices, device=device, precision=resolved)
        rows.append({"model": str(path), "beta": state.get("beta"), "seed": state.get("seed"),
                     "step": state.get("step"), **score_means(data, means, indices, num_bins),
                     "images": len(indices), "precision": resolved})
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per beta over the models scored (e.g. seeds pooled from several results folders): n, and
    the mean, sd (n - 1), min and max of MIG. Models that do not record a beta are left out."""
    known = table.dropna(subset=["beta"])
    g = known.groupby("beta", sort=True)["mig"]
    out = pd.DataFrame({"n": g.size(), "mig_mean": g.mean(), "mig_sd": g.std(ddof=1), "mig_min": g.min(),
                        "mig_max": g.max()})
    return out.reset_index()


def format_table(table: pd.DataFrame) -> str:
    cols = [c for c in table.columns if c in ("beta", "seed", "step", "mig", "active_dims") or c.startswith("gap_")]
    lines = []
    for _, r in table.iterrows():
        values = " ".join(f"{c}={r[c]:.4f}" if isinstance(r[c], float) else f"{c}={r[c]}" for c in cols)
        lines.append(f"{r['model']}: {values}")
    for r in summarize(table).itertuples():
        sd = "" if np.isnan(r.mig_sd) else f" +- {r.mig_sd:.4f}"
        lines.append(f"beta={r.beta:g}: mig={r.mig_mean:.4f}{sd} over {r.n} model(s) "
                     f"(min {r.mig_min:.4f}, max {r.mig_max:.4f})")
    return "\n".join(lines) + "\n"
