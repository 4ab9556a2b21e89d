"""Asking for CUDA where torch has none ends in one error line (exit 2), for every command."""
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.mark.parametrize("argv", [["bench"], ["run", "bench"], ["run", "beta-vae"]], ids=" ".join)
def test_cuda_without_cuda_is_one_error_line(argv, tmp_path):
    cmd = [sys.executable, "-m", "vaebench", *argv, "--profile", "smoke", "--device", "cuda", "--no-progress",
           "--out", str(tmp_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("vaebench: error:")]
    assert len(errors) == 1 and "no CUDA device" in errors[0], res.stderr
    assert not (tmp_path / "bench.csv").exists()


def test_bench_api_rejects_unknown_device(tmp_path):
    from vaebench.bench import runner

    with pytest.raises(ValueError, match="device must be"):
        runner.run(tmp_path, "smoke", device="tpu", progress=False)
