"""The six methods' losses against independent float64 computations, FactorVAE's discriminator and
its resume, AnnealedVAE's schedule, and a smoke run of every method on the shared trainer."""
import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch

from vaebench.experiments import grid
from vaebench.experiments import methods as mx
from vaebench.methods import METHODS, MethodSetup, make_method
from vaebench.methods.annealed_vae import capacity
from vaebench.methods.beta_tcvae import total_correlation
from vaebench.methods.factor_vae import permute_dims
from vaebench.models import Pass
from vaebench.training import loop

SETUP = MethodSetup(total_steps=300, data_size=1000, latent_dim=5, seed=3)


def _pass(b: int = 16, d: int = 5, seed: int = 0) -> Pass:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(b, d, generator=g, dtype=torch.float64) - 1.0
    z = mu + (0.5 * logvar).exp() * torch.randn(b, d, generator=g, dtype=torch.float64)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    recon = 100 + 10 * torch.rand(b, generator=g, dtype=torch.float64)
    return Pass(mu, logvar, z, kl, recon)


def test_beta_vae_loss_and_warm_up():
    p = _pass()
    m = make_method("beta_vae", 4.0, SETUP, warmup_steps=10)
    loss, logs = m.loss(p, 9)
    assert logs == {} and loss.item() == pytest.approx((p.recon.numpy() + 4.0 * p.kl.numpy()).mean(), rel=1e-12)
    assert m.beta_at(0) == pytest.approx(0.4) and m.beta_at(4) == pytest.approx(2.0) and m.beta_at(500) == 4.0


def test_annealed_vae_capacity_schedule_and_loss():
    assert [capacity(25.0, s, 100) for s in (0, 50, 100, 1000)] == [0.0, 12.5, 25.0, 25.0]
    m = make_method("annealed_vae", 25.0, SETUP)
    assert m.iteration_threshold == 100  # a third of the budget, as the study's 100k of 300k
    p = _pass()
    for step in (0, 40, 100, 299):
        loss, logs = m.loss(p, step)
        c = min(25.0, 25.0 * step / 100)
        want = p.recon.numpy().mean() + 1000.0 * abs(p.kl.numpy().mean() - c)
        assert loss.item() == pytest.approx(want, rel=1e-12) and logs["capacity"].item() == pytest.approx(c)


@pytest.mark.parametrize("name", ["dip_vae_i", "dip_vae_ii"])
def test_dip_vae_penalty_against_numpy(name):
    p = _pass(b=32)
    lambda_od = 10.0
    mu, logvar = p.mu.numpy(), p.logvar.numpy()
    cov = np.cov(mu, rowvar=False, bias=True)  # numpy's own covariance, dividing by B
    if name == "dip_vae_ii":
        cov = cov + np.diag(np.exp(logvar).mean(0))
    lambda_d = lambda_od * (10.0 if name == "dip_vae_i" else 1.0)
    off = cov - np.diag(np.diag(cov))
    penalty = lambda_od * (off ** 2).sum() + lambda_d * ((np.diag(cov) - 1) ** 2).sum()
    loss, logs = make_method(name, lambda_od, SETUP).loss(p, 0)
    assert logs["dip_penalty"].item() == pytest.approx(penalty, rel=1e-10)
    assert loss.item() == pytest.approx(p.recon.numpy().mean() + p.kl.numpy().mean() + penalty, rel=1e-10)


def _brute_force_tc(z, mu, logvar, data_size):
    """TC's minibatch-weighted estimate from the [B, M, D] tensor of torch.distributions log-densities."""
    terms = torch.distributions.Normal(mu[None], (0.5 * logvar[None]).exp()).log_prob(z[:, None])  # [B, M, D]
    log_nm = math.log(data_size * z.shape[0])
    log_qz = torch.logsumexp(terms.sum(2), 1) - log_nm
    log_prod = (torch.logsumexp(terms, 1) - log_nm).sum(1)
    return (log_qz - log_prod).mean()


