"""Fast training and scoring of the beta-VAE: precision switch, MIG trajectory (written, resumed
without duplicates), exported models re-scored by the evaluate command, the cpu profile."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vaebench.cli import main
from vaebench.experiments import beta_vae as bv
from vaebench.experiments import evaluate, grid
from vaebench.methods import BetaVAE, MethodSetup
from vaebench.metrics import mig_reference
from vaebench.models import VAE, load_vae
from vaebench.models import precision as training
from vaebench.training import evaluation, loop
from vaebench.training.prefetch import Prefetcher

TINY = dict(betas=(4.0,), train_size=256, eval_size=256, pca_points=64, trajectory_every=3, trajectory_size=300)


# --- precision ---------------------------------------------------------------------------------

def test_auto_precision_falls_back_to_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr(training, "bf16_supported", lambda device="cpu": False)
    assert training.resolve_precision("auto") == "fp32"
    with pytest.raises(ValueError, match="precision='bf16' needs native bfloat16"):
        training.resolve_precision("bf16")
    monkeypatch.setattr(training, "bf16_supported", lambda device="cpu": True)
    assert training.resolve_precision("auto") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        training.resolve_precision("fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        bv.make_config("smoke", precision="half")


@pytest.mark.skipif(not training.bf16_supported("cpu"), reason="this CPU has no native bfloat16")
def test_bf16_step_computes_the_fp32_loss_to_bf16_accuracy():
    torch.manual_seed(0)
    x = (torch.rand(16, 1, 64, 64, generator=torch.Generator().manual_seed(1)) < 0.15).float()
    models = {p: VAE(arch="conv", latent_dim=6) for p in ("fp32", "bf16")}
    models["bf16"].load_state_dict(models["fp32"].state_dict())
    terms, losses = {}, {}
    method = BetaVAE(4.0, MethodSetup(total_steps=1, data_size=16, latent_dim=6, seed=0))
    for p, m in models.items():
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)
        losses[p], terms[p], _, _ = loop.train_step(m, opt, method, x, 0, impl="fused", seed=3, offset=0, precision=p)
    # The loss terms are float32 in both (widened before the KL and BCE sums).
    assert losses["bf16"].dtype == terms["bf16"].kl.dtype == torch.float32
    # bf16 keeps 8 mantissa bits: per-pixel logits within ~2^-8 relative, so the 4,096-pixel
    # BCE sum agrees to well under a percent.
    torch.testing.assert_close(terms["bf16"].recon, terms["fp32"].recon, rtol=1e-2, atol=0)
    torch.testing.assert_close(terms["bf16"].kl, terms["fp32"].kl, rtol=5e-2, atol=1e-3)


def test_prefetcher_yields_in_order_and_raises_at_the_failing_item():
    with Prefetcher(lambda i: i * i, 2, 7) as it:
        assert list(it) == [4, 9, 16, 25, 36]

    def make(i):
        if i == 3:
            raise RuntimeError("bad batch 3")
        return i

    with Prefetcher(make, 0, 10) as it:
        assert next(it) == 0 and next(it) == 1 and next(it) == 2
        with pytest.raises(RuntimeError, match="bad batch 3"):
            next(it)


# --- trajectory --------------------------------------------------------------------------------

def test_trajectory_rows_and_resume_without_duplicates(tmp_path, monkeypatch):
    bv.run(tmp_path / "straight", "smoke", progress=False, **TINY)
    straight = pd.read_csv(tmp_path / "straight" / "beta_vae_trajectory.csv")
    # 3 epochs of 4 steps: scored at step 0, every 3 steps, and at the end.
    assert list(straight["step"]) == [0, 3, 6, 9, 12]
    assert list(straight["images"]) == [0, 192, 384, 576, 768]
    assert {"mig", "gap_shape", "gap_posY", "active_dims", "recon", "kl", "seconds"} <= set(straight.columns)
    assert straight["seconds"].is_monotonic_increasing and ((straight["mig"] >= 0) & (straight["mig"] <= 1)).all()
    # The last row scores the final model on the same images as an independent MIG would.
    cfg = bv.make_config("smoke", **TINY)
    model = bv.load_checkpoint(tmp_path / "straight", 4.0, 0, "end")
    from vaebench.data import DSprites

    data = DSprites()
    idx = np.random.default_rng([0, 1]).choice(len(data), size=cfg.trajectory_size, replace=False)
    means = evaluation.encode_means(model, data, idx, precision=training.resolve_precision(cfg.precision))
    ref = mig_reference(means, data.index_to_factors(idx)[:, 1:], num_bins=cfg.num_bins)
    assert straight["mig"].iloc[-1] == pytest.approx(ref.score, abs=1e-12)

    real_step, calls = loop.train_step, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # after the scoring point at step 6 (a resume point), before step 9
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bv.run(tmp_path / "resumed", "smoke", progress=False, **TINY)
    partial = pd.read_csv(tmp_path / "resumed" / "beta_vae_trajectory.csv")
    assert list(partial["step"]) == [0, 3, 6]  # written as the unit runs
    calls["n"] = -(10**9)
    bv.run(tmp_path / "resumed", "smoke", progress=False, **TINY)
    assert calls["n"] == -(10**9) + 6  # steps 7..12 only
    resumed = pd.read_csv(tmp_path / "resumed" / "beta_vae_trajectory.csv")
    assert list(resumed["step"]) == list(straight["step"])  # no duplicates
    np.testing.assert_allclose(resumed[["mig", "recon", "kl"]], straight[["mig", "recon", "kl"]], rtol=1e-5)


# --- exported models and the evaluate command -----------------------------------------------------

def test_exported_models_rescore_to_the_runs_numbers(tmp_path, capsys):
    small = {**TINY, "trajectory_every": 0, "export_models": True}
    bv.run(tmp_path, "smoke", progress=False, **small)
    path = bv.model_path(tmp_path, 4.0, 0)
    state = torch.load(path, weights_only=False)
    assert set(state) >= {"model_config", "model_state", "beta", "seed", "step"} and "optimizer_state" not in state
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in state["model_state"].values())
    end = bv.load_checkpoint(tmp_path, 4.0, 0, "end")
    for a, b in zip(load_vae(path).parameters(), end.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    # The model file alone marks the unit finished (a committed reference keeps no checkpoints).
    mig_before = pd.read_csv(tmp_path / "beta_vae_mig.csv")
    for p in tmp_path.glob("beta_vae_checkpoints/*"):
        p.unlink()
    bv.run(tmp_path, "smoke", progress=False, **small)
    assert not bv.checkpoint_path(tmp_path, 4.0, 0, "end").exists()  # not retrained
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "beta_vae_mig.csv"), mig_before)

    table = evaluate.score_models([tmp_path], size=500, seed=3, progress=False)
    assert list(table["beta"]) == [4.0] and list(table["seed"]) == [0] and list(table["images"]) == [500]
    from vaebench.data import DSprites

    data = DSprites()
    idx = np.random.default_rng(3).choice(len(data), 500, replace=False)
    means = evaluation.encode_means(end, data, idx)
    ref = mig_reference(means, data.index_to_factors(idx)[:, 1:], num_bins=20)
    assert table["mig"].iloc[0] == pytest.approx(ref.score, abs=1e-12)

    assert main(["evaluate", str(tmp_path), "--size", "500", "--seed", "3", "--no-progress", "--metrics", "mig",
                 "--csv", str(tmp_path / "scores.csv")]) == 0
    out = capsys.readouterr().out
    assert "beta4_seed0.pt" in out and f"mig={ref.score:.4f}" in out
    assert pd.read_csv(tmp_path / "scores.csv")["mig"].iloc[0] == pytest.approx(ref.score, abs=1e-12)


def test_evaluate_summary_pools_models_per_beta():
    table = pd.DataFrame({"model": list("abcde"), "beta": [4.0, 4.0, 8.0, 4.0, None],
                          "seed": [0, 1, 0, 3, None], "mig": [0.10, 0.20, 0.05, 0.30, 0.9]})
    s = evaluate.summarize(table).set_index("group")
    assert list(s.index) == ["beta=4", "beta=8"] and list(s["n"]) == [3, 1]  # the beta-less model is left out
    assert s.loc["beta=4", "mig_mean"] == pytest.approx(0.2) and s.loc["beta=4", "mig_sd"] == pytest.approx(0.1)
    assert (s.loc["beta=4", "mig_min"], s.loc["beta=4", "mig_max"]) == (0.10, 0.30)
    assert np.isnan(s.loc["beta=8", "mig_sd"])
    text = evaluate.format_table(table)
    assert "beta=4 over 3 model(s): mig=0.2000 +- 0.1000" in text and "beta=4: mig min 0.1000, max 0.3000" in text
    assert "beta=8 over 1 model(s): mig=0.0500\n" in text


def test_evaluate_summary_groups_method_files_by_method_and_setting():
    # the methods' and models' files record method, param and setting, not beta: a beta-VAE method
    # file pools with a beta-VAE run's file of the same beta, other methods group on their own
    table = pd.DataFrame({"model": list("abcdef"),
                          "method": [None, "beta_vae", "factor_vae", "factor_vae", "vq_vae", None],
                          "param": [None, "beta", "gamma", "gamma", "codebook_size", None],
                          "setting": [None, 16.0, 10.0, 10.0, 512.0, None],
                          "beta": [16.0, None, None, None, None, 2.0], "mig": [0.1, 0.3, 0.2, 0.4, 0.01, 0.5]})
    s = evaluate.summarize(table).set_index("group")
    # families in name order, settings numerically (16 after 2)
    assert list(s.index) == ["beta=2", "beta=16", "factor_vae gamma=10", "vq_vae codebook_size=512"]
    assert list(s["n"]) == [1, 2, 2, 1] and s.loc["beta=16", "mig_mean"] == pytest.approx(0.2)
    assert s.loc["factor_vae gamma=10", "mig_sd"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    text = evaluate.format_table(table)
    assert "factor_vae gamma=10 over 2 model(s): mig=0.3000 +- 0.1414" in text
    assert "method=nan" not in text and "beta=nan" not in text


def test_evaluate_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no models"):
        evaluate.model_files([tmp_path])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        evaluate.model_files([tmp_path / "nope.pt"])
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(tmp_path / "nope.pt")])
    assert e.value.code == 2


# --- profiles ------------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["cpu", "sweep", "paper"])
def test_long_profiles_are_valid(profile):
    cfg = bv.make_config(profile)
    assert cfg.arch == "conv" and cfg.batch_size >= 1 and cfg.trajectory_size == 10_000 and cfg.num_bins == 20
    if profile == "cpu":
        assert cfg.betas == (1.0, 4.0, 8.0) and cfg.num_seeds >= 3  # the document's grid, with a spread
        assert cfg.export_models and cfg.trajectory_every > 0 and cfg.eval_size is None  # full-grid final MIG
        assert cfg.precision == "auto" and cfg.channels_last
        assert cfg.trajectory_every * cfg.batch_size == 160_000  # the sweep's scoring interval, in images


REFERENCE = Path(__file__).resolve().parents[1] / "results" / "cpu"


@pytest.mark.skipif(not (REFERENCE / "beta_vae_config.json").exists(), reason="no committed cpu reference")
def test_committed_cpu_reference_is_the_profile_and_resumes_with_it():
    # `run beta-vae --profile cpu --out results/cpu` must extend the committed reference, not refuse it.
    cfg = bv.make_config("cpu")
    grid.check_config_file(REFERENCE, cfg, list(range(cfg.num_seeds)), force=False, name="beta_vae")
    for path in sorted((REFERENCE / "models").glob("*.pt")):
        model = load_vae(path)
        assert model.config == cfg.model_config() and path.stem.startswith("beta")


# --- the recipe sweep --------------------------------------------------------------------------

def test_sweep_runs_variants_as_processes_and_collects_their_trajectories(tmp_path):
    from vaebench.experiments import sweep

    tiny = {"arch": "mlp", "latent_dim": "3", "mlp_hidden": "16", "train_size": "256", "steps": "8",
            "trajectory_every": "4", "trajectory_size": "200", "eval_size": "200", "pca_points": "50"}
    names = ["conv_b4_lr5e-4", "conv_b8_lr5e-4_s1"]
    codes = sweep.run_sweep(tmp_path, names, jobs=2, extra=tiny, progress=False)
    assert codes == {n: 0 for n in names}
    summary = sweep.collect(tmp_path)
    assert list(summary["variant"]) == names
    assert list(summary["seed"]) == [0, 1] and list(summary["beta"]) == [4.0, 8.0]
    assert (summary["images"] == 8 * 64).all() and (summary["arch"] == "mlp").all()
    traj = pd.read_csv(tmp_path / "sweep_trajectories.csv")
    assert sorted(traj.groupby("variant")["step"].apply(list).tolist()) == [[0, 4, 8]] * 2
    # The summary's best MIG is the trajectory's, and a variant below the target never "reaches" it.
    for _, r in summary.iterrows():
        g = traj[traj.variant == r["variant"]]
        assert r["best_mig"] == g["mig"].max()
        assert np.isnan(r["images_to_0.10"]) == (g["mig"].max() < sweep.TARGET_MIG)
    assert (tmp_path / "sweep_mig.png").stat().st_size > 0
    assert "conv_b8_lr5e-4_s1" in sweep.summary_markdown(tmp_path)
    with pytest.raises(ValueError, match="unknown variant"):
        sweep.run_sweep(tmp_path, ["nope"])


def test_precision_group_is_the_cpu_recipe_in_both_precisions_over_three_seeds():
    from vaebench.experiments import sweep

    names = sweep.GROUPS["precision"]
    assert len(names) == 6
    cfgs = {n: dict(sweep.VARIANTS[n]) for n in names}
    assert sorted((c.pop("precision"), c.pop("seed")) for c in cfgs.values()) == sorted(
        (p, str(s)) for p in ("bf16", "fp32") for s in range(3))
    # Apart from precision and seed, every variant is the `cpu` profile's first recipe at beta 4
    # (results/cpu_bs64, as its notes give it: batch 64, 40k steps, warm-up 10k).
    first_cpu = bv.make_config("cpu", batch_size=64, steps=40_000, trajectory_every=2500, beta_warmup_steps=10_000)
    for c in cfgs.values():
        cfg = bv.make_config("sweep", **c)
        assert (cfg.betas, cfg.lr, cfg.beta_warmup_steps, cfg.arch, cfg.batch_size, cfg.latent_dim) == (
            (4.0,), first_cpu.lr, first_cpu.beta_warmup_steps, first_cpu.arch, first_cpu.batch_size,
            first_cpu.latent_dim)
    cmd = sweep.variant_command("cpu_b4_fp32_s2", Path("out"), device="cpu", seed=0, extra={})
    assert cmd[cmd.index("--seed") + 1] == "2" and "precision=fp32" in cmd


def test_precision_pairs_compare_means_against_the_seed_spread():
    from vaebench.experiments import sweep

    recipe = {"arch": "conv", "beta": 4.0, "lr": 5e-4, "beta_warmup_steps": 0, "batch_size": 64, "latent_dim": 10}
    rows = []
    for p, migs in (("fp32", [0.10, 0.12, 0.14]), ("bf16", [0.11, 0.13, 0.15])):
        for seed, m in enumerate(migs):
            for step in (0, 10):
                rows.append({**recipe, "precision": p, "seed": seed, "step": step, "images": step * 64,
                             "mig": m if step else 0.0 + seed * 1e-3, "recon": 50.0 + seed, "kl": 10.0 + seed})
    # A recipe run in one precision only has no pair.
    rows.append({**recipe, "lr": 1e-3, "precision": "bf16", "seed": 0, "step": 0, "images": 0, "mig": 0.0,
                 "recon": 1.0, "kl": 1.0})
    pairs = sweep.precision_pairs(pd.DataFrame(rows))
    assert list(pairs["step"]) == [0, 10] and (pairs["lr"] == 5e-4).all()
    last = pairs.iloc[-1]
    assert last["n_bf16"] == last["n_fp32"] == 3
    assert last["mig_diff"] == pytest.approx(0.01) and last["mig_fp32_sd"] == pytest.approx(0.02)
    assert last["mig_diff_se"] == pytest.approx(np.sqrt(2 * 0.02 ** 2 / 3))
    assert last["mig_within_2se"] and last["recon_diff"] == 0.0
    # Identical seeds in both precisions: zero difference, zero spread, still "within".
    assert pairs.iloc[0]["kl_diff"] == 0.0 and pairs.iloc[0]["kl_within_2se"]
    far = pd.DataFrame(rows).assign(mig=lambda d: d["mig"] + (d["precision"] == "bf16") * 1.0)
    assert not sweep.precision_pairs(far).iloc[-1]["mig_within_2se"]


def test_side_by_side_timing_combines_the_processes_steps():
    from vaebench.bench import training_cases

    # Two processes stepping every 2 s and 1 s make a batch every 2/3 s together.
    assert training_cases.effective_step_times([[2.0, 4.0], [1.0, 4.0]]) == pytest.approx([2 / 3, 2.0])
    for name in training_cases.PROCESS_SETTINGS:
        if training_cases.available(name, "cpu"):
            med, iqr = training_cases.time_side_by_side(name, "mlp", 8, repeats=3)
            assert np.isfinite(med) and med > 0 and iqr >= 0


def test_side_by_side_timing_reports_a_failing_worker(monkeypatch):
    from vaebench.bench import training_cases

    # An arch no model has: both workers fail at make_case; the parent must raise, not hang.
    monkeypatch.setitem(training_cases.PROCESS_SETTINGS, "broken", ("fp32", 2, 1, True))
    with pytest.raises(RuntimeError, match="'broken' failed in a worker: ValueError: .*arch"):
        training_cases.time_side_by_side("broken", "no-such-arch", 8, repeats=1)


def test_breadth_group_changes_the_core_recipe_on_one_image_budget():
    from vaebench.experiments import sweep

    core = {"betas": "4", "lr": "5e-4"}
    names = sweep.GROUPS["breadth"]
    assert len(names) == 6
    changed = set()
    for n in names:
        v = dict(sweep.VARIANTS[n])
        batch = int(v.get("batch_size", 64))
        cfg = bv.make_config("sweep", **{k: x for k, x in v.items()})
        assert cfg.total_steps(1) * batch == sweep.BREADTH_IMAGES and cfg.trajectory_every * batch == 160_000
        diff = {k for k in v if k not in ("steps", "trajectory_every") and v[k] != core.get(k)}
        assert diff and (len(diff) == 1 or n.startswith("chen")), (n, diff)
        changed |= diff
    # Between them: learning rate, batch size, latent size, warm-up and architecture.
    assert changed == {"lr", "batch_size", "latent_dim", "beta_warmup_steps", "arch"}


def test_budget_group_is_the_cpu_recipe_on_twice_its_images():
    from vaebench.experiments import sweep

    cpu, betas = bv.make_config("cpu"), []
    for n in sweep.GROUPS["budget"]:
        cfg = bv.make_config("sweep", **sweep.VARIANTS[n])
        betas += cfg.betas
        # Everything that shapes training is the cpu profile's, so seed 0 repeats its first half.
        same = ("arch", "latent_dim", "batch_size", "lr", "beta_warmup_steps", "precision", "channels_last",
                "trajectory_every", "trajectory_size", "num_bins", "train_size")
        assert {k: getattr(cfg, k) for k in same} == {k: getattr(cpu, k) for k in same}, n
        assert cfg.total_steps(1) == 2 * cpu.total_steps(1)
    assert sorted(betas) == [4.0, 8.0]
