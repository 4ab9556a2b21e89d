"""The metric suite where a user meets it: ``run beta-vae`` scoring every finished unit into
beta_vae_metrics.csv, ``evaluate`` on model files (rows written per model, reused on a rerun),
the report's metric section and figures rebuilt from the CSVs alone."""
import json

import numpy as np
import pandas as pd
import pytest

from vaebench.cli import main
from vaebench.experiments import beta_vae as bv
from vaebench.experiments import evaluate, scoring
from vaebench.reports import metrics as metrics_report

SUITE = "mig,beta_vae,factor_vae,sap,irs,mig_sup,dcimig,jemmig,unsupervised,pca_shape"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite_run")
    bv.run(out, "smoke", progress=False, betas=(1.0, 8.0), export_models=True)
    return out


def test_run_scores_every_finished_unit(run_dir):
    table = pd.read_csv(run_dir / "beta_vae_metrics.csv")
    mig = pd.read_csv(run_dir / "beta_vae_mig.csv")
    assert list(table["unit"]) == ["beta1_seed0", "beta8_seed0"]
    # the unit's own MIG and gaps are kept, the suite's columns added
    assert np.array_equal(table["mig"].to_numpy(), mig["mig"].to_numpy())
    for col in ("beta_vae_eval_accuracy", "factor_vae_eval_accuracy", "sap", "irs", "jemmig", "info_orientation",
                "pca_shape_knn_accuracy", "digest", "settings"):
        assert table[col].notna().all(), col
    assert json.loads(table["settings"].iloc[0])["scale"] == bv.make_config("smoke").suite_scale


def test_a_second_run_does_not_score_again(run_dir, monkeypatch):
    before = pd.read_csv(run_dir / "beta_vae_metrics.csv")
    monkeypatch.setattr(scoring, "score_model", lambda *a, **k: pytest.fail("scored a model twice"))
    bv.run(run_dir, "smoke", progress=False, betas=(1.0, 8.0), export_models=True)
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "beta_vae_metrics.csv"), before)


def test_evaluate_writes_rows_per_model_and_reuses_them(run_dir, tmp_path, capsys):
    csv = tmp_path / "evaluation.csv"
    args = ["evaluate", str(run_dir), "--metrics", SUITE, "--scale", "0.01", "--size", "600", "--csv", str(csv),
            "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(csv)
    assert len(table) == 2 and set(table["beta"]) == {1.0, 8.0}
    assert "beta=8 over 1 model(s): mig=" in out and "beta_vae_eval_accuracy=" in out
    # the same weights: identical digests whether read from the end checkpoint or the exported file
    run_table = pd.read_csv(run_dir / "beta_vae_metrics.csv")
    assert sorted(table["digest"]) == sorted(run_table["digest"])
    direct = evaluate.score_models([run_dir], size=600, metrics=SUITE, scale=0.01, progress=False)
    pd.testing.assert_frame_equal(direct.drop(columns=[c for c in direct if c.startswith("seconds_")]),
                                  table.drop(columns=[c for c in table if c.startswith("seconds_")]),
                                  check_dtype=False)
    # a rerun reuses every row; other settings score again
    counted = []
    real = scoring.score_model
    scoring.score_model = lambda *a, **k: counted.append(1) or real(*a, **k)
    try:
        assert main(args) == 0
        assert counted == [] and pd.read_csv(csv).equals(table)
        assert main([*args[:-3], "--seed", "1", "--csv", str(csv), "--no-progress"]) == 0
        assert len(counted) == 2
    finally:
        scoring.score_model = real


@pytest.mark.parametrize("extra, message", [
    (["--metrics", "mig,bogus"], "unknown: bogus"),
    (["--scale", "2"], "--scale: expected a fraction in (0, 1]"),
])
def test_evaluate_bad_options_are_one_line_exit_2(run_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(run_dir), "--csv", str(tmp_path / "e.csv"), "--no-progress", *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_report_and_figures_from_the_csv_alone(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(run_dir / "beta_vae_metrics.csv", copy / "beta_vae_metrics.csv")
    paths = metrics_report.make_figures(copy)
    assert [p.name for p in paths][0] == "metrics_vs_beta.png" and all(p.stat().st_size > 0 for p in paths)
    text = metrics_report.summary_markdown(copy)
    assert "## Disentanglement metrics" in text and "| BetaVAE score |" in text and "Shapes in the 2-D PCA" in text
    assert "study sizes x 0.01" in text
    from vaebench.reports import report

    assert "## Disentanglement metrics" in report.write_report(copy).read_text()


def test_rank_correlation_of_metrics_that_agree_is_one():
    table = pd.DataFrame({"beta": [1.0, 1.0, 4.0, 4.0], "mig": [0.1, 0.2, 0.3, 0.4], "sap": [0.01, 0.02, 0.05, 0.09],
                          "irs": [0.9, 0.8, 0.7, 0.6]})
    corr = metrics_report.rank_correlation(table)
    assert corr.loc["mig", "sap"] == pytest.approx(1.0) and corr.loc["mig", "irs"] == pytest.approx(-1.0)


def test_evaluate_scores_chen_mig_when_named(run_dir, tmp_path):
    model = sorted((run_dir / "models").glob("*.pt"))[0]
    table = evaluate.score_models([model], size=600, metrics="mig,mig_chen", scale=0.01, progress=False)
    assert list(table["mig_chen_samples"]) == [100]
    assert table["mig_chen"].between(0.0, 1.0).all() and "chen_gap_shape" not in table  # shape left out
    assert {"chen_gap_scale", "chen_gap_orientation", "chen_gap_posX", "chen_gap_posY"} <= set(table)
    assert "dci_disentanglement" not in table  # named metrics only
