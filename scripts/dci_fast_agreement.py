"""How far DCI with ``fast=True`` (HistGradientBoostingClassifier, permutation importance) is from
the reference's GradientBoostingClassifier: both on the same i.i.d. points of the suite (seed 0,
study sizes) for every model of the given metric tables (beta_vae_metrics.csv / evaluation.csv,
which hold the default's numbers). Prints the agreement the README quotes.

    python scripts/dci_fast_agreement.py results/cpu/beta_vae_metrics.csv results/cpu_bs64/evaluation.csv
"""
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from vaebench.data.dsprites import load_dsprites
from vaebench.experiments.scoring import representation
from vaebench.metrics import score_suite
from vaebench.models import load_vae

COLUMNS = ("dci_disentanglement", "dci_completeness", "dci_informativeness_test")


def model_path(table: Path, row) -> Path:
    if "model" in row and isinstance(row["model"], str):
        return Path(row["model"])
    return table.parent / "models" / f"{row['unit']}.pt"


def main(tables: list[str]) -> None:
    data = load_dsprites()
    rows = []
    for t in map(Path, tables):
        for _, r in pd.read_csv(t).iterrows():
            t0 = time.perf_counter()
            fast = score_suite(representation(load_vae(model_path(t, r)), data), data, seed=0, metrics="dci",
                               fast_dci=True, n_jobs=1)
            rows.append({"model": str(model_path(t, r)), "seconds_fast": time.perf_counter() - t0,
                         "seconds_default": r.get("seconds_dci", np.nan),
                         **{c: r[c] for c in COLUMNS}, **{f"{c}_fast": fast[c] for c in COLUMNS}})
    out = pd.DataFrame(rows)
    for c in COLUMNS:
        diff = (out[f"{c}_fast"] - out[c]).abs()
        rho = spearmanr(out[c], out[f"{c}_fast"]).statistic
        print(f"{c}: mean |fast - default| {diff.mean():.3f} (max {diff.max():.3f}), Spearman {rho:.2f} over {len(out)}")
    print(f"seconds per model: default {out.seconds_default.median():.0f} (from the tables), fast "
          f"{out.seconds_fast.median():.0f} (median)")


if __name__ == "__main__":
    main(sys.argv[1:])
