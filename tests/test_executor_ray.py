"""The Ray executor on a local 2-CPU cluster (one per module): the same numbers as the local
executor, failing units retried and reported while the rest finish, reruns that finish only
the missing units, Ctrl-C that keeps finished units, the CLI's --executor ray, estimator parts as tasks."""
import numpy as np
import pandas as pd
import pytest
import torch

ray = pytest.importorskip("ray")

from vaebench import executors  # noqa: E402
from vaebench.cli import main  # noqa: E402
from vaebench.executors.ray import RayExecutor  # noqa: E402
from vaebench.experiments import beta_vae as bv  # noqa: E402

TABLES = ("beta_vae_losses.csv", "beta_vae_mig.csv", "beta_vae_trajectory.csv")
TIMING = {"images_per_s", "seconds", "train_seconds"}


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    bv.run(out, "smoke", progress=False)
    return out


def assert_same_results(a, b):
    """Every table number but the timings, every figure array and every trained weight, bit for bit."""
    for name in TABLES:
        x, y = pd.read_csv(a / name), pd.read_csv(b / name)
        assert list(x.columns) == list(y.columns), name
        cols = [c for c in x.columns if c not in TIMING]
        pd.testing.assert_frame_equal(x[cols], y[cols], check_exact=True)
    for beta in bv.PROFILES["smoke"].betas:
        with np.load(bv.arrays_path(a, beta, 0)) as x, np.load(bv.arrays_path(b, beta, 0)) as y:
            assert set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)
        x, y = (bv.load_checkpoint(d, beta, 0).state_dict() for d in (a, b))
        assert all(torch.equal(x[k], y[k]) for k in x)


def test_smoke_on_ray_equals_local_bit_for_bit(local_smoke, tmp_path):
    bv.run(tmp_path, "smoke", progress=False, executor=RayExecutor())
    assert len(pd.read_csv(tmp_path / "beta_vae_mig.csv")) == len(bv.PROFILES["smoke"].betas)
    assert_same_results(local_smoke, tmp_path)


def test_failing_unit_is_retried_and_reported_and_a_rerun_finishes_only_it(local_smoke, tmp_path, monkeypatch,
                                                                            capsys):
    # Read on the driver and sent with each attempt: Ray workers are other processes.
    monkeypatch.setenv(executors.FAULT_ENV, "beta1_seed0:1,beta8_seed0")
    with pytest.raises(executors.UnitsFailed) as e:
        bv.run(tmp_path, "smoke", progress=False, executor=RayExecutor(max_retries=1))
    assert list(e.value.failed) == ["beta8_seed0"] and e.value.failed["beta8_seed0"].startswith("InjectedFault")
    err = capsys.readouterr().err
    assert "beta1_seed0 failed (attempt 1 of 2): InjectedFault" in err
    assert "beta8_seed0 FAILED after 2 attempt(s): InjectedFault" in err
    assert sorted(pd.read_csv(tmp_path / "beta_vae_mig.csv")["beta"]) == [1.0, 4.0]
    assert not bv.checkpoint_path(tmp_path, 8.0, 0, "init").exists()
    kept = [bv.checkpoint_path(tmp_path, b, 0, s) for b in (1.0, 4.0) for s in ("init", "end")]
    stamps = [p.stat().st_mtime_ns for p in kept]

    monkeypatch.delenv(executors.FAULT_ENV)
    bv.run(tmp_path, "smoke", progress=False, executor=RayExecutor())
    assert [p.stat().st_mtime_ns for p in kept] == stamps  # finished units were not redone
    assert bv.checkpoint_path(tmp_path, 8.0, 0, "end").exists()
    assert_same_results(local_smoke, tmp_path)


def test_a_killed_worker_process_is_retried_reported_and_ends_with_the_local_numbers(local_smoke, tmp_path,
                                                                                      monkeypatch, capfd):
    # beta4's first task kills its worker process after 10 of 24 steps (resume point: step 8).
    monkeypatch.setenv(executors.KILL_ENV, "beta4_seed0@10:1")
    bv.run(tmp_path, "smoke", progress=False, executor=RayExecutor())
    err = capfd.readouterr().err
    assert "[beta-VAE] beta4_seed0 failed (attempt 1 of 3): worker died (WorkerCrashedError: " in err
    assert "Traceback" not in err
    assert_same_results(local_smoke, tmp_path)


