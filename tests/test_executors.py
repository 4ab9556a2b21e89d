"""The executor layer with the local executor: fault injection, retries and reports, resuming
only the missing units, units independent of the process's earlier state, CLI argument errors."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vaebench import executors
from vaebench.cli import main
from vaebench.experiments import beta_vae as bv
from vaebench.experiments import grid
from vaebench.training import loop

TINY = dict(betas=(1.0, 4.0, 8.0), epochs=2, train_size=256, eval_size=256, pca_points=64, trajectory_every=4,
            trajectory_size=256)
TIMING = {"images_per_s", "seconds", "train_seconds"}


def _tables(out):
    return {name: pd.read_csv(out / name) for name in ("beta_vae_losses.csv", "beta_vae_mig.csv",
                                                       "beta_vae_trajectory.csv")}


def test_fault_plan_parses_names_and_attempts():
    assert executors.fault_plan("beta1_seed0:2, gamma") == {"beta1_seed0": 2, "gamma": 1 << 30}
    assert executors.fault_plan("") == {}
    with pytest.raises(ValueError, match="VAEBENCH_FAULT_UNITS: expected name\\[:attempts\\], got 'a:x'"):
        executors.fault_plan("a:x")
    assert executors.kill_plan("beta4_seed0@5:1, b@3") == {"beta4_seed0": (5, 1), "b": (3, 1 << 30)}
    with pytest.raises(ValueError, match="VAEBENCH_FAULT_KILL: expected name@step\\[:attempts\\], got 'a'"):
        executors.kill_plan("a")
    assert executors.exit_cause(-9) == "worker killed by signal 9 (SIGKILL)"
    assert executors.exit_cause(3) == "worker exited with code 3 before finishing its unit"


def test_failing_unit_is_retried_reported_and_a_rerun_finishes_only_it(tmp_path, monkeypatch, capsys):
    trained = []
    real = loop.train

    def recording(cfg, method, data, train_idx, seed, files, keys, *args, **kwargs):
        trained.append((keys["beta"], seed))
        return real(cfg, method, data, train_idx, seed, files, keys, *args, **kwargs)

    monkeypatch.setattr(loop, "train", recording)
    monkeypatch.setenv(executors.FAULT_ENV, "beta1_seed0:1,beta8_seed0")  # once; every attempt
    with pytest.raises(executors.UnitsFailed) as e:
        bv.run(tmp_path, "smoke", progress=False, executor=executors.make_executor("local", max_retries=2), **TINY)
    assert list(e.value.failed) == ["beta8_seed0"] and "InjectedFault" in e.value.failed["beta8_seed0"]
    err = capsys.readouterr().err
    assert "beta1_seed0 failed (attempt 1 of 3): InjectedFault" in err
    assert "beta8_seed0 FAILED after 3 attempt(s): InjectedFault" in err
    assert trained == [(1.0, 0), (4.0, 0)]  # injected before training: beta8 never started
    assert sorted(pd.read_csv(tmp_path / "beta_vae_mig.csv")["beta"]) == [1.0, 4.0]
    ends = {b: bv.checkpoint_path(tmp_path, b, 0, "end") for b in (1.0, 4.0)}
    stamps = {b: p.stat().st_mtime_ns for b, p in ends.items()}

    monkeypatch.delenv(executors.FAULT_ENV)
    trained.clear()
    bv.run(tmp_path, "smoke", progress=False, **TINY)
    assert trained == [(8.0, 0)]
    assert {b: p.stat().st_mtime_ns for b, p in ends.items()} == stamps
    # The resumed folder holds what one uninterrupted run writes.
    bv.run(tmp_path / "straight", "smoke", progress=False, **TINY)
    for name, table in _tables(tmp_path / "straight").items():
        cols = [c for c in table.columns if c not in TIMING]
        pd.testing.assert_frame_equal(_tables(tmp_path)[name][cols], table[cols], check_exact=True)


def test_a_unit_does_not_depend_on_what_ran_before_it_in_the_process(tmp_path):
    cfg = bv.make_config("smoke", **TINY)
    setup = grid.RunSetup(cfg, 0)
    unit = bv.Unit(4.0, 0)
    torch.manual_seed(123)
    np.random.seed(5)
    alone = grid.run_unit(setup, unit, tmp_path / "alone")
    # Another unit first, then the global RNGs moved on.
    grid.run_unit(setup, bv.Unit(8.0, 0), tmp_path / "after")
    torch.rand(1000)
    np.random.rand(10)
    after = grid.run_unit(setup, unit, tmp_path / "after")

    def same(a, b):  # frames: the trajectory's first row has NaN recon/kl
        a, b = pd.DataFrame(a), pd.DataFrame(b)
        cols = [c for c in a.columns if c not in TIMING]
        pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)

    same(alone[0], after[0])  # loss history
    same([alone[1]], [after[1]])  # metrics
    same(alone[2], after[2])  # trajectory
    assert [r["step"] for r in after[2]] == [0, 4, 8]
    with np.load(bv.arrays_path(tmp_path / "alone", 4.0, 0)) as a, np.load(bv.arrays_path(tmp_path / "after", 4.0, 0)) as b:
        assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("args, message", [
    (["--ray-address", "auto"], "--ray-address needs --executor ray (given --executor local, --ray-address auto)"),
    (["--cpus-per-task", "2"], "--cpus-per-task needs --executor ray (given --executor local, --cpus-per-task 2)"),
    (["--max-retries", "-1"], "max_retries (--max-retries) must be an integer >= 0, got -1"),
    (["--jobs", "0"], "jobs (--jobs) must be an integer >= 1, got 0"),
])
def test_bad_executor_arguments_are_clear_errors(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(["run", "beta-vae", "--profile", "smoke", "--out", str(tmp_path), *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "beta_vae_config.json").exists()  # rejected before any work


def test_units_in_worker_processes_equal_the_sequential_run_and_failures_are_reported(tmp_path, monkeypatch, capsys):
    bv.run(tmp_path / "one", "smoke", progress=False, **TINY)
    # Worker processes start fresh (spawn): the fault plan reaches them with each attempt.
    monkeypatch.setenv(executors.FAULT_ENV, "beta4_seed0:1,beta8_seed0")
    with pytest.raises(executors.UnitsFailed) as e:
        bv.run(tmp_path / "two", "smoke", progress=False, executor=executors.make_executor("local", jobs=2), **TINY)
    assert list(e.value.failed) == ["beta8_seed0"]
    assert "beta4_seed0 failed (attempt 1 of 3): InjectedFault" in capsys.readouterr().err
    monkeypatch.delenv(executors.FAULT_ENV)
    bv.run(tmp_path / "two", "smoke", progress=False, executor=executors.make_executor("local", jobs=2), **TINY)
    for name, table in _tables(tmp_path / "one").items():
        cols = [c for c in table.columns if c not in TIMING]
        pd.testing.assert_frame_equal(_tables(tmp_path / "two")[name][cols], table[cols], check_exact=True)
    with pytest.raises(ValueError, match="--jobs is for --executor local"):
        executors.make_executor("ray", jobs=2)


def test_cli_reports_failed_units_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(executors.FAULT_ENV, "beta2_seed0")
    code = main(["run", "beta-vae", "--profile", "smoke", "--out", str(tmp_path), "--no-progress", "--max-retries", "0",
                 "--set", "betas=1,2", "--set", "epochs=1", "--set", "train_size=128", "--set", "eval_size=128",
                 "--set", "pca_points=32", "--set", "trajectory_every=0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "beta-vae: 1 unit(s) failed" in err and "beta2_seed0: InjectedFault" in err
    assert list(pd.read_csv(tmp_path / "beta_vae_mig.csv")["beta"]) == [1.0]


def test_ray_is_imported_only_for_the_ray_executor():
    code = ("import sys; from vaebench import cli, executors; from vaebench.experiments import beta_vae, estimators; "
            "executors.make_executor('local'); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


DRIVER = """
import os, sys, time
from pathlib import Path
from vaebench.executors import Experiment, run_experiment
from vaebench.executors.local import LocalExecutor

def sleeper(config, unit, out_dir, device, **kwargs):
    (Path(out_dir) / f"{unit}.pid").write_text(str(os.getpid()))
    time.sleep(300)

if __name__ == "__main__":
    exp = Experiment("sleepers", None, ["a", "b"], sleeper, lambda *a: None, lambda *a: None, Path(sys.argv[1]))
    run_experiment(exp, LocalExecutor(jobs=2), progress=False)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    if not Path("/proc").is_dir():
        return True
    # A zombie is gone for our purpose: its parent, the killed driver, cannot reap it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(os.name != "posix", reason="POSIX process signals")
def test_workers_end_when_the_driver_is_killed(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    pids = []
    try:
        deadline = time.monotonic() + 120
        while len(pids) < 2 and time.monotonic() < deadline and driver.poll() is None:
            pids = [int(p.read_text()) for p in tmp_path.glob("*.pid") if p.read_text()]
            time.sleep(0.2)
        assert len(pids) == 2, "the two worker units never started"
        driver.send_signal(signal.SIGKILL)  # no cleanup in the driver at all
        driver.wait()
        deadline = time.monotonic() + 15  # the workers poll their parent every second
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), "workers outlived their driver"
    finally:
        driver.kill()
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
