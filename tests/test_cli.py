"""The command line end to end on the smoke profile."""
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from vaebench.cli import build_parser, main

CSVS = ["bench.csv", "beta_vae_losses.csv", "beta_vae_mig.csv", "methods_metrics.csv", "models_summary.csv",
        "estimators_gamma.csv",
        "estimators_gaussian.csv",
        "estimators_vae_grad.csv", "estimators_vae_elbo.csv", "estimators_minibatch.csv"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run_all")
    assert main(["run", "all", "--profile", "smoke", "--out", str(out), "--no-progress"]) == 0
    return out


def test_run_all_writes_tables_figures_report_and_provenance(smoke_run):
    for name in CSVS:
        frame = pd.read_csv(smoke_run / name)
        assert len(frame) > 0, name
    bench = pd.read_csv(smoke_run / "bench.csv")
    assert set(bench.op) == {"reparam_kl", "mig", "gaussian_logdensity_lse", "train_mlp"} and (bench.median_ms > 0).all()
    train = bench[bench.op == "train_mlp"].set_index("impl")
    assert train.loc["fp32", "speedup_vs_baseline"] == 1.0
    assert {"eager", "fused"} <= set(bench.impl) and {"reference", "vectorized", "fused"} <= set(bench.impl)
    assert len(list(smoke_run.glob("*.png"))) >= 10
    report = (smoke_run / "REPORT.md").read_text()
    for heading in ("## Provenance", "## Speed", "## beta-VAE", "## Methods", "## The documents' models",
                    "## Gradient estimators"):
        assert heading in report
    run = json.loads((smoke_run / "run.json").read_text())
    for key in ("command", "profile", "seed", "torch", "device", "git_commit", "date", "wall_seconds"):
        assert key in run
    assert run["profile"] == "smoke" and set(run["finished_parts"]) == {"bench", "beta-vae", "methods", "models",
                                                                   "estimators"}
    # the device it records names this CPU, which is how the reference tests tell whether bits must match
    from vaebench.utils.provenance import ran_on_this_cpu

    assert ran_on_this_cpu(run["device"]) and not ran_on_this_cpu("Another CPU (2 logical CPUs, torch threads 2)")
    # one model name covers machines with and without AVX-512: the instruction set tells them apart
    from vaebench.utils.provenance import cpu_capability, cpu_name

    assert cpu_capability() in run["device"]
    assert not ran_on_this_cpu(f"{cpu_name()} (2 logical CPUs, torch threads 2, NOT-{cpu_capability()})")
    assert ran_on_this_cpu(f"{cpu_name()} (2 logical CPUs, torch threads 2)")  # recorded before the set was


def test_figures_rebuilds_the_same_files_from_csvs(smoke_run):
    def contents(p):  # a PDF records when it was made; nothing else may differ
        data = p.read_bytes()
        return re.sub(rb"/CreationDate \(D:[^)]*\)", b"", data) if p.suffix == ".pdf" else data

    built = [*smoke_run.glob("*.png"), *smoke_run.glob("*.pdf"), smoke_run / "REPORT.md"]
    before = {p.name: contents(p) for p in built}
    assert len(before) >= 21
    for p in built:
        p.unlink()
    assert main(["figures", str(smoke_run)]) == 0
    after = {p.name: contents(p) for p in [*smoke_run.glob("*.png"), *smoke_run.glob("*.pdf"), smoke_run / "REPORT.md"]}
    assert after.keys() == before.keys()
    assert [name for name in before if after[name] != before[name]] == []


def test_second_run_reuses_finished_work(smoke_run):
    watched = [smoke_run / n for n in ("bench.csv", "beta_vae_mig.csv", "estimators_gamma.csv")]
    watched += sorted((smoke_run / "beta_vae_checkpoints").glob("*_end.pt"))
    stamps = {p: p.stat().st_mtime_ns for p in watched}
    assert main(["run", "all", "--profile", "smoke", "--out", str(smoke_run), "--no-progress"]) == 0
    for p in [smoke_run / "bench.csv", smoke_run / "estimators_gamma.csv"] + watched[3:]:
        assert p.stat().st_mtime_ns == stamps[p], f"{p.name} was redone"
    history = json.loads((smoke_run / "run.json").read_text())["history"]
    assert len(history) == 2 and all(set(h["finished_parts"]) == {"bench", "beta-vae", "methods", "models",
                                                                   "estimators"} for h in history)


def test_help_lists_commands_and_defaults():
    out = subprocess.run([sys.executable, "-m", "vaebench", "--help"], capture_output=True, text=True, check=True).stdout
    for word in ("run", "bench", "figures"):
        assert word in out
    run_help = build_parser().parse_args(["run", "all"])
    assert run_help.profile == "quick" and run_help.out is None  # -> runs/quick


def test_bad_set_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "beta-vae", "--profile", "smoke", "--out", str(tmp_path), "--set", "no_such_field=1"])
    assert e.value.code == 2 and "no part of this run has them" in capsys.readouterr().err


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "beta-vae", "--profile", "smoke", "--out", str(tmp_path), "--data", str(tmp_path / "missing.npz")])
    assert e.value.code == 2
    assert "vaebench: error: dSprites file not found" in capsys.readouterr().err
