"""The metric suite's speed on one model: the BetaVAE and FactorVAE scores as vaebench computes
them (every draw first, each distinct image encoded once) against the one-point-at-a-time version
(``vaebench.metrics.straightforward``: 64 images per encoder call, two calls per BetaVAE point),
at the same sizes, side by side; and the whole suite. Each is timed once, from a cold
representation (nothing encoded yet), since a second call would find every code cached."""
from __future__ import annotations

import time
from pathlib import Path

import torch

# The committed reference model (a cpu-profile conv beta-VAE, beta 4, seed 0), where the source
# tree is at hand; else a conv VAE at its seeded initialisation (same shapes, same cost).
REFERENCE_MODEL = Path(__file__).resolve().parents[2] / "results" / "cpu" / "models" / "beta4_seed0.pt"


def model(device: str = "cpu"):
    from vaebench.models import VAE, load_vae

    if REFERENCE_MODEL.exists():
        return load_vae(REFERENCE_MODEL, map_location=device), "results/cpu/models/beta4_seed0.pt"
    torch.manual_seed(0)
    return VAE(arch="conv", latent_dim=10).to(device).eval(), "conv VAE at its seeded initialisation"


def time_cases(scale: float, device: str = "cpu", n_jobs: int = 2, metrics="all") -> list[dict]:
    """Seconds of: the straightforward BetaVAE + FactorVAE scores, vaebench's, and the whole suite,
    at the study sizes times ``scale``; plus images encoded and the scores (they must agree within
    their sampling error: the two draw differently)."""
    from vaebench.data.dsprites import load_dsprites
    from vaebench.experiments.scoring import representation
    from vaebench.metrics import SuiteSizes, beta_vae_score, factor_vae_score, model_encoder, score_suite
    from vaebench.metrics import straightforward

    data = load_dsprites()
    net, name = model(device)
    s = SuiteSizes().scaled(scale)
    kw_b = dict(batch_size=s.batch_size, num_train=s.beta_vae_train, num_eval=s.beta_vae_eval)
    kw_f = dict(batch_size=s.batch_size, num_train=s.factor_vae_train, num_eval=s.factor_vae_eval,
                num_variance_estimate=s.factor_vae_variance)
    encode = model_encoder(net, device=device, channels_last=net.config.arch == "conv")
    encode(data.batch(list(range(64))))  # warm the encoder's kernels for every case alike
    rows = []

    t0 = time.perf_counter()
    b = straightforward.beta_vae_score(encode, data, seed=0, **kw_b)
    f = straightforward.factor_vae_score(encode, data, seed=0, **kw_f)
    images = 2 * s.batch_size * (s.beta_vae_train + s.beta_vae_eval) + s.factor_vae_variance \
        + s.batch_size * (s.factor_vae_train + s.factor_vae_eval)
    rows.append(dict(case="beta_vae+factor_vae", impl="straightforward", seconds=time.perf_counter() - t0,
                     images=images, beta_vae=b[1], factor_vae=f[1]))

    t0 = time.perf_counter()
    rep = representation(net, data, device=device)
    b = beta_vae_score(rep, data, seed=0, **kw_b)
    f = factor_vae_score(rep, data, seed=0, **kw_f)
    rows.append(dict(case="beta_vae+factor_vae", impl="vaebench", seconds=time.perf_counter() - t0,
                     images=rep.encoded, beta_vae=b.eval_accuracy, factor_vae=f.eval_accuracy))

    t0 = time.perf_counter()
    rep = representation(net, data, device=device)
    row = score_suite(rep, data, seed=0, sizes=s, n_jobs=n_jobs, metrics=metrics)
    rows.append(dict(case="suite", impl="vaebench", seconds=time.perf_counter() - t0, images=rep.encoded,
                     beta_vae=row["beta_vae_eval_accuracy"], factor_vae=row["factor_vae_eval_accuracy"],
                     **{k: v for k, v in row.items() if k.startswith("seconds_")}))
    for r in rows:
        r.update(model=name, scale=scale, device=device,
                 speedup_vs_straightforward=rows[0]["seconds"] / r["seconds"] if r["case"] != "suite" else float("nan"))
    return rows