def test_beta_tcvae_total_correlation_against_brute_force():
    p = _pass(b=24)
    tc = total_correlation(p.z, p.mu, p.logvar, SETUP.data_size)
    assert tc.item() == pytest.approx(_brute_force_tc(p.z, p.mu, p.logvar, SETUP.data_size).item(), rel=1e-10)
    loss, logs = make_method("beta_tcvae", 6.0, SETUP).loss(p, 0)
    want = p.recon.numpy().mean() + p.kl.numpy().mean() + 5.0 * logs["tc"].item()
    assert loss.item() == pytest.approx(want, rel=1e-12)
    # Gradients through the fused op equal the brute force's.
    leaves = [t.clone().requires_grad_() for t in (p.z, p.mu, p.logvar)]
    fused = torch.autograd.grad(total_correlation(*leaves, SETUP.data_size), leaves)
    brute = torch.autograd.grad(_brute_force_tc(*leaves, SETUP.data_size), leaves)
    for a, b in zip(fused, brute):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_factor_vae_discriminator_sees_permuted_codes():
    z = torch.arange(64 * 5, dtype=torch.float32).view(64, 5)
    rng = np.random.default_rng(0)
    perm = permute_dims(z, rng)
    for d in range(5):  # each column a permutation of the batch's column, drawn independently
        assert torch.equal(perm[:, d].sort().values, z[:, d])
    rows = [(perm[:, d] - z[0, d]).long() // 5 for d in range(5)]  # the source row of each entry
    assert not all(torch.equal(rows[0], r) for r in rows[1:])
    m = make_method("factor_vae", 35.0, SETUP)
    assert torch.equal(m.permuted(z, 7), m.permuted(z, 7)) and not torch.equal(m.permuted(z, 7), m.permuted(z, 8))


def test_factor_vae_losses_against_float64_formulas():
    m = make_method("factor_vae", 35.0, SETUP)
    p64 = _pass(b=32)
    p = Pass(*(None if t is None else t.float() for t in p64))
    disc64 = copy.deepcopy(m.disc).double()  # the same weights, evaluated in float64
    logits = disc64(p64.z)
    loss, logs = m.loss(p, 0)
    want = p64.recon.mean() + p64.kl.mean() + 35.0 * (logits[:, 0] - logits[:, 1]).mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    before = [w.detach().clone() for w in m.disc.parameters()]
    real, fake = disc64(p64.z), disc64(m.permuted(p64.z, 0))
    want_d = -0.5 * (torch.log_softmax(real, 1)[:, 0].mean() + torch.log_softmax(fake, 1)[:, 1].mean())
    logs = m.after_step(p, 0)
    assert logs["disc_loss"].item() == pytest.approx(want_d.item(), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, m.disc.parameters()))  # the discriminator learned


def test_every_method_is_registered_with_the_studys_grid():
    assert sorted(METHODS) == ["annealed_vae", "beta_tcvae", "beta_vae", "dip_vae_i", "dip_vae_ii", "factor_vae"]
    assert all(len(m.study_values) == 6 for m in METHODS.values())
    with pytest.raises(ValueError, match="method must be one of"):
        make_method("no_such_vae", 1.0, SETUP)
    with pytest.raises(ValueError, match="settings: expected method=value"):  # a documents' model, not a method
        mx.make_config("smoke", settings="vq_vae=512")
    with pytest.raises(ValueError, match="settings: expected method=value"):
        mx.make_config("smoke", settings="factor_vae:35")
    with pytest.raises(ValueError, match="gamma must be a number"):
        mx.make_config("smoke", settings="factor_vae=big")
    with pytest.raises(ValueError, match="settings: 'dip_vae_i=-1': lambda_od must be >= 0, got '-1'"):
        mx.make_config("smoke", settings="dip_vae_i=-1")
    for profile in mx.PROFILES:  # every profile is a valid config of known methods
        cfg = mx.make_config(profile)
        assert {m for m, _ in mx.parse_settings(cfg.settings)} <= set(METHODS)


# ---- on the shared trainer ----------------------------------------------------------------------

TINY = dict(epochs=2, train_size=256, eval_size=256, pca_points=64, trajectory_size=256, suite_scale=0.0)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("methods_smoke")
    mx.run(out, "smoke", progress=False, suite_scale=0.003)
    return out


