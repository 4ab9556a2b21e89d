"""Figures and report section of the speed comparison, from ``bench.csv`` alone."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from vaebench.utils.io import save_figure

# One sentence per figure, for REPORT.md ({device} is each benchmarked device).
CAPTIONS = {
    "bench_{device}.png": "Time per call against problem size on log-log axes (top) and speedup over the baseline "
                          "(bottom: eager PyTorch for reparam+KL, scikit-learn per pair for MIG), one line per implementation.",
}
MARKERS = {"eager": "o", "compile": "s", "fused": "^", "fused_uncached": "v", "reference": "o", "vectorized": "s"}


def _read(out_dir: Path):
    path = Path(out_dir) / "bench.csv"
    if not path.exists():
        return None, None
    bw = Path(out_dir) / "bench_bandwidth.csv"
    return pd.read_csv(path), (pd.read_csv(bw) if bw.exists() else None)


def make_figures(out_dir) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    df, _ = _read(out_dir)
    if df is None:
        return []
    paths = []
    for device, dev_df in df.groupby("device"):
        panels = [("reparam_kl", m) for m in ("forward", "forward_backward")] + [("mig", "score")]
        fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7.5), squeeze=False)
        for col, (op, mode) in enumerate(panels):
            sub = dev_df[(dev_df.op == op) & (dev_df["mode"] == mode)]
            for impl, g in sub.groupby("impl"):
                g = g.sort_values("n")
                axes[0, col].loglog(g.n, g.median_ms, marker=MARKERS.get(impl, "x"), label=impl)
                axes[1, col].semilogx(g.n, g.speedup_vs_baseline, marker=MARKERS.get(impl, "x"), label=impl)
            title = f"{op} {mode.replace('_', '+')}" if op == "reparam_kl" else "MIG (D=10, K=5)"
            axes[0, col].set(title=title, xlabel="elements B*D" if op == "reparam_kl" else "points N",
                             ylabel="median time (ms)")
            base = "eager" if op == "reparam_kl" else "sklearn per-pair"
            axes[1, col].set(xlabel=axes[0, col].get_xlabel(), ylabel=f"speedup vs {base}")
            axes[1, col].axhline(1, color="gray", lw=0.8)
            for ax in axes[:, col]:
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=8)
        fig.suptitle(f"vaebench speed, {device}")
        fig.tight_layout()
        path = out_dir / f"bench_{device}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths


def summary_markdown(out_dir) -> str:
    df, bw = _read(out_dir)
    if df is None:
        return ""
    lines = ["## Speed: fused kernels vs eager PyTorch", ""]
    if bw is not None:
        for r in bw.itertuples():
            lines.append(f"- {r.device}: {r.description}; measured copy bandwidth {r.copy_bandwidth_GBps:.1f} GB/s "
                         f"(the floor: a kernel can at best move its bytes at this rate).")
    lines.append("")
    for device, dev in df.groupby("device"):
        rk = dev[dev.op == "reparam_kl"]
        if not rk.empty:
            big = rk[rk.n == rk.n.max()]
            b, d = int(big.batch.iloc[0]), int(big.dim.iloc[0])
            lines += [f"reparam + KL on {device} at (B, D) = ({b}, {d}), median of repeated calls after warm-up:", "",
                      "| mode | impl | median ms | speedup vs eager | speedup vs torch.compile | share of copy bandwidth |",
                      "|---|---|---|---|---|---|"]
            for r in big.itertuples():
                compiled = big[(big["mode"] == r.mode) & (big.impl == "compile")].median_ms
                vs_compile = f"{compiled.iloc[0] / r.median_ms:.1f}x" if len(compiled) else "n/a"
                lines.append(f"| {r.mode} | {r.impl} | {r.median_ms:.2f} | {r.speedup_vs_baseline:.1f}x | {vs_compile} | "
                             f"{100 * r.fraction_of_floor:.1f}% |")
            if (big.impl == "fused_uncached").any():
                lines += ["", "`fused_uncached` is the fused op with its CPU output cache off: each output lands on fresh "
                              "pages that the OS zero-fills on first touch, as eager's and torch.compile's outputs do."]
            lines.append("")
        mg = dev[dev.op == "mig"]
        if not mg.empty:
            lines += [f"MIG on {device} (D=10 latents, K=5 factors, 20 bins):", "",
                      "| N | impl | median ms | speedup vs scikit-learn per pair |", "|---|---|---|---|"]
            for r in mg.sort_values(["n", "impl"]).itertuples():
                lines.append(f"| {r.n} | {r.impl} | {r.median_ms:.1f} | {r.speedup_vs_baseline:.1f}x |")
            lines.append("")
        ld = dev[dev.op == "gaussian_logdensity_lse"]
        if not ld.empty:
            lines += [f"Pairwise Gaussian log-density + log-sum-exp on {device} (B = M, D = {int(ld.dim.iloc[0])}, forward + "
                      "backward; peak = extra resident memory of one call, in a fresh process):", "",
                      "| B = M | impl | median ms | speedup vs eager | peak MB | memory vs eager |", "|---|---|---|---|---|---|"]
            for b, g in ld.groupby("batch"):
                eager_peak = g.loc[g.impl == "eager", "peak_mb"]
                for r in g.itertuples():
                    peak = "" if pd.isna(r.peak_mb) else f"{r.peak_mb:.1f}"
                    ratio = (f"{eager_peak.iloc[0] / r.peak_mb:.0f}x less" if len(eager_peak) and not pd.isna(r.peak_mb)
                             and r.peak_mb > 0 and r.impl != "eager" else "")
                    lines.append(f"| {b} | {r.impl} | {r.median_ms:.2f} | {r.speedup_vs_baseline:.1f}x | {peak} | {ratio} |")
            lines.append("")
        tr = dev[dev.op.str.startswith("train_")]
        if not tr.empty:
            lines += [f"beta-VAE training step on {device} (batch {int(tr.batch.iloc[0])}, Adam, fused reparam+KL), "
                      "per speed setting (bf16 = bfloat16 autocast, cl = channels_last, compile = torch.compile; "
                      "default_malloc = glibc's default thresholds, without vaebench's allocator tuning, in a fresh "
                      "process; 2proc = two 1-thread processes side by side, effective time per step of both "
                      "together):", "",
                      "| model | setting | median ms | images/s | speedup vs fp32 | vs fp32 with default malloc |",
                      "|---|---|---|---|---|---|"]
            for arch, g in tr.groupby("op", sort=False):
                before = g.loc[g.impl == "fp32_default_malloc", "median_ms"]
                for r in g.itertuples():
                    vs_before = f"{before.iloc[0] / r.median_ms:.2f}x" if len(before) else ""
                    lines.append(f"| {arch[6:]} | {r.impl} | {r.median_ms:.1f} | {1e3 * r.batch / r.median_ms:.0f} | "
                                 f"{r.speedup_vs_baseline:.2f}x | {vs_before} |")
            lines.append("")
    lines += _metrics_lines(Path(out_dir))
    return "\n".join(lines) + "\n"


def _metrics_lines(out_dir: Path) -> list[str]:
    path = out_dir / "bench_metrics.csv"
    if not path.exists():
        return []
    m = pd.read_csv(path)
    first = m.iloc[0]
    lines = [f"The metric suite on {first['model']} ({first['device']}), at disentanglement_lib's study sizes x "
             f"{first['scale']:g}, each case timed once from nothing encoded:", "",
             "| case | impl | seconds | images encoded | speedup vs straightforward | BetaVAE score | FactorVAE score |",
             "|---|---|---|---|---|---|---|"]
    for r in m.itertuples():
        speed = "" if pd.isna(r.speedup_vs_straightforward) else f"{r.speedup_vs_straightforward:.1f}x"
        lines.append(f"| {r.case} | {r.impl} | {r.seconds:.1f} | {r.images:,} | {speed} | {r.beta_vae:.3f} | "
                     f"{r.factor_vae:.3f} |")
    suite = m[m.case == "suite"]
    if len(suite):
        parts = {c[8:]: suite[c].iloc[0] for c in m.columns if c.startswith("seconds_") and pd.notna(suite[c].iloc[0])}
        lines += ["", "The suite's seconds by metric (each includes encoding the images it is the first to need): " +
                  ", ".join(f"{k} {v:.1f}" for k, v in parts.items()) + "."]
    return lines + [""]
