"""``python -m vaebench bench``: kernel vs eager speed, side by side in one run.

Writes ``bench.csv`` with one row per (op, impl, device, mode, size):
median and IQR of the wall time, the speedup against the baseline
implementation of the same row group (``eager`` for reparam+KL, the per-pair
scikit-learn ``reference`` for MIG), and the fraction of the measured copy
bandwidth the fused kernel reaches (bytes it must move / time / bandwidth).
The pairwise Gaussian log-density rows (op ``gaussian_logdensity_lse``, forward + backward,
``batch`` = B = M components, ``dim`` = D) also carry ``peak_mb``: the extra resident memory of
one call, measured in a fresh process (``vaebench.bench.logdensity_cases.peak_bytes``).
The bandwidth itself is in ``bench_bandwidth.csv``, the metric suite's timings (on the CPU) in
``bench_metrics.csv``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from vaebench.bench import logdensity_cases, reparam_cases, training_cases
from vaebench.bench.timing import copy_bandwidth, time_call
from vaebench.experiments.config import config_from_profile
from vaebench.utils import io
from vaebench.utils.provenance import device_description, provenance

COLUMNS = ["op", "impl", "device", "mode", "batch", "dim", "n", "factors", "median_ms", "iqr_ms", "repeats",
           "speedup_vs_baseline", "bytes", "fraction_of_floor", "peak_mb"]


@dataclass(frozen=True)
class BenchConfig:
    # (B, D) of the reparam+KL sweep: from a small VAE batch to a large one.
    reparam_sizes: tuple = ((256, 10), (4096, 32), (16384, 64), (65536, 128))
    # N of the MIG sweep (D latents x K factors fixed, as for dSprites: D=10, K=5).
    mig_sizes: tuple = (10_000, 100_000, 737_280)
    mig_dim: int = 10
    mig_factors: int = 5
    # The per-pair scikit-learn reference is slow; it is timed up to this N.
    mig_reference_max_n: int = 737_280
    repeats: int = 7
    reparam_impls: tuple = reparam_cases.IMPLS
    mig_impls: tuple = ("reference", "vectorized", "fused")
    # B = M of the pairwise Gaussian log-density sweep (D fixed): a small batch, a usual one, and
    # beta-TCVAE's batch of 2048; eager forms [B, M, D] terms. Peak memory in fresh processes.
    logdensity_sizes: tuple = (64, 256, 2048)
    logdensity_dim: int = 10
    logdensity_impls: tuple = logdensity_cases.IMPLS
    logdensity_memory: bool = True
    # beta-VAE training steps (batch images each) per speed setting; fp32 is the baseline.
    train_archs: tuple = ("conv", "mlp")
    train_batch: int = 64
    train_settings: tuple = tuple(training_cases.SETTINGS)
    # ... and in fresh processes (training_cases.PROCESS_SETTINGS), for the first of train_archs only.
    train_process_settings: tuple = tuple(training_cases.PROCESS_SETTINGS)
    # The metric suite on the committed conv model (bench_metrics.csv), at disentanglement_lib's
    # study sizes times this (0: not timed): the straightforward BetaVAE + FactorVAE scores
    # against vaebench's, and the whole suite. At 1 the pair takes minutes; the gain grows with
    # the sizes (the share of images drawn more than once).
    metric_scale: float = 0.1
    metric_suite: str = "all"


PROFILES = {
    "smoke": BenchConfig(reparam_sizes=((256, 10), (2048, 32)), mig_sizes=(2_000, 20_000), repeats=3,
                         reparam_impls=("eager", "fused"), logdensity_sizes=(64,), logdensity_impls=("eager", "fused"),
                         logdensity_memory=False, train_archs=("mlp",), train_batch=16,
                         train_settings=("fp32", "bf16"), train_process_settings=("fp32_default_malloc",),
                         metric_scale=0.002, metric_suite="mig,beta_vae,factor_vae,sap"),
    "quick": BenchConfig(),
    "paper": BenchConfig(reparam_sizes=((256, 10), (1024, 10), (4096, 32), (16384, 64), (65536, 128), (262144, 128)),
                         repeats=15, metric_scale=1.0),
}


def _devices(device: str) -> list[str]:
    if device == "all":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    # Checked before any timing: without it the first CUDA tensor fails deep inside the
    # bandwidth probe with torch's assertion instead of a message about the device.
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch sees no CUDA device")
    if str(device) != "cpu" and not str(device).startswith("cuda"):
        raise ValueError(f"device must be cpu, cuda[:N] or all, got {device!r}")
    return [device]


def _bench_reparam(cfg: BenchConfig, device: str, bandwidth: float, bar) -> list[dict]:
    rows = []
    for mode in reparam_cases.MODES:
        for batch, dim in cfg.reparam_sizes:
            group = []
            for impl in cfg.reparam_impls:
                if impl == "fused_uncached" and device != "cpu":
                    bar.update()  # the output cache is the CPU op's
                    continue
                case = reparam_cases.make_case(impl, mode, batch, dim, device=device)
                t = time_call(case, device=device, warmup=2, repeats=cfg.repeats)
                nbytes = reparam_cases.bytes_moved(mode, batch, dim)
                group.append(dict(op="reparam_kl", impl=impl, device=device, mode=mode, batch=batch, dim=dim,
                                  n=batch * dim, factors=np.nan, median_ms=1e3 * t.median_s, iqr_ms=1e3 * t.iqr_s,
                                  repeats=t.repeats, bytes=nbytes, fraction_of_floor=nbytes / t.median_s / bandwidth))
                bar.update()
            _speedups(group, "eager")
            rows += group
    return rows


def _bench_logdensity(cfg: BenchConfig, device: str, bar) -> list[dict]:
    rows = []
    d = cfg.logdensity_dim
    for n in cfg.logdensity_sizes:
        group = []
        for impl in cfg.logdensity_impls:
            case = logdensity_cases.make_case(impl, n, n, d, device=device)
            # torch.compile compiles on its first calls: more warm-up for it.
            t = time_call(case, device=device, warmup=3 if impl == "compile" else 2, repeats=cfg.repeats)
            peak = logdensity_cases.peak_bytes(impl, n, n, d) if cfg.logdensity_memory and device == "cpu" else None
            group.append(dict(op="gaussian_logdensity_lse", impl=impl, device=device, mode=logdensity_cases.MODE,
                              batch=n, dim=d, n=n * n * d, factors=np.nan, median_ms=1e3 * t.median_s,
                              iqr_ms=1e3 * t.iqr_s, repeats=t.repeats, bytes=np.nan, fraction_of_floor=np.nan,
                              peak_mb=np.nan if peak is None else peak / 2**20))
            bar.update()
        _speedups(group, "eager")
        rows += group
    return rows


def _mig_inputs(n: int, d: int, k: int, device: str):
    g = torch.Generator().manual_seed(n)
    factors = torch.randint(0, 32, (n, k), generator=g)
    latents = factors[:, torch.arange(d) % k].float() + 0.5 * torch.randn(n, d, generator=g)
    return latents.to(device), factors.to(device)


def _bench_mig(cfg: BenchConfig, device: str, bandwidth: float, bar) -> list[dict]:
    from vaebench.metrics import mig, mig_reference, mig_vectorized

    fns = {"reference": mig_reference, "vectorized": mig_vectorized, "fused": mig}
    rows = []
    for n in cfg.mig_sizes:
        latents, factors = _mig_inputs(n, cfg.mig_dim, cfg.mig_factors, device)
        group = []
        for impl in cfg.mig_impls:
            if impl == "reference" and n > cfg.mig_reference_max_n:
                bar.update()
                continue
            fn = fns[impl]
            t = time_call(lambda: fn(latents, factors), device=device, warmup=1 if impl != "reference" else 0,
                          repeats=cfg.repeats if impl != "reference" else 3)
            # The fused pass reads the latents (float32) and factors (int64) once.
            nbytes = n * (4 * cfg.mig_dim + 8 * cfg.mig_factors)
            group.append(dict(op="mig", impl=impl, device=device, mode="score", batch=n, dim=cfg.mig_dim, n=n,
                              factors=cfg.mig_factors, median_ms=1e3 * t.median_s, iqr_ms=1e3 * t.iqr_s,
                              repeats=t.repeats, bytes=nbytes, fraction_of_floor=nbytes / t.median_s / bandwidth))
            bar.update()
        _speedups(group, "reference")
        rows += group
    return rows


def _bench_training(cfg: BenchConfig, device: str, bar) -> list[dict]:
    rows = []
    for arch in cfg.train_archs:
        group = []
        for setting in cfg.train_settings:
            if not training_cases.available(setting, device):
                bar.update()  # no native bfloat16 here: nothing honest to time
                continue
            step = training_cases.make_case(setting, arch, cfg.train_batch, device=device)
            # torch.compile compiles on its first calls: more warm-up for it.
            t = time_call(step, device=device, warmup=4 if "compile" in setting else 2, repeats=cfg.repeats)
            group.append(_train_row(arch, setting, device, cfg, t.median_s, t.iqr_s, t.repeats))
            bar.update()
        # Fresh processes for the first arch only (the conv model by default): they take the
        # longest to set up, and the side-by-side question is the conv profile's.
        for setting in cfg.train_process_settings if arch == cfg.train_archs[0] else ():
            if device != "cpu" or not training_cases.available(setting, device):
                bar.update()  # side by side on one CPU is this CPU's question
                continue
            med, iqr = training_cases.time_side_by_side(setting, arch, cfg.train_batch, device, repeats=cfg.repeats)
            group.append(_train_row(arch, setting, device, cfg, med, iqr, cfg.repeats))
            bar.update()
        _speedups(group, "fp32")
        rows += group
    return rows


def _train_row(arch: str, setting: str, device: str, cfg: BenchConfig, median_s: float, iqr_s: float,
               repeats: int) -> dict:
    return dict(op=f"train_{arch}", impl=setting, device=device, mode="train_step", batch=cfg.train_batch, dim=10,
                n=cfg.train_batch, factors=np.nan, median_ms=1e3 * median_s, iqr_ms=1e3 * iqr_s, repeats=repeats,
                bytes=np.nan, fraction_of_floor=np.nan)


def _speedups(group: list[dict], baseline: str) -> None:
    base = next((r["median_ms"] for r in group if r["impl"] == baseline), np.nan)
    for r in group:
        r["speedup_vs_baseline"] = base / r["median_ms"]


def run(out_dir: Path, profile: str = "quick", *, seed: int = 0, force: bool = False, device: str = "all",
        progress: bool = True, **overrides) -> None:
    """Runs the speed comparison into ``out_dir/bench.csv`` (skipped if present, unless ``force``)."""
    cfg = config_from_profile("bench", PROFILES, profile, overrides)
    out_dir = Path(out_dir)
    if (out_dir / "bench.csv").exists() and not force:
        return
    torch.manual_seed(seed)
    rows, bw_rows = [], []
    devices = _devices(device)
    total = len(devices) * (len(reparam_cases.MODES) * len(cfg.reparam_sizes) * len(cfg.reparam_impls)
                            + len(cfg.mig_sizes) * len(cfg.mig_impls)
                            + len(cfg.logdensity_sizes) * len(cfg.logdensity_impls)
                            + len(cfg.train_archs) * len(cfg.train_settings) + len(cfg.train_process_settings))
    with tqdm(total=total, desc="bench", unit="case", disable=not progress) as bar:
        for dev in devices:
            bandwidth = copy_bandwidth(dev)
            bw_rows.append(dict(device=dev, description=device_description(dev), copy_bandwidth_GBps=bandwidth / 1e9,
                                torch_threads=torch.get_num_threads()))
            rows += _bench_reparam(cfg, dev, bandwidth, bar)
            rows += _bench_mig(cfg, dev, bandwidth, bar)
            rows += _bench_logdensity(cfg, dev, bar)
            rows += _bench_training(cfg, dev, bar)
    if cfg.metric_scale > 0:
        from vaebench.bench import metric_cases

        metric_rows = metric_cases.time_cases(cfg.metric_scale, device="cpu", metrics=cfg.metric_suite)
        io.write_csv(out_dir / "bench_metrics.csv", pd.DataFrame(metric_rows))
    io.write_csv(out_dir / "bench_bandwidth.csv", pd.DataFrame(bw_rows))
    io.write_json(out_dir / "bench_config.json", dict(profile=profile, config=cfg.__dict__, provenance=provenance()))
    io.write_csv(out_dir / "bench.csv", pd.DataFrame(rows, columns=COLUMNS))
