"""Model and checkpoint files are read as data: a file that would run code is refused, a damaged or
foreign one is one clear line, and every committed model still loads to the same numbers."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vaebench.cli import main
from vaebench.data import DSprites
from vaebench.models import VAE, VAEConfig, checkpoint_state, load_vae
from vaebench.utils.io import ModelFileError, load_torch

REPO = Path(__file__).resolve().parents[1]
COMMITTED = sorted(REPO.glob("results/**/models/*.pt"))


class MakesMarker:
    """Unpickling this calls ``open(path, "w")``: the marker file exists iff the pickle ran code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def crafted(tmp_path: Path, how: str = "torch") -> tuple[Path, Path]:
    marker, path = tmp_path / "marker", tmp_path / f"crafted_{how}.pt"
    if how == "torch":
        torch.save({**checkpoint_state(VAE(arch="mlp", mlp_hidden=8)), "beta": MakesMarker(marker)}, path)
    else:  # a bare pickle (protocol 2: one torch's reader parses up to the global)
        with open(path, "wb") as f:
            pickle.dump({"model_config": {"arch": "mlp"}, "beta": MakesMarker(marker)}, f, protocol=2)
    return path, marker


def one_line(message: str, path: Path) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message and str(path) in message


def test_the_crafted_file_really_runs_code_when_unpickled(tmp_path):
    path, marker = crafted(tmp_path)
    torch.load(path, weights_only=False)  # what every loader did before: the control
    assert marker.exists()


@pytest.mark.parametrize("how", ["torch", "pickle"])
@pytest.mark.parametrize("loader", [load_torch, load_vae])
def test_a_file_that_needs_code_is_refused_unrun(tmp_path, how, loader):
    path, marker = crafted(tmp_path, how)
    with pytest.raises(ModelFileError, match="refused: it needs io.open") as e:
        loader(path)
    one_line(str(e.value), path)
    assert "nothing of it was executed" in str(e.value) and isinstance(e.value, ValueError)
    assert not marker.exists()


def test_evaluate_refuses_it_in_one_line_with_exit_2(tmp_path):
    path, marker = crafted(tmp_path)
    cmd = [sys.executable, "-m", "vaebench", "evaluate", str(path), "--size", "2", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={k: v for k, v in os.environ.items() if k != "VAEBENCH_DEBUG"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"vaebench: error: {path}: refused: it needs io.open")
    one_line(done.stderr, path)
    assert not marker.exists()


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its error says)."""
    good = tmp_path / "good.pt"
    torch.save(checkpoint_state(VAE(latent_dim=10)), good)
    files = {
        "truncated": (good.read_bytes()[:good.stat().st_size // 2], "truncated or corrupt torch file"),
        "random": (np.random.default_rng(0).bytes(1000), "not a torch file"),
        "empty": (b"", "is empty"),
    }
    out = {}
    for name, (data, says) in files.items():
        (tmp_path / f"{name}.pt").write_bytes(data)
        out[name] = (tmp_path / f"{name}.pt", says)
    torch.save({"weights": torch.zeros(3), "step": 1}, tmp_path / "plain.pt")
    out["plain"] = (tmp_path / "plain.pt", "not a vaebench model: it holds keys ['step', 'weights']")
    wrong = checkpoint_state(VAE(latent_dim=5))
    torch.save({**wrong, "model_config": {**wrong["model_config"], "latent_dim": 10}}, tmp_path / "wrong_dim.pt")
    out["wrong_dim"] = (tmp_path / "wrong_dim.pt", "its weights do not fit a conv VAE with latent_dim 10: "
                        "encoder.11.weight has shape [10, 256] where the model needs [20, 256]")
    fewer = checkpoint_state(VAE(latent_dim=10))
    del fewer["model_state"]["decoder.0.bias"]
    torch.save(fewer, tmp_path / "missing_key.pt")
    out["missing_key"] = (tmp_path / "missing_key.pt", "missing decoder.0.bias, unexpected none")
    torch.save({**fewer, "model_config": {"arch": "resnet"}}, tmp_path / "bad_arch.pt")
    out["bad_arch"] = (tmp_path / "bad_arch.pt", "does not build a VAE: VAEConfig.arch must be one of")
    out["missing"] = (tmp_path / "nope.pt", "no such file")
    return out


NAMES = ["truncated", "random", "empty", "plain", "wrong_dim", "missing_key", "bad_arch", "missing"]


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_file_is_one_line_naming_it(tmp_path, name):
    path, says = _bad_files(tmp_path)[name]
    with pytest.raises(ModelFileError) as e:
        load_vae(path)
    assert says in str(e.value)
    one_line(str(e.value), path)


@pytest.mark.parametrize("name", ["truncated", "random", "plain", "wrong_dim"])
def test_evaluate_says_the_same_line(tmp_path, capsys, name):
    path, says = _bad_files(tmp_path)[name]
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(path), "--size", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("vaebench: error: ") and says in err
    one_line(err, path)


def test_committed_models_load_as_data_to_the_same_encoder_output():
    assert len(COMMITTED) >= 20
    data = DSprites()
    x = data.batch(np.random.default_rng(0).choice(len(data), 4, replace=False))
    for path in COMMITTED:
        trusted = torch.load(path, map_location="cpu", weights_only=False)  # the committed files are ours
        reference = VAE(VAEConfig(**trusted["model_config"]))
        reference.load_state_dict(trusted["model_state"])
        with torch.no_grad():
            for a, b in zip(load_vae(path).encode(x), reference.eval().encode(x)):
                # an autoencoder's code has no log-variance: None on both sides
                assert (a is None and b is None) or torch.equal(a, b), path