def test_smoke_run_of_every_method(smoke_run):
    losses = pd.read_csv(smoke_run / "methods_losses.csv")
    assert list(losses.columns[:10]) == ["method", "param", "setting", "seed", *loop.LOSS_COLUMNS]
    assert set(losses["method"]) == set(METHODS)
    assert np.isfinite(losses[["total", "recon", "kl"]].to_numpy()).all()
    own = {"annealed_vae": "capacity", "factor_vae": "disc_loss", "dip_vae_i": "dip_penalty", "beta_tcvae": "tc"}
    for method, column in own.items():
        assert losses.loc[losses.method == method, column].notna().all()
        assert losses.loc[losses.method == "beta_vae", column].isna().all()
    table = pd.read_csv(smoke_run / "methods_metrics.csv")
    assert sorted(table["method"]) == sorted(METHODS) and {"mig", "sap", "model"} <= set(table.columns)
    from vaebench.models import load_vae

    for path in table["model"]:
        mu, logvar = load_vae(path).encode(torch.zeros(2, 1, 64, 64))
        assert mu.shape == logvar.shape == (2, 4)
    assert len(pd.read_csv(smoke_run / "methods_trajectory.csv").groupby(["method", "seed"])) == 6
    # each unit says where it was trained: a run's seeds may come from several machines
    from vaebench.utils.provenance import cpu_capability, cpu_name

    own = pd.read_csv(smoke_run / "methods_mig.csv")
    assert set(own["trained_on"]) == {f"{cpu_name()}, {cpu_capability()}"}


def test_factor_vae_resume_restores_the_discriminator(tmp_path, monkeypatch):
    small = dict(TINY, settings="factor_vae=35", epochs=3)
    mx.run(tmp_path / "straight", "smoke", progress=False, **small)
    real, calls = loop.train_step, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # after the resume point at step 4 (half an epoch of 8 steps)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mx.run(tmp_path / "resumed", "smoke", progress=False, **small)
    state = torch.load(tmp_path / "resumed" / "methods_checkpoints" / "factor_vae_gamma35_seed0_last.pt",
                       weights_only=True)
    assert {"module.discriminator", "optimizer.discriminator"} <= set(state["method_state"])
    calls["n"] = -(10**9)
    mx.run(tmp_path / "resumed", "smoke", progress=False, **small)
    for name in ("methods_losses.csv", "methods_mig.csv"):
        a, b = (pd.read_csv(tmp_path / d / name) for d in ("straight", "resumed"))
        cols = [c for c in a.columns if c not in ("images_per_s", "train_seconds")]
        pd.testing.assert_frame_equal(b[cols], a[cols], check_exact=True)


