"""The beta-VAE experiment: smoke profile end to end, resuming, fused vs eager training steps."""
import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from vaebench.experiments import beta_vae as bv
from vaebench.methods import BetaVAE, MethodSetup
from vaebench.models import VAE, load_vae
from vaebench.reports import beta_vae as report
from vaebench.training import loop

FACTORS = ["shape", "scale", "orientation", "posX", "posY"]
MIG_COLUMNS = ["beta", "seed", "mig"] + [f"gap_{f}" for f in FACTORS] + ["recon", "kl", "active_dims"]


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("beta_vae_smoke")
    bv.run(out, "smoke", progress=False)
    return out


def test_smoke_csvs_have_the_columns_and_finite_values(smoke_dir):
    cfg = bv.PROFILES["smoke"]
    losses = pd.read_csv(smoke_dir / "beta_vae_losses.csv")
    assert list(losses.columns) == bv.LOSS_COLUMNS
    assert len(losses) == len(cfg.betas) * cfg.num_seeds * cfg.epochs
    assert np.isfinite(losses.to_numpy(dtype=float)).all()
    # total = recon + beta * kl holds per epoch mean, as it does per sample.
    np.testing.assert_allclose(losses["total"], losses["recon"] + losses["beta"] * losses["kl"], rtol=1e-6)

    mig = pd.read_csv(smoke_dir / "beta_vae_mig.csv")
    assert set(MIG_COLUMNS) <= set(mig.columns)
    assert sorted(mig["beta"]) == sorted(cfg.betas)
    assert np.isfinite(mig[MIG_COLUMNS].to_numpy(dtype=float)).all()
    assert ((mig["mig"] >= 0) & (mig["mig"] <= 1)).all()
    assert (mig["kl"] >= 0).all()


def test_loss_falls_over_training(smoke_dir):
    losses = pd.read_csv(smoke_dir / "beta_vae_losses.csv")
    for _, g in losses.groupby(["beta", "seed"]):
        g = g.sort_values("epoch")
        # At init the decoder's logits are ~0: recon ~ 4096 log 2 = 2839 nats per image.
        assert g["total"].iloc[-1] < 0.95 * g["total"].iloc[0]
        assert g["recon"].iloc[-1] < 0.95 * 4096 * math.log(2)


def test_checkpoints_arrays_and_figures(smoke_dir):
    for beta in bv.PROFILES["smoke"].betas:
        states = {s: load_vae(bv.checkpoint_path(smoke_dir, beta, 0, s)) for s in ("init", "mid", "end")}
        assert not bv.checkpoint_path(smoke_dir, beta, 0, "last").exists()  # removed once finished
        w = {s: m.encoder[1].weight for s, m in states.items()}
        assert not torch.equal(w["init"], w["mid"]) and not torch.equal(w["mid"], w["end"])
        torch.testing.assert_close(bv.load_checkpoint(smoke_dir, beta, 0, "end").encoder[1].weight, w["end"])
        with np.load(bv.arrays_path(smoke_dir, beta, 0)) as a:
            assert a["reconstructions"].shape == a["originals"].shape == (8, 64, 64)
            assert a["pca_points"].shape == (bv.PROFILES["smoke"].pca_points, 2)
    paths = report.make_figures(smoke_dir)
    assert len(paths) >= 5 and all(p.exists() and p.stat().st_size > 0 for p in paths)
    md = report.summary_markdown(smoke_dir)
    assert "0.1642" in md and "| 8 |" in md


def test_report_lists_each_seed_and_includes_the_folders_notes(smoke_dir):
    mig = pd.read_csv(smoke_dir / "beta_vae_mig.csv")
    md = report.summary_markdown(smoke_dir)
    for _, r in mig.iterrows():  # one seed per beta in smoke: its MIG is the row's per-seed entry
        assert f"| {r['beta']:g} | 1 | {r['mig']:.4f} | " in md and f" | {r['mig']:.3f} | " in md
    notes = smoke_dir / report.NOTES
    notes.write_text("### Where we differ\n\nbeta = 1 is a plain VAE.\n")
    try:
        assert report.summary_markdown(smoke_dir).rstrip().endswith("beta = 1 is a plain VAE.")
    finally:
        notes.unlink()
    assert "plain VAE" not in report.summary_markdown(smoke_dir)