def test_ctrl_c_cancels_the_rest_and_keeps_finished_units(tmp_path, monkeypatch):
    real_wait, calls = ray.wait, {"n": 0}

    def interrupted_wait(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # after the first unit finished
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(ray, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        bv.run(tmp_path, "smoke", progress=False, executor=RayExecutor())
    mig = pd.read_csv(tmp_path / "beta_vae_mig.csv")
    assert len(mig) == 1
    beta = mig["beta"].iloc[0]
    assert bv.checkpoint_path(tmp_path, beta, 0, "end").exists() and bv.arrays_path(tmp_path, beta, 0).exists()


def test_cli_runs_units_on_ray_and_checks_the_cluster_devices(tmp_path, capsys):
    args = ["run", "beta-vae", "--profile", "smoke", "--out", str(tmp_path), "--no-progress", "--executor", "ray",
            "--set", "betas=2,3", "--set", "num_seeds=2", "--set", "epochs=1", "--set", "trajectory_every=0"]
    assert main(args) == 0
    mig = pd.read_csv(tmp_path / "beta_vae_mig.csv")
    assert list(zip(mig["beta"], mig["seed"])) == [(2.0, 0), (3.0, 0), (2.0, 1), (3.0, 1)]  # unit order: seed-major
    assert ray.is_initialized()  # a Ray this process had started is left running
    with pytest.raises(SystemExit) as e:
        main([*args, "--device", "cuda"])
    assert e.value.code == 2 and "--device cuda: the Ray cluster has no GPU" in capsys.readouterr().err


def test_estimator_parts_on_ray_equal_local(tmp_path):
    import torch

    from vaebench.experiments import estimators

    small = dict(parts=("gamma", "gaussian", "minibatch"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a 1-CPU task uses: torch's sums depend on the thread count
    try:
        estimators.run(tmp_path / "local", "smoke", progress=False, **small)
    finally:
        torch.set_num_threads(threads)
    estimators.run(tmp_path / "ray", "smoke", progress=False, executor=RayExecutor(cpus_per_task=1), **small)
    files = [f for p in small["parts"] for f in estimators.PART_FILES[p]]
    for name in files:
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / name), pd.read_csv(tmp_path / "ray" / name),
                                      check_exact=True)


def test_methods_paper_grid_runs_on_ray_as_locally(tmp_path):
    """The ``paper`` profile (disentanglement_lib's grid: 6 methods x 6 settings) shrunk to a few
    steps of the tiny MLP and to each method's first two settings, as Ray tasks; its units equal the
    same units run locally."""
    from vaebench.experiments import methods as mx

    grid = mx.parse_settings(mx.PROFILES["paper"].settings)
    assert len(grid) == 36 and {m for m, _ in grid} == set(mx.METHODS)
    first_two = [f"{m}={v:g}" for m, cls in mx.METHODS.items() for v in cls.study_values[:2]]

    # One torch thread on both sides: a Ray task gets its CPUs' worth, the local run torch's default,
    # and a reduction split over other thread counts rounds differently.
    tiny = dict(arch="mlp", latent_dim=4, mlp_hidden=32, lr=1e-3, steps=4, train_size=256, eval_size=256,
                pca_points=64, trajectory_every=2, trajectory_size=256, num_seeds=1, suite_scale=0.0,
                precision="fp32", eval_batch_size=256, export_models=True, num_threads=1)
    mx.run(tmp_path / "ray", "paper", progress=False, executor=RayExecutor(), settings=",".join(first_two), **tiny)
    on_ray = pd.read_csv(tmp_path / "ray" / "methods_mig.csv")
    assert len(on_ray) == 12 and set(on_ray["method"]) == set(mx.METHODS)
    some = "factor_vae=10,beta_tcvae=1"
    mx.run(tmp_path / "local", "paper", progress=False, **dict(tiny, settings=some))
    local = pd.read_csv(tmp_path / "local" / "methods_mig.csv")
    cols = [c for c in local.columns if c not in TIMING]
    picked = on_ray.set_index(["method", "setting"]).loc[[("factor_vae", 10.0), ("beta_tcvae", 1.0)]].reset_index()
    pd.testing.assert_frame_equal(picked[cols], local[cols], check_exact=True)
