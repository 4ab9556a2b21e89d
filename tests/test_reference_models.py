"""The committed cpu reference (results/cpu) re-scored: two of its exported models give again the
final MIG their run recorded, and a rerun of the profile on the folder takes every unit as finished."""
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from vaebench.data.dsprites import ENV_VAR
from vaebench.experiments import beta_vae as bv
from vaebench.experiments import grid
from vaebench.models import load_vae
from vaebench.models import precision as training
from vaebench.utils.provenance import ran_on_this_cpu

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "cpu"
pytestmark = pytest.mark.skipif(not (REFERENCE / "models").is_dir(), reason="no committed cpu reference")


@pytest.mark.parametrize("tag", ["beta4_seed0", "beta8_seed1"])
def test_a_committed_model_rescores_to_the_final_mig_its_run_recorded(tag, monkeypatch):
    # The run's last trajectory row: MIG of the final model on the run's 10,000 probe images, the
    # same for every unit (full-grid MIG would take minutes a model on this CPU).
    monkeypatch.delenv(ENV_VAR, raising=False)  # the reference ran on the built-in renderer
    state = torch.load(REFERENCE / "models" / f"{tag}.pt", map_location="cpu", weights_only=True)
    recorded = state["trajectory"][-1]
    assert recorded["step"] == state["step"] == state["metrics"]["steps"]
    cfg = bv.make_config("cpu")
    run = json.loads((REFERENCE / "beta_vae_config.json").read_text())
    probe = grid.unit_context(grid.RunSetup(cfg, run["seeds"][0]), "cpu").probe
    model = training.prepare_model(load_vae(state), cfg.arch, cfg.channels_last)  # as it was trained
    keys = ["mig", "active_dims"] + [k for k in recorded if k.startswith("gap_")]
    same_cpu = ran_on_this_cpu(json.loads((REFERENCE / "run.json").read_text())["device"])
    if training.bf16_supported("cpu") and same_cpu:  # the run's precision and kernels: the very same numbers
        assert run["precision"] == "bf16"
        got = probe.score(model, "bf16")
        assert {k: got[k] for k in keys} == {k: recorded[k] for k in keys}
    else:  # other kernels or fp32 move a few images across bin edges: close, not equal
        got = probe.score(model, "bf16" if training.bf16_supported("cpu") else "fp32")
        assert got["active_dims"] == recorded["active_dims"]
        assert got["mig"] == pytest.approx(recorded["mig"], abs=2e-3)
    # and the file's final metrics are the committed table's row
    table = pd.read_csv(REFERENCE / "beta_vae_mig.csv")
    row = table[(table.beta == state["beta"]) & (table.seed == state["seed"])].iloc[0]
    assert row["mig"] == state["metrics"]["mig"] and row["active_dims"] == state["metrics"]["active_dims"]


def test_the_committed_folder_counts_every_unit_as_finished():
    # It predates run ids: its files and its config record none, and so they match.
    setup = grid.RunSetup(bv.make_config("cpu"), 0)
    assert json.loads((REFERENCE / "beta_vae_config.json").read_text()).get("run_id") is None
    for unit in bv.units(setup.cfg, [0, 1, 2]):
        assert grid.load_finished(setup, unit, REFERENCE) is not None, unit