def test_second_run_does_not_retrain(smoke_dir, monkeypatch):
    ends = sorted(smoke_dir.glob("beta_vae_checkpoints/*_end.pt"))
    before = {p: p.stat().st_mtime_ns for p in ends}
    csv_before = (smoke_dir / "beta_vae_mig.csv").read_text()

    def fail(*args, **kwargs):
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(loop, "train_step", fail)
    bv.run(smoke_dir, "smoke", progress=False)
    assert {p: p.stat().st_mtime_ns for p in ends} == before
    assert (smoke_dir / "beta_vae_mig.csv").read_text() == csv_before


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    small = dict(betas=(4.0,), epochs=3, train_size=256, eval_size=256, pca_points=64)
    bv.run(tmp_path / "straight", "smoke", progress=False, **small)

    real_step, calls = loop.train_step, {"n": 0}

    def counting_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 1 (4 steps) is checkpointed; die inside epoch 2
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", counting_step)
    with pytest.raises(KeyboardInterrupt):
        bv.run(tmp_path / "resumed", "smoke", progress=False, **small)
    assert bv.checkpoint_path(tmp_path / "resumed", 4.0, 0, "last").exists()
    calls["n"] = -(10**9)  # no more interruptions
    bv.run(tmp_path / "resumed", "smoke", progress=False, **small)
    assert calls["n"] == -(10**9) + 8  # only epochs 2 and 3 were trained

    # Bit for bit: every number but the timings, the figure arrays and the trained weights.
    for name in ("beta_vae_losses.csv", "beta_vae_mig.csv"):
        a, b = (pd.read_csv(tmp_path / d / name) for d in ("straight", "resumed"))
        cols = [c for c in a.columns if c not in ("images_per_s", "train_seconds")]
        pd.testing.assert_frame_equal(b[cols], a[cols], check_exact=True)
    with np.load(bv.arrays_path(tmp_path / "straight", 4.0, 0)) as a, \
            np.load(bv.arrays_path(tmp_path / "resumed", 4.0, 0)) as b:
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    a, b = (bv.load_checkpoint(tmp_path / d, 4.0, 0).state_dict() for d in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fused_and_eager_training_steps_agree():
    from vaebench.data.dsprites import DSprites

    x = torch.as_tensor(DSprites().batch(np.arange(0, 737_280, 737_280 // 32)[:32]))
    torch.manual_seed(0)
    models = {impl: VAE(arch="mlp", latent_dim=6, mlp_hidden=64) for impl in ("fused", "eager")}
    models["eager"].load_state_dict(models["fused"].state_dict())
    opts = {impl: torch.optim.Adam(m.parameters(), lr=1e-3) for impl, m in models.items()}
    offsets = {impl: 0 for impl in models}
    method = BetaVAE(4.0, MethodSetup(total_steps=3, data_size=32, latent_dim=6, seed=0))
    for step in range(3):
        losses, passes = {}, {}
        for impl in models:
            losses[impl], passes[impl], _, offsets[impl] = loop.train_step(models[impl], opts[impl], method, x, step,
                                                                           impl=impl, seed=7, offset=offsets[impl])
        torch.testing.assert_close(losses["fused"], losses["eager"], rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(passes["fused"].kl, passes["eager"].kl, rtol=1e-5, atol=1e-5)
        for pf, pe in zip(models["fused"].parameters(), models["eager"].parameters()):
            torch.testing.assert_close(pf.grad, pe.grad, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(pf, pe, rtol=1e-5, atol=1e-6)
    assert offsets["fused"] == offsets["eager"] == 3 * 32 * 6  # B*D per step: noise never reused


def test_unknown_override_and_bad_profile_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown config override.*learning_rate"):
        bv.run(tmp_path, "smoke", learning_rate=0.1)
    with pytest.raises(ValueError, match="profile must be one of"):
        bv.make_config("huge")
    assert bv.make_config("smoke", betas="1,2", epochs="2").betas == (1.0, 2.0)


def test_results_of_another_config_are_not_mixed(smoke_dir):
    with pytest.raises(ValueError, match="another config.*epochs"):
        bv.run(smoke_dir, "smoke", progress=False, epochs=4)
    with pytest.raises(ValueError, match="another config.*betas"):
        bv.run(smoke_dir, "smoke", progress=False, betas="1,4")


def test_betas_in_another_order_resume_the_same_units(smoke_dir, tmp_path, monkeypatch):
    out = tmp_path / "reordered"
    shutil.copytree(smoke_dir, out)
    before = pd.read_csv(out / "beta_vae_mig.csv").sort_values("beta").reset_index(drop=True)
    # Every unit is finished, so nothing may train again.
    monkeypatch.setattr(loop, "train", lambda *a, **k: pytest.fail("a finished unit was trained again"))
    bv.run(out, "smoke", progress=False, betas="8,1,4")
    after = pd.read_csv(out / "beta_vae_mig.csv").sort_values("beta").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_a_results_folder_grows_by_new_betas_and_seeds_only(smoke_dir, tmp_path, monkeypatch):
    out = tmp_path / "grown"
    shutil.copytree(smoke_dir, out)
    trained, train = [], loop.train
    monkeypatch.setattr(loop, "train", lambda cfg, method, data, idx, seed, files, keys, *a, **k: (
        trained.append((keys["beta"], seed)), train(cfg, method, data, idx, seed, files, keys, *a, **k))[1])
    bv.run(out, "smoke", progress=False, betas="1,2,4,8", num_seeds=2)
    assert sorted(trained) == [(1.0, 1), (2.0, 0), (2.0, 1), (4.0, 1), (8.0, 1)]  # only the new units
    mig = pd.read_csv(out / "beta_vae_mig.csv")
    assert sorted(zip(mig.beta, mig.seed)) == [(b, s) for b in (1.0, 2.0, 4.0, 8.0) for s in (0, 1)]
    old = pd.read_csv(smoke_dir / "beta_vae_mig.csv")
    pd.testing.assert_frame_equal(mig[mig.seed.eq(0) & mig.beta.ne(2.0)].reset_index(drop=True), old)
    # Dropping a seed the folder holds is refused.
    with pytest.raises(ValueError, match="another config.*seeds"):
        bv.run(out, "smoke", progress=False, seed=1, betas="1,2,4,8")
