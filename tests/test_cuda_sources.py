"""Static checks of the CUDA kernels, which no machine here can run.

The CPU/CUDA bitwise-equal noise rests on the device code using only correctly
rounded IEEE operations, with no fused multiply-add other than the explicit
ones: a contracted or approximate instruction would change bits. The PTX that
nvcc emits with the project's flags shows this directly: every float add, sub,
mul, div and sqrt carries the ``.rn`` rounding modifier (which also forbids
ptxas from fusing it), and nothing is ``.approx`` or flushes denormals
(``.ftz``). Skipped where nvcc is absent.
"""
import glob
import os
import re
import shutil
import subprocess

import pytest

from vaebench import _build

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found")
CU_FILES = sorted(glob.glob(os.path.join(_build.CSRC, "cuda", "*.cu")))

FLOAT_ARITH = re.compile(r"^\s*(add|sub|mul|fma|div|sqrt)((?:\.[a-z0-9]+)*)\.f(32|64)\b", re.M)


@pytest.fixture(scope="module", params=CU_FILES, ids=os.path.basename)
def ptx(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("ptx") / "kernel.ptx"
    includes = [f"-I{d}" for d in _build.INCLUDE_DIRS]
    cmd = [NVCC, "-ptx", "-std=c++17", *_build.nvcc_flags(), *includes, "-arch=sm_90", request.param, "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return os.path.basename(request.param), out.read_text()


def test_there_are_cuda_kernels():
    assert {os.path.basename(p) for p in CU_FILES} >= {"reparam_kl.cu", "mig_histogram.cu", "gaussian_logdensity.cu"}


def test_float_arithmetic_is_correctly_rounded_and_uncontracted(ptx):
    _, ptx = ptx
    ops = FLOAT_ARITH.findall(ptx)
    bad = sorted({f"{op}{mods}.f{bits}" for op, mods, bits in ops if ".rn" not in mods})
    assert not bad, f"float instructions without .rn (contractable or not IEEE-rounded): {bad}"


def test_no_approximate_or_flush_to_zero_instructions(ptx):
    _, ptx = ptx
    bad = sorted(set(re.findall(r"^\s*([a-z0-9]+(?:\.[a-z0-9]+)*\.(?:approx|ftz)[a-z0-9.]*)", ptx, re.M)))
    assert not bad, f"approximate or flush-to-zero instructions: {bad}"


def test_ptx_holds_the_kernels(ptx):
    # Guards the checks above against passing on an empty or mis-parsed file.
    name, ptx = ptx
    assert ".entry" in ptx
    if name == "reparam_kl.cu":
        assert len(re.findall(r"fma\.rn\.f32", ptx)) > 50  # the explicit FMAs of the shared math
