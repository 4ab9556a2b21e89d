"""Long runs that survive faults, on a tiny smoke run: worker processes killed mid-unit
(``VAEBENCH_FAULT_KILL``), damaged files in a results folder (``VAEBENCH_FAULT_CORRUPT``),
``--force`` that retrains whatever the folder holds, Ctrl-C and malformed command lines.
Resumed and retried units must end bit for bit where an uninterrupted run does."""
import numpy as np
import pandas as pd
import pytest
import torch

from vaebench import executors
from vaebench.cli import main
from vaebench.experiments import beta_vae as bv
from vaebench.training import loop
from vaebench.utils import io

TINY = dict(betas=(1.0, 4.0, 8.0), epochs=2, train_size=256, eval_size=256, pca_points=64, trajectory_every=4,
            trajectory_size=256, suite_scale=0.0)  # 8 steps a unit; a loss row and a resume point every 4
TABLES = ("beta_vae_losses.csv", "beta_vae_mig.csv", "beta_vae_trajectory.csv")
TIMING = {"images_per_s", "seconds", "train_seconds"}


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def assert_same_results(a, b, betas=TINY["betas"]):
    """Every table number but the timings, every figure array and every trained weight, bit for bit."""
    for name in TABLES:
        x, y = pd.read_csv(a / name), pd.read_csv(b / name)
        assert list(x.columns) == list(y.columns), name
        cols = [c for c in x.columns if c not in TIMING]
        pd.testing.assert_frame_equal(x[cols], y[cols], check_exact=True)
    for beta in betas:
        with np.load(bv.arrays_path(a, beta, 0)) as x, np.load(bv.arrays_path(b, beta, 0)) as y:
            assert set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)
        x, y = (weights(bv.checkpoint_path(d, beta, 0, "end")) for d in (a, b))
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The TINY run, one unit after another in this process, never interrupted."""
    out = tmp_path_factory.mktemp("straight")
    bv.run(out, "smoke", progress=False, **TINY)
    return out


@pytest.fixture
def trained(monkeypatch):
    """The (beta, seed) units that train in this process, in order."""
    units, real = [], loop.train

    def recording(cfg, method, data, train_idx, seed, files, keys, *args, **kwargs):
        units.append((keys["beta"], seed))
        return real(cfg, method, data, train_idx, seed, files, keys, *args, **kwargs)

    monkeypatch.setattr(loop, "train", recording)
    return units


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("vaebench: warning:")]


def test_killed_workers_are_retried_from_their_last_good_checkpoint_to_the_uninterrupted_numbers(
        straight, tmp_path, monkeypatch, capfd):
    # beta4's and beta8's first workers are killed after 5 of their 8 steps (resume point: step 4);
    # beta8's resume points are written damaged, so its retry names the file and starts from step 0.
    monkeypatch.setenv(executors.KILL_ENV, "beta4_seed0@5:1,beta8_seed0@5:1")
    monkeypatch.setenv(io.CORRUPT_ENV, "beta8_seed0_last.pt")
    bv.run(tmp_path, "smoke", progress=False, executor=executors.make_executor("local", jobs=2), **TINY)
    err = capfd.readouterr().err
    for unit in ("beta4_seed0", "beta8_seed0"):
        assert f"[beta-VAE] {unit} failed (attempt 1 of 3): worker killed by signal 9 (SIGKILL); retrying" in err
    [line] = warnings_in(err)
    assert line.startswith(f"vaebench: warning: {bv.checkpoint_path(tmp_path, 8.0, 0, 'last')}: a truncated or "
                           "corrupt torch file")
    assert line.endswith("; training from step 0 instead")
    assert "Traceback" not in err and "leaked semaphore" not in err
    assert not any(bv.checkpoint_path(tmp_path, b, 0, "last").exists() for b in TINY["betas"])
    assert_same_results(straight, tmp_path)


def test_damaged_results_are_named_and_never_taken_for_finished_units(straight, tmp_path, monkeypatch, capfd,
                                                                       trained):
    # beta1's end checkpoint, beta4's arrays and beta8's exported model are damaged as they are written.
    damaged = [bv.checkpoint_path(tmp_path, 1.0, 0, "end"), bv.arrays_path(tmp_path, 4.0, 0),
               bv.model_path(tmp_path, 8.0, 0)]
    monkeypatch.setenv(io.CORRUPT_ENV, ",".join(p.name for p in damaged))
    tiny = dict(TINY, export_models=True, suite_scale=0.01)  # the metric suite reads the unit's files too
    bv.run(tmp_path, "smoke", progress=False, **tiny)
    monkeypatch.delenv(io.CORRUPT_ENV)
    trained.clear()
    capfd.readouterr()
    bv.run(tmp_path, "smoke", progress=False, **tiny)
    lines = warnings_in(capfd.readouterr().err)
    assert len(lines) == 3 and all(str(p) in line for p, line in zip(damaged, lines)), lines
    # beta1 is finished by its intact exported model; beta4 and beta8 are trained again.
    assert trained == [(4.0, 0), (8.0, 0)]
    assert_same_results(straight, tmp_path, betas=(4.0, 8.0))  # the tables: beta1's rows from its exported model
    for beta in TINY["betas"]:
        x, y = weights(bv.model_path(tmp_path, beta, 0)), weights(bv.checkpoint_path(straight, beta, 0, "end"))
        assert all(torch.equal(x[k], y[k].float()) for k in y)


def test_force_retrains_every_unit_and_an_interrupted_forced_run_resumes_as_itself(tmp_path, monkeypatch, capfd,
                                                                                    trained):
    new = dict(TINY, lr=3e-3, export_models=True)
    bv.run(tmp_path / "new", "smoke", progress=False, **new)  # what the forced run must end with
    out = tmp_path / "forced"
    bv.run(out, "smoke", progress=False, **dict(TINY, export_models=True))
    before = {b: bv.model_path(out, b, 0).read_bytes() for b in TINY["betas"]}

    # The forced run's beta4 worker dies on both attempts: exit 1 naming the unit and the cause, the
    # other units done, beta4's old files intact.
    monkeypatch.setenv(executors.KILL_ENV, "beta4_seed0@5")
    sets = [a for k, v in new.items() for a in ("--set", f"{k}={','.join(map(str, v)) if k == 'betas' else v}")]
    assert main(["run", "beta-vae", "--profile", "smoke", "--out", str(out), "--no-progress", "--force", "--jobs", "2",
                 "--max-retries", "1", *sets]) == 1
    err = capfd.readouterr().err
    assert "beta4_seed0 FAILED after 2 attempt(s): worker killed by signal 9 (SIGKILL)" in err
    assert "  beta4_seed0: worker killed by signal 9 (SIGKILL)" in err and "Traceback" not in err
    assert bv.model_path(out, 4.0, 0).read_bytes() == before[4.0]
    assert all(bv.model_path(out, b, 0).read_bytes() != before[b] for b in (1.0, 8.0))
    assert bv.checkpoint_path(out, 4.0, 0, "last").exists()  # the forced run's resume point (step 4)

    # Rerun without --force: the forced run goes on (beta4 from its step 4), the old files count for nothing.
    monkeypatch.delenv(executors.KILL_ENV)
    trained.clear()
    bv.run(out, "smoke", progress=False, **new)
    assert trained == [(4.0, 0)]
    assert_same_results(tmp_path / "new", out)
    for beta in TINY["betas"]:
        x, y = weights(bv.model_path(out, beta, 0)), weights(bv.model_path(tmp_path / "new", beta, 0))
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert "Traceback" not in capfd.readouterr().err


def test_force_on_the_command_line_replaces_exported_models(tmp_path):
    args = ["run", "beta-vae", "--profile", "smoke", "--out", str(tmp_path), "--no-progress", "--set", "epochs=1",
            "--set", "train_size=128", "--set", "eval_size=128", "--set", "pca_points=32", "--set", "betas=4",
            "--set", "trajectory_every=0", "--set", "export_models=true", "--set", "suite_scale=0"]
    assert main(args) == 0
    old = bv.model_path(tmp_path, 4.0, 0).read_bytes()
    assert main([*args, "--set", "lr=3e-3", "--force"]) == 0
    assert bv.model_path(tmp_path, 4.0, 0).read_bytes() != old
    assert torch.load(bv.model_path(tmp_path, 4.0, 0), weights_only=True)["metrics"]["steps"] == 2


def test_ctrl_c_exits_130_and_says_what_was_kept(tmp_path, monkeypatch, capfd):
    real = loop.train

    def interrupted(cfg, method, *args, **kwargs):
        if method.value == 4.0:
            raise KeyboardInterrupt
        return real(cfg, method, *args, **kwargs)

    monkeypatch.setattr(loop, "train", interrupted)
    with pytest.raises(SystemExit) as e:
        main(["run", "beta-vae", "--profile", "smoke", "--out", str(tmp_path), "--no-progress", "--set", "epochs=1",
              "--set", "train_size=128", "--set", "eval_size=128", "--set", "pca_points=32",
              "--set", "trajectory_every=0", "--set", "suite_scale=0"])
    assert e.value.code == 130
    err = capfd.readouterr().err
    assert "[beta-VAE] interrupted: 1 of 3 unit(s) finished and kept (beta1_seed0)" in err
    assert "vaebench: interrupted" in err and "Traceback" not in err
    assert list(pd.read_csv(tmp_path / "beta_vae_mig.csv")["beta"]) == [1.0]


@pytest.mark.parametrize("argv, message", [
    (["run", "beta-vae", "--set", "epochs"], "vaebench: error: --set: expected KEY=VALUE, got 'epochs'"),
    (["run", "beta-vae", "--set", "epochs=abc"],
     "vaebench: error: beta_vae: override epochs='abc': expected an integer, got 'abc'"),
    (["run", "beta-vae", "--set", "lr=fast"], "vaebench: error: beta_vae: override lr='fast': expected a number, got 'fast'"),
    (["run", "beta-vae", "--set", "export_models=maybe"],
     "override export_models='maybe': expected a boolean (true/false), got 'maybe'"),
    (["run", "beta-vae", "--set", "no_such_field=1"], "got ['no_such_field']: no part of this run has them"),
    (["run", "estimators", "--profile", "cpu"],
     "vaebench: error: --profile: expected a profile of estimators (smoke, quick, paper), got 'cpu'"),
    (["run", "beta-vae", "--profile", "huge"], "error: argument --profile: invalid choice: 'huge'"),
    (["run", "beta-vae", "--jobs", "two"], "error: argument --jobs: invalid int value: 'two'"),
    (["figures", "{tmp}/missing"], "vaebench: error: figures: expected a results folder, got '{tmp}/missing', "
                                   "which does not exist"),
    (["evaluate", "{tmp}", "--size", "abc"], "vaebench: error: --size: expected a number of images or 'all', got 'abc'"),
])
def test_malformed_input_is_one_line_naming_the_argument_and_exits_2(tmp_path, capfd, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "run":
        argv += ([] if "--profile" in argv else ["--profile", "smoke"]) + ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capfd.readouterr().err
    assert message.replace("{tmp}", str(tmp_path)) in err and len(err.strip().splitlines()) == 1, err
    assert not any((tmp_path / "out").rglob("*"))  # refused before any work


def test_force_retrains_the_estimator_experiments_vae(tmp_path, monkeypatch):
    from vaebench.experiments import beta_vae, estimators

    calls = []
    real = loop.train
    monkeypatch.setattr(loop, "train", lambda *a, **k: calls.append(k.get("run_id")) or real(*a, **k))
    estimators.run(tmp_path, "smoke", progress=False, parts=("vae",))
    end = next((tmp_path / "estimators_vae").rglob("*_end.pt"))
    first = end.read_bytes()
    estimators.run(tmp_path, "smoke", progress=False, parts=("vae",))
    assert len(calls) == 1 and calls[0] is None  # a plain rerun keeps the trained VAE
    estimators.run(tmp_path, "smoke", progress=False, parts=("vae",), force=True, vae_lr=3e-3)
    assert len(calls) == 2 and calls[1] is not None  # trained again, under a fresh run id
    assert end.read_bytes() != first