def test_score_only_scores_the_finished_units_and_trains_nothing(tmp_path, monkeypatch):
    """`run methods --score-only`: the suite on the units a run has finished, while it trains others."""
    from vaebench.cli import main

    out = tmp_path / "run"
    mx.run(out, "smoke", progress=False, **dict(TINY, settings="dip_vae_i=10"))  # suite_scale 0: unscored
    assert not (out / "methods_metrics.csv").exists()
    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("--score-only trained a unit"))
    sets = [f"{k}={v}" for k, v in dict(TINY, suite_scale=0.003).items()]
    args = ["run", "methods", "--profile", "smoke", "--out", str(out), "--no-progress", "--score-only",
            "--set", "settings=dip_vae_i=10,beta_tcvae=6", *(x for s in sets for x in ("--set", s))]
    assert main(args) == 0  # beta-TCVAE, not trained, is neither trained nor scored
    table = pd.read_csv(out / "methods_metrics.csv")
    assert table["unit"].tolist() == ["dip_vae_i_lambda_od10_seed0"] and table["sap"].notna().all()
    assert not (out / "run.json").exists() and (out / "REPORT.md").exists()
    with pytest.raises(SystemExit) as e:  # main(): one line, exit 2
        main(args + ["--force"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["run", "beta-vae", "--profile", "smoke", "--out", str(tmp_path / "b"), "--score-only"])
    assert e.value.code == 2 and not (tmp_path / "b").exists()


def test_beta_vae_units_are_reused_from_a_beta_vae_run(tmp_path, monkeypatch):
    from vaebench.experiments import beta_vae

    small = dict(TINY, export_models=True)
    beta_vae.run(tmp_path / "bvae", "smoke", progress=False, betas="4", **small)
    trained = []
    real = loop.train
    monkeypatch.setattr(loop, "train", lambda cfg, method, *a, **k: trained.append(method.name) or real(cfg, method,
                                                                                                        *a, **k))
    out = tmp_path / "methods"
    mx.run(out, "smoke", progress=False, settings="beta_vae=4,dip_vae_i=10", reuse=str(tmp_path / "bvae"), **small)
    assert trained == ["dip_vae_i"]  # beta-VAE came from the beta-VAE run
    mig = pd.read_csv(out / "methods_mig.csv")
    theirs = pd.read_csv(tmp_path / "bvae" / "beta_vae_mig.csv")
    assert list(mig["method"]) == ["beta_vae", "dip_vae_i"] and "beta" not in mig
    assert mig["mig"].iloc[0] == theirs["mig"].iloc[0]
    assert (out / "methods_arrays_beta_vae_beta4_seed0.npz").exists()
    # A beta-VAE folder of another training config is not reused: the unit trains here.
    trained.clear()
    mx.run(tmp_path / "other", "smoke", progress=False, settings="beta_vae=4", reuse=str(tmp_path / "bvae"),
           **dict(small, epochs=3))
    assert trained == ["beta_vae"]


def test_committed_quick_beta_vae_unit_is_reproduced_bit_for_bit(tmp_path):
    """The shared trainer trains the committed quick run's (beta 1, seed 0) unit to the same bits:
    its first 500 steps give the committed first loss row and MIG trajectory point. On another kind
    of CPU torch picks other bf16 kernels, and 500 steps carry their rounding into the fourth digit."""
    import json
    from pathlib import Path

    from vaebench.experiments import beta_vae
    from vaebench.models.precision import bf16_supported
    from vaebench.utils.provenance import ran_on_this_cpu

    ref = Path(__file__).resolve().parents[1] / "results"
    if not bf16_supported("cpu"):
        pytest.skip("the committed quick run trained in bf16 (precision auto on an AVX512-BF16 CPU)")
    exact = ran_on_this_cpu(json.loads((ref / "run.json").read_text())["device"])
    # Seen on an AMX Xeon against the AMD run: losses 3e-5 apart relatively; MIG and its gaps, still
    # near 0 at step 500 (a few images across a bin edge move them), up to 2e-3 apart.
    close = dict(check_exact=True) if exact else dict(check_exact=False, rtol=1e-3)
    near = dict(check_exact=True) if exact else dict(check_exact=False, rtol=0, atol=5e-3)
    beta_vae.run(tmp_path, "quick", progress=False, betas="1", num_seeds=1, steps=500, suite_scale=0)
    cols = ["epoch", "step", "total", "recon", "kl"]
    mine = pd.read_csv(tmp_path / "beta_vae_losses.csv")[cols]
    theirs = pd.read_csv(ref / "beta_vae_losses.csv").query("beta == 1 and seed == 0")[cols].head(1)
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), theirs.reset_index(drop=True), **close)
    cols = ["step", "mig", "gap_shape", "gap_posX", "active_dims"]
    mine = pd.read_csv(tmp_path / "beta_vae_trajectory.csv")[cols]
    theirs = pd.read_csv(ref / "beta_vae_trajectory.csv").query("beta == 1 and seed == 0 and step <= 500")[cols]
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), theirs.reset_index(drop=True), **near)
    assert mine["active_dims"].tolist() == theirs["active_dims"].tolist()


