"""The documents' other models (``vaebench.methods.MODELS``) and their experiment: each objective
against an independent computation, the VQ straight-through gradient, the unrolled ISTA encoder,
the likelihood bounds, and a smoke run of every model."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributions as td

from vaebench.experiments import models as mdl
from vaebench.methods import MODELS, MethodSetup, make_method
from vaebench.methods.autoencoders import RHO, bernoulli_kl, salt_and_pepper
from vaebench.methods.latent_grid import normal_quantile_grid
from vaebench.methods.vampprior import vamp_log_prior
from vaebench.methods.vq_vae import perplexity
from vaebench.models import VAE, VAEConfig, vae_pass
from vaebench.models.heads import ListaHead, VQHead, soft_threshold
from vaebench.ops import reparam_gjs_eager
from vaebench.training import loop
from vaebench.training.config import TrainConfig

SETUP = MethodSetup(total_steps=100, data_size=1000, latent_dim=4, seed=5)
CFG = TrainConfig(arch="mlp", latent_dim=4, mlp_hidden=32)


def _images(b: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 1, 64, 64, generator=g) > 0.9).float()


def _model(name: str, value: float, cfg: TrainConfig = CFG):
    method = make_method(name, value, SETUP)
    return loop.build_model(cfg, 0, "cpu", method), method


# ---- GJS-VAE --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gjs_vae", "gjs_vae_dual"])
def test_gjs_vae_pass_is_the_kl_vaes_sample_with_the_gjs_divergence(name):
    model, m = _model(name, 0.3)
    x = _images()
    p = m.forward(model, x, 0, impl="fused", seed=11, offset=64)
    ref = vae_pass(model, x, impl="fused", seed=11, offset=64)
    assert torch.equal(p.z, ref.z)  # the same Philox noise as reparam_kl
    torch.testing.assert_close(p.kl, ref.kl, rtol=1e-5, atol=1e-5)  # logged kl: the true KL
    mu, logvar = (t.detach().double() for t in model.encode(x))
    eps = (ref.z.detach().double() - mu) / torch.exp(0.5 * logvar)
    _, div = reparam_gjs_eager(mu, logvar, 0.3, eps, dual=m.dual)
    torch.testing.assert_close(p.div.double(), div, rtol=1e-4, atol=1e-5)
    loss, logs = m.loss(p, 0)
    torch.testing.assert_close(loss, (p.recon + p.div).mean())
    eager = m.forward(model, x, 0, impl="eager", seed=11, offset=64)
    torch.testing.assert_close(eager.div, p.div, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager.z, p.z)  # the same noise; exp may differ in the last bit


def test_gjs_vae_at_alpha_zero_is_the_kl_vae():
    """At alpha = 0 the plain GJS is KL(q || p): the GJS-VAE's loss is the beta-1 VAE's, bit for bit."""
    model, m = _model("gjs_vae", 0.0)
    x = _images()
    p = m.forward(model, x, 0, impl="fused", seed=3, offset=0)
    kl_vae = make_method("beta_vae", 1.0, SETUP)
    assert torch.equal(m.loss(p, 0)[0], kl_vae.loss(vae_pass(model, x, impl="fused", seed=3, offset=0), 0)[0])
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        make_method("gjs_vae", 1.5, SETUP)


# ---- VampPrior ------------------------------------------------------------------


def test_vamp_log_prior_is_the_mixture_density():
    g = torch.Generator().manual_seed(0)
    mu_k = torch.randn(7, 3, generator=g, dtype=torch.float64)
    logvar_k = 0.5 * torch.randn(7, 3, generator=g, dtype=torch.float64)
    z = 2 * torch.randn(11, 3, generator=g, dtype=torch.float64)
    mixture = td.MixtureSameFamily(td.Categorical(torch.ones(7, dtype=torch.float64)),
                                   td.Independent(td.Normal(mu_k, torch.exp(0.5 * logvar_k)), 1))
    torch.testing.assert_close(vamp_log_prior(z, mu_k, logvar_k), mixture.log_prob(z), rtol=1e-12, atol=1e-12)


def test_vampprior_rate_is_log_q_minus_log_prior_and_trains_its_pseudo_inputs():
    model, m = _model("vampprior", 5)
    x = _images()
    p = m.forward(model, x, 0, impl="fused", seed=2, offset=0)
    mu_k, logvar_k = (t.detach().double() for t in model.encode(m.pseudo()))
    q = td.Independent(td.Normal(p.mu.detach().double(), torch.exp(0.5 * p.logvar.detach().double())), 1)
    prior = td.MixtureSameFamily(td.Categorical(torch.ones(5, dtype=torch.float64)),
                                 td.Independent(td.Normal(mu_k, torch.exp(0.5 * logvar_k)), 1))
    z = p.z.detach().double()
    torch.testing.assert_close(p.kl.double(), q.log_prob(z) - prior.log_prob(z), rtol=1e-4, atol=1e-4)
    before = m.pseudo.logits.detach().clone()
    opt = loop.make_optimizer(model, CFG)
    loop.train_step(model, opt, m, x, 0, impl="fused", seed=2, offset=0)
    assert not torch.equal(before, m.pseudo.logits) and m.pseudo.logits.grad is None
    assert set(m.model_part()) == {"module.pseudo_inputs"}
    assert m.sample_prior(model, 6, 4, torch.Generator().manual_seed(0)).shape == (6, 4)


# ---- VQ-VAE ---------------------------------------------------------------------


def test_vq_quantises_to_the_nearest_code_and_passes_the_decoders_gradient_straight_through():
    torch.manual_seed(0)
    head = VQHead(width=16, dim=12, codebook_size=9, codebook_dim=3)
    with torch.no_grad():
        head.codebook.normal_()
    decoder = torch.nn.Sequential(torch.nn.Linear(12, 5), torch.nn.Tanh())
    h = torch.randn(6, 16)
    z, z_e, z_q, index = head.quantize(h)
    brute = torch.cdist(z_e.reshape(-1, 3).double(), head.codebook.double()).argmin(1).view(6, 4)
    assert torch.equal(index, brute) and torch.equal(z_q, head.codebook[index])
    torch.testing.assert_close(z, z_q.flatten(1))
    z_e.retain_grad()
    decoder(z).pow(2).sum().backward()
    at_code = z_q.detach().flatten(1).requires_grad_()
    decoder(at_code).pow(2).sum().backward()
    torch.testing.assert_close(z_e.grad.flatten(1), at_code.grad)  # the gradient at z_q, copied to z_e
    assert head.codebook.grad is None  # the reconstruction alone moves no code


def test_vq_vae_loss_terms_and_codebook_usage():
    model, m = _model("vq_vae", 16, TrainConfig(arch="mlp", latent_dim=2, mlp_hidden=32))
    assert model.latent_dim == 2 * 8 and model.config.codebook_size == 16
    x = _images()
    p = m.forward(model, x, 0, impl="fused", seed=0, offset=0)
    _, z_e, z_q, index = model.head.quantize(model.encoder(x))
    want = (z_e - z_q).pow(2).sum((1, 2)) * 1.25  # codebook + 0.25 commitment, equal in value
    torch.testing.assert_close(p.div, want)
    counts = np.bincount(index.flatten().numpy(), minlength=16) / index.numel()
    nz = counts[counts > 0]
    assert float(perplexity(index, 16)) == pytest.approx(math.exp(-(nz * np.log(nz)).sum()), rel=1e-12)
    merits = m.merits(model, x, seed=0)
    assert merits["dead_codes"] == 16 - len(nz) and 1 <= merits["perplexity"] <= 16


# ---- SC-VAE, sparse and denoising autoencoders ----------------------------------


def test_lista_head_is_unrolled_ista():
    torch.manual_seed(1)
    head = ListaHead(width=6, dim=4, steps=3)
    with torch.no_grad():
        head.G.weight.normal_(0, 0.3)
        head.raw_theta.fill_(-1.0)  # theta = softplus(-1) ~ 0.31: some of the codes below are exact zeros
    h = torch.randn(5, 6, dtype=torch.float64)
    head = head.double()
    W, b, G, th = (t.detach().numpy() for t in (head.W.weight, head.W.bias, head.G.weight, head.theta))
    hn = h.numpy()

    def soft(u):
        return np.sign(u) * np.maximum(np.abs(u) - th, 0)

    z = soft(hn @ W.T + b)
    for _ in range(2):
        z = soft(hn @ W.T + b + z @ G.T)
    out = head(h).detach().numpy()
    np.testing.assert_allclose(out, z, rtol=1e-12, atol=1e-12)
    assert (out == 0).any()  # exact zeros
    u = torch.tensor([-2.0, -0.1, 0.0, 0.05, 3.0])
    assert torch.equal(soft_threshold(u, torch.tensor(0.5)), torch.tensor([-1.5, 0.0, 0.0, 0.0, 2.5]))


def _sprites(n: int = 16) -> torch.Tensor:
    """``n`` real dSprites images (the built-in renderer at random factors), ``[n, 1, 64, 64]``."""
    from vaebench.data.render import render

    rng = np.random.default_rng(0)
    return render(rng.integers(0, 3, n), rng.uniform(0.5, 1, n), rng.uniform(0, 2 * math.pi, n),
                  rng.uniform(0, 1, n), rng.uniform(0, 1, n), dtype=torch.float32).unsqueeze(1)


@pytest.mark.parametrize("arch", ["conv", "mlp", "chen"])
def test_sc_vae_encoder_learns_from_initialisation(arch):
    # A threshold above every image's |W h| zeroes every code, and a code that is zero for every
    # input passes no gradient back: the encoder could never start. Real sprites, every backbone.
    x = _sprites()
    model, m = _model("sc_vae", 1.0, TrainConfig(arch=arch, latent_dim=10))
    p = m.forward(model, x, 0, impl="fused", seed=0, offset=0)
    assert float((p.z != 0).float().mean()) > 0.5
    m.loss(p, 0)[0].backward()
    first = next(model.encoder.parameters())
    assert first.grad is not None and float(first.grad.abs().sum()) > 0


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_sparse_ae_starts_at_the_target_activation(arch):
    # At rho_hat = rho the penalty and its gradient vanish, so the codes can become informative
    # before the penalty pushes them (from 0.5 that push killed the conv backbone's ReLUs).
    model, m = _model("sparse_ae", 1.0, TrainConfig(arch=arch, latent_dim=10))
    p = m.forward(model, _sprites(), 0, impl="fused", seed=0, offset=0)
    np.testing.assert_allclose(p.z.detach().mean(0).numpy(), RHO, atol=0.01)
    assert float(m.loss(p, 0)[1]["sparsity_penalty"]) < 0.01


def test_sc_vae_loss_is_recon_plus_l1():
    model, m = _model("sc_vae", 2.0)
    x = _images()
    p = m.forward(model, x, 0, impl="fused", seed=0, offset=0)
    assert p.logvar is None and torch.equal(p.z, model.encode(x)[0])
    loss, logs = m.loss(p, 0)
    torch.testing.assert_close(loss, (p.recon + 2.0 * p.z.abs().sum(1)).mean())
    assert float(logs["sparsity"]) == pytest.approx(float((p.z == 0).float().mean()))


def test_sparse_penalty_is_the_bernoulli_kl_of_mean_activations():
    rho_hat = torch.tensor([0.01, 0.05, 0.3, 0.9], dtype=torch.float64)
    want = [RHO * math.log(RHO / r) + (1 - RHO) * math.log((1 - RHO) / (1 - r)) for r in rho_hat.tolist()]
    torch.testing.assert_close(bernoulli_kl(RHO, rho_hat), torch.tensor(want, dtype=torch.float64))
    assert float(bernoulli_kl(RHO, torch.tensor(RHO))) == pytest.approx(0.0, abs=1e-12)
    model, m = _model("sparse_ae", 3.0)
    assert model.latent_dim == 32
    x = _images()
    p = m.forward(model, x, 0, impl="fused", seed=0, offset=0)
    a = p.z.detach().double()
    assert ((a > 0) & (a < 1)).all()  # sigmoid activations
    kl = sum(RHO * math.log(RHO / r) + (1 - RHO) * math.log((1 - RHO) / (1 - r)) for r in a.mean(0).tolist())
    loss, _ = m.loss(p, 0)
    assert float(loss.detach()) == pytest.approx(float(p.recon.detach().double().mean()) + 3.0 * kl, rel=1e-5)


def test_salt_and_pepper_noise_rate_and_determinism():
    x = torch.zeros(64, 1, 64, 64)
    noisy = salt_and_pepper(x, 0.1, [4, 2])
    assert torch.equal(noisy, salt_and_pepper(x, 0.1, [4, 2])) and not torch.equal(noisy, salt_and_pepper(x, 0.1, [4, 3]))
    n = x.numel()
    ones = float(noisy.mean())  # replaced pixels are fair bits: on zeros, half of them turn on
    assert abs(ones - 0.05) < 5 * math.sqrt(0.05 * 0.95 / n)
    assert torch.equal(salt_and_pepper(x, 0.0, 0), x)


def test_denoising_ae_trains_on_corrupted_inputs_and_evaluates_on_clean_ones():
    model, m = _model("denoising_ae", 0.3)
    x = _images()
    train = m.forward(model, x, 7, impl="fused", seed=0, offset=0)
    noisy = salt_and_pepper(x, 0.3, [SETUP.seed, 7])
    assert torch.equal(train.z, model.encode(noisy)[0])
    assert not torch.equal(train.z, model.encode(x)[0])
    clean = m.forward(model, x, None, impl="fused", seed=0, offset=0)
    assert torch.equal(clean.z, model.encode(x)[0])
    assert m.sample_prior(model, 3, 4, torch.Generator()) is None


def test_normal_quantile_grid():
    z = normal_quantile_grid(5)
    assert z.shape == (25, 2)
    q = z[::5, 0]
    torch.testing.assert_close(q, -q.flip(0))
    assert float(q[2]) == 0.0 and float(q[-1]) == pytest.approx(1.2815516, rel=1e-6)  # Phi^-1(0.9)
    assert torch.equal(z[:5, 1], q)


# ---- likelihood bounds ------------------------------------------------------------


def test_iwae_bound_with_one_sample_is_the_elbo_and_tightens_with_more():
    model, m = _model("beta_vae", 1.0)
    x = _images(6)
    with torch.no_grad():
        one = mdl.likelihood_terms(model, m, x, 1, torch.Generator().manual_seed(0))
        torch.testing.assert_close(one["iwae_nll"], one["recon"] + one["rate"], rtol=1e-12, atol=1e-9)
        many = mdl.likelihood_terms(model, m, x, 64, torch.Generator().manual_seed(0))
    assert (many["iwae_nll"] <= many["recon"] + many["rate"] + 1e-9).all()  # Jensen, on the same samples
    mu, logvar = (t.double() for t in model.encode(x))
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    torch.testing.assert_close(many["kl_normal"], kl, rtol=1e-12, atol=1e-12)
    # 64 samples of the rate: their mean is the analytic KL within a few standard errors
    assert (many["rate"] - kl).abs().max() < 1.0


# ---- the experiment -------------------------------------------------------------

SMALL = dict(epochs=2, train_size=256, eval_size=256, pca_points=64, trajectory_size=256, suite_scale=0.0,
             summary_images=64)


@pytest.fixture(scope="module")
def smoke_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("models_smoke")
    mdl.run(out, "smoke", progress=False, **SMALL)
    return out


def test_every_model_trains_and_is_summarised(smoke_models):
    table = pd.read_csv(smoke_models / "models_summary.csv")
    assert set(table["method"]) == {"beta_vae", *MODELS}
    probabilistic = table["method"].isin(["beta_vae", "gjs_vae", "gjs_vae_dual", "vampprior", "vae_2d"])
    assert table.loc[probabilistic, ["rate", "elbo", "iwae_nll", "kl_normal"]].notna().all().all()
    assert table.loc[~probabilistic, ["rate", "elbo", "iwae_nll", "kl_normal"]].isna().all().all()
    assert (table.loc[probabilistic, "iwae_nll"] <= -table.loc[probabilistic, "elbo"] + 1e-6).all()
    row = table.set_index("model")
    assert row.loc["denoising_ae_noise0", "denoising_gain"] == 0.0
    assert 1 <= row.loc["vq_vae_codebook_size512", "perplexity"] <= 512
    assert 0 <= row.loc["sc_vae_lam1", "sparsity"] <= 1
    assert row.loc["vae_2d_beta1", "latent_dim"] == 2
    from vaebench.models.precision import resolve_precision
    from vaebench.utils.provenance import hardware

    assert set(table["trained_on"]) == {hardware("cpu")} and set(table["precision"]) == {resolve_precision("auto")}
    with np.load(smoke_models / "models_arrays_vae_2d_beta1_seed0.npz") as a:
        assert a["latent_grid"].shape == (15, 15, 64, 64) and "prior_samples" in a
    with np.load(smoke_models / "models_arrays_denoising_ae_noise0_seed0.npz") as a:
        assert "prior_samples" not in a
    from vaebench.reports import models as report

    names = {p.name for p in report.make_figures(smoke_models)}
    assert {"models_reconstructions.png", "models_samples.png", "models_latent_grid.png"} <= names
    assert "| VampPrior (pseudo_inputs 64) |" in report.summary_markdown(smoke_models)


def test_models_resume_and_their_files_load(smoke_models, monkeypatch):
    from vaebench.models import load_vae
    from vaebench.utils.io import load_torch

    trained = []
    real = loop.train
    monkeypatch.setattr(loop, "train", lambda cfg, method, *a, **k: trained.append(method.name) or real(cfg, method,
                                                                                                        *a, **k))
    before = pd.read_csv(smoke_models / "models_summary.csv")
    mdl.run(smoke_models, "smoke", progress=False, **SMALL)
    assert trained == []  # every unit was finished
    after = pd.read_csv(smoke_models / "models_summary.csv")
    pd.testing.assert_frame_equal(before, after)
    # --score-only on a grown grid: the new unit is neither trained nor summarised
    grown = dict(SMALL, settings=",".join(mdl.CHOSEN + ("gjs_vae=0.1",)))
    mdl.run(smoke_models, "smoke", progress=False, train=False, **grown)
    assert trained == []
    pd.testing.assert_frame_equal(before, pd.read_csv(smoke_models / "models_summary.csv"))
    state = load_torch(smoke_models / "models_checkpoints" / "vampprior_pseudo_inputs64_seed0_end.pt")
    assert "module.pseudo_inputs" in state["method_state"]  # the prior is kept with the model
    model = load_vae(smoke_models / "models_checkpoints" / "sc_vae_lam1_seed0_end.pt")
    code, logvar = model.encode(_images(2))
    assert logvar is None and code.shape == (2, 4)


def test_the_summary_recomputes_only_rows_whose_weights_changed(smoke_models, monkeypatch):
    csv = smoke_models / "models_summary.csv"
    before = pd.read_csv(csv, dtype={"digest": str})
    stale = before.copy()
    stale.loc[stale["method"] == "vampprior", "digest"] = "0" * 16  # as if the unit had been trained again
    stale.to_csv(csv, index=False)
    computed = []
    real = mdl.model_row
    monkeypatch.setattr(mdl, "model_row", lambda exp, unit, *a: computed.append(unit.method) or real(exp, unit, *a))
    grown = dict(SMALL, settings=",".join(mdl.CHOSEN + ("gjs_vae=0.1",)))  # as the folder may have grown
    mdl.summarize(mdl.experiment(smoke_models, "smoke", **grown))
    assert computed == ["vampprior"]
    # the recomputed row is the one first written: the same draws of the run's seed
    pd.testing.assert_frame_equal(before, pd.read_csv(csv, dtype={"digest": str}))


def test_a_code_only_model_cannot_be_sampled_like_a_vae():
    model = VAE(VAEConfig(arch="mlp", latent_dim=3, mlp_hidden=8, encoder="linear"))
    with pytest.raises(ValueError, match="no posterior to sample"):
        vae_pass(model, _images(2), seed=0)
    with pytest.raises(ValueError, match="latent_dim a multiple of codebook_dim"):
        VAEConfig(latent_dim=10, encoder="vq", codebook_dim=3)


def test_a_unit_with_a_dead_encoder_is_reported(tmp_path, monkeypatch, capsys):
    import vaebench.models.heads as heads

    monkeypatch.setattr(heads, "THETA_INIT", 50.0)  # a threshold no |W h| reaches: every code zero
    mdl.run(tmp_path, "smoke", progress=False, **{**SMALL, "settings": ("sc_vae=1",)}, digits=None)
    assert "sc_vae_lam1_seed0 has no active latent unit" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "models_summary.csv")["active_dims"].tolist() == [0]


def test_the_2d_vae_also_trains_on_handwritten_digits(smoke_models):
    table = pd.read_csv(smoke_models / "digits" / "models_summary.csv")
    assert list(table["method"]) == ["vae_2d"] and np.isfinite(table["iwae_nll"]).all()
    with np.load(smoke_models / "digits" / "models_arrays_vae_2d_beta1_seed0.npz") as a:
        assert a["latent_grid"].shape == (15, 15, 64, 64)
    config = pd.read_json(smoke_models / "digits" / "models_config.json", typ="series")
    assert config["config"]["data_path"] == "sklearn-digits" and config["config"]["suite_scale"] == 0


def test_digits_datasets(tmp_path):
    from vaebench.data import DigitsFileError, is_digits, load_dataset

    d = load_dataset("sklearn-digits")
    assert len(d) == 1797 and d.factor_sizes == (10,)
    x = d.batch([0, 5])
    assert x.shape == (2, 1, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x[:, :, :8, :8], x[:, :, :1, :1].expand(2, 1, 8, 8))  # each source pixel an 8 x 8 block
    assert d.index_to_factors([0, 5]).ravel().tolist() == [0, 5]  # the bundled digits start 0, 1, 2, ...
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz", x_train=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
             y_train=np.array([3, 1, 4, 1]))
    assert is_digits(tmp_path / "mnist.npz")
    m = load_dataset(tmp_path / "mnist.npz")
    assert len(m) == 4 and m.batch([2]).shape == (1, 1, 64, 64) and m.index_to_factors([2]).item() == 4
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((4, 28)), y_train=np.zeros(4))
    with pytest.raises(DigitsFileError, match="x_train must be"):
        load_dataset(tmp_path / "bad.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    assert not is_digits(tmp_path / "text.npz") and not is_digits(None)


def _gjs_table(kl: float, plain: dict, dual: dict) -> pd.DataFrame:
    rows = [{"method": "beta_vae", "setting": 1.0, "recon": kl}]
    rows += [{"method": "gjs_vae", "setting": a, "recon": r} for a, r in plain.items()]
    rows += [{"method": "gjs_vae_dual", "setting": a, "recon": r} for a, r in dual.items()]
    return pd.DataFrame(rows)


def test_the_gjs_claim_is_judged_on_the_whole_sweep_only():
    from vaebench.reports.models import gjs_claim

    alphas = (0.1, 0.3, 0.5, 0.7, 0.9)
    holds = "\n".join(gjs_claim(_gjs_table(40.0, dict(zip(alphas, (20, 30, 35, 50, 60))),
                                           dict(zip(alphas, (39, 38, 30, 25, 31))))))
    assert "better than the KL VAE at 5 of 5 alphas: the claim holds" in holds
    assert "best at alpha 0.1, the smallest: the claim holds" in holds and "partial" not in holds
    fails = "\n".join(gjs_claim(_gjs_table(40.0, dict(zip(alphas, (30, 20, 35, 50, 60))),
                                           dict(zip(alphas, (41, 38, 30, 45, 31))))))
    assert "at 3 of 5 alphas (0.3, 0.5, 0.9), so the claim fails" in fails
    assert "best at alpha 0.3, not the smallest (0.1), so the claim fails" in fails
    # two plain alphas and one dual: the numbers so far, no verdict
    partial = "\n".join(gjs_claim(_gjs_table(40.0, {0.1: 20.0, 0.5: 35.0}, {0.5: 30.0})))
    assert "- dual: alpha 0.5: 30.0; better than the KL VAE at 1 of 1 alphas\n" in partial
    assert "best at alpha 0.1\n" in partial and "claim holds" not in partial and "claim fails" not in partial
    assert "not run yet: dual 0.1, 0.3, 0.7, 0.9; plain 0.3, 0.7, 0.9" in partial
    assert gjs_claim(_gjs_table(40.0, {0.5: 35.0}, {0.5: 30.0})) == []  # one alpha each: nothing to compare
    # the KL VAE with a seed spread: the mean judges, the best seed is counted beside it
    spread = _gjs_table(40.0, dict(zip(alphas, (20, 30, 35, 50, 60))), dict(zip(alphas, (39, 38, 30, 25, 31))))
    spread = pd.concat([spread, pd.DataFrame([{"method": "beta_vae", "setting": 1.0, "recon": r} for r in (31.0, 49.0)])])
    spread = "\n".join(gjs_claim(spread))
    assert "KL VAE 40.0, the mean of 3 seeds from 31.0 to 49.0)" in spread
    assert "better than the KL VAE at 5 of 5 alphas (than its best seed at 2): the claim holds" in spread


def test_the_cpu_profile_spreads_seeds_over_the_models_that_need_them_only(tmp_path):
    cfg = mdl.make_config("cpu")
    tags = [str(u) for u in mdl.units(cfg, [0, 1, 2])]
    assert len(tags) == len(mdl.EVERYTHING) + 2 * len(mdl.SPREAD) and len(set(tags)) == len(tags)
    assert tags[:len(mdl.EVERYTHING)] == [str(u) for u in mdl.units(cfg, [0]) if u.seed == 0]  # seed-major
    later = {t.rsplit("_seed", 1)[0] for t in tags if not t.endswith("_seed0")}
    assert later == {"beta_vae_beta1", "gjs_vae_alpha0.5", "gjs_vae_dual_alpha0.5", "vampprior_pseudo_inputs64"}
    digits = mdl.digits_experiment(cfg, tmp_path)  # vae_2d is not in the spread: its seed 0 only
    assert digits.config.cfg.spread == () and [str(u) for u in digits.units] == ["vae_2d_beta1_seed0"]
    every = mdl.make_config("cpu", spread=None)
    assert len(mdl.units(every, [0, 1, 2])) == 3 * len(mdl.EVERYTHING)
    with pytest.raises(ValueError, match=r"spread: expected settings of the run .* got vq_vae=64"):
        mdl.make_config("cpu", spread="vampprior=64,vq_vae=64")


def test_a_later_run_may_not_drop_the_units_a_folder_records(tmp_path):
    import dataclasses
    import json

    from vaebench.experiments import grid

    old = mdl.make_config("cpu", num_seeds=2, spread=None)
    recorded = [str(u) for u in mdl.units(old, [0, 1])]
    (tmp_path / "models_config.json").write_text(json.dumps(
        {"config": json.loads(json.dumps(dataclasses.asdict(old), default=str)), "seeds": [0, 1], "units": recorded}))
    grown = mdl.make_config("cpu", num_seeds=3)  # adds seed 2 of the spread, drops seed 1 of the others
    dropped = r"units: would drop 14 \(denoising_ae_noise0.1_seed1, denoising_ae_noise0_seed1, gjs_vae_alpha0.1_seed1, "
    with pytest.raises(ValueError, match=dropped + r"\.\.\.\)"):
        grid.check_config_file(tmp_path, grown, [0, 1, 2], False, "models", mdl.units(grown, [0, 1, 2]))
    more = mdl.make_config("cpu", num_seeds=3, spread=None)
    grid.check_config_file(tmp_path, more, [0, 1, 2], False, "models", mdl.units(more, [0, 1, 2]))  # a superset
