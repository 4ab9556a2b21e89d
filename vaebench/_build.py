"""Sources and compiler flags of the vaebench extension.

One definition shared by ``setup.py`` (ahead-of-time build) and
``vaebench._extension`` (just-in-time fallback). Imports nothing from torch at
module level so that ``setup.py`` can read it by path before vaebench exists.
"""
from __future__ import annotations

import glob
import os
import platform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
INCLUDE_DIRS = [os.path.join(CSRC, "include"), CSRC]


def cpu_sources() -> list[str]:
    return [os.path.join(CSRC, "registration.cpp")] + sorted(glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))


def cuda_sources() -> list[str]:
    """The .cu kernels (torch-free) and the glue that registers them with torch."""
    return sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")) + glob.glob(os.path.join(CSRC, "cuda", "*_glue.cpp")))


def cxx_flags() -> list[str]:
    # Contraction off: every FMA in the shared math is explicit, so host and
    # device round identically. -fno-math-errno lets sqrt vectorise; OpenMP
    # drives at::parallel_for and the simd loops.
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"]
    if os.environ.get("VAEBENCH_NATIVE", "1") != "0" and platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64"):
        flags.append("-march=native" if platform.machine() in ("x86_64", "AMD64") else "-mcpu=native")
    return flags


def nvcc_flags() -> list[str]:
    return ["-O3", "--fmad=false", "-lineinfo"]


def want_cuda() -> bool:
    """Build the CUDA kernels only where torch has CUDA and nvcc is present."""
    if os.environ.get("VAEBENCH_CUDA", "auto") == "0":
        return False
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and CUDA_HOME is not None