@pytest.mark.parametrize("name, good, bad, rule", [
    ("beta_vae", (0.0, 16.0), (-0.5, float("nan")), ">= 0"),
    ("gjs_vae", (0.0, 1.0), (-0.1, 1.5), r"in \[0, 1\]"),
    ("denoising_ae", (0.0, 0.99), (1.0, -0.1), r"in \[0, 1\)"),
    ("vq_vae", (1.0, 512.0), (0.0, 2.5), "a positive integer"),
    ("vampprior", (1.0, 64.0), (0.0, 1.5), "a positive integer"),
])
def test_each_method_states_and_checks_the_values_its_setting_may_take(name, good, bad, rule):
    from vaebench.methods import ALL

    assert all(ALL[name].allows(v) for v in good)
    assert not any(ALL[name].allows(v) for v in bad)
    for v in bad:
        with pytest.raises(ValueError, match=f"{name}: {ALL[name].param} must be {rule}, got"):
            make_method(name, v, SETUP)


def test_report_ranks_each_metric_best_first(tmp_path):
    from vaebench.reports.methods import summary_markdown

    # beta-VAE has the higher MIG and the higher (worse) total correlation
    rows = [dict(unit=f"{m}_s{s}", method=m, param=p, setting=v, seed=s, mig=mig + 0.01 * s,
                 gaussian_total_correlation=tc + 0.1 * s)
            for m, p, v, mig, tc in (("beta_vae", "beta", 4.0, 0.3, 2.0), ("dip_vae_i", "lambda_od", 10.0, 0.1, 0.5))
            for s in (0, 1)]
    pd.DataFrame(rows).to_csv(tmp_path / "methods_metrics.csv", index=False)
    text = summary_markdown(tmp_path)
    assert "- MIG: beta-VAE > DIP-VAE-I " in text
    assert "- Gaussian TC (lower is better): DIP-VAE-I > beta-VAE " in text


def test_report_gives_speed_per_seed_and_where_each_seed_was_trained(tmp_path):
    import json

    from vaebench.reports.methods import images_per_second, summary_markdown

    # two methods, two seeds on two machines; one loss row every 100 steps of batch 10
    losses, own = [], []
    for (m, p, v), speed in ((("beta_vae", "beta", 4.0), 1000.0), (("dip_vae_i", "lambda_od", 10.0), 500.0)):
        for s, where, precision in ((0, "CPU A, AVX512", "bf16"), (1, "CPU B, AVX2", "fp32")):
            # the first row at 1x the unit's speed, the second at 3x: 200 images in 0.1 + 0.1/3 s
            losses += [dict(method=m, param=p, setting=v, seed=s, step=100 * k, images_per_s=speed * (s + 1) * f)
                       for k, f in ((1, 1.0), (2, 3.0))]
            own.append(dict(method=m, param=p, setting=v, seed=s, mig=0.1 + s, recon=50.0, kl=10.0,
                            trained_on=where, precision=precision))
    pd.DataFrame(losses).to_csv(tmp_path / "methods_losses.csv", index=False)
    pd.DataFrame(own).to_csv(tmp_path / "methods_mig.csv", index=False)
    (tmp_path / "methods_config.json").write_text(json.dumps({"config": {"batch_size": 10}}))
    speed = images_per_second(pd.read_csv(tmp_path / "methods_losses.csv"), 10)
    assert speed[("dip_vae_i", 10.0, 1)] == pytest.approx(2000 / (1000 / 1000 + 1000 / 3000))
    text = summary_markdown(tmp_path)
    assert "| training images/s | 2,250 +- 1,061 (1,500 / 3,000) | 1,125 +- 530 (750 / 1,500) |" in text
    assert "- seed 0: CPU A, AVX512, bf16 (2 units)\n- seed 1: CPU B, AVX2, fp32 (2 units)\n" in text
    # a seed whose units come from two machines names them; units from before the record say so
    mixed = pd.read_csv(tmp_path / "methods_mig.csv")
    mixed.loc[(mixed.seed == 1) & (mixed.method == "beta_vae"), ["trained_on", "precision"]] = [None, "bf16"]
    mixed.to_csv(tmp_path / "methods_mig.csv", index=False)
    assert ("- seed 1: CPU B, AVX2, fp32 (DIP-VAE-I); machine not recorded, bf16 (beta-VAE)\n"
            in summary_markdown(tmp_path))
