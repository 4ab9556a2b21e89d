"""Builds the test-only emulated CUDA extension: the .cu sources of csrc/cuda compiled as host C++
against the CPU emulator of csrc/emu, with the CPU op's compiler flags. Needs no GPU and no CUDA
runtime, only the CUDA headers (types, half floats); tests skip where those are missing.

The build is cached (``$VAEBENCH_BUILD_DIR`` or ``~/.cache/vaebench``); an edit to a kernel, the
emulator or a header they include recompiles just what depends on it.

Also the helpers the kernel tests share: guarded buffers, bitwise equality, and the bound on two
summation orders of the same terms.
"""
from __future__ import annotations

import functools
import glob
import hashlib
import os
import shutil

import numpy as np
import pytest
import torch

from vaebench import _build

EMU_DIR = os.path.join(_build.CSRC, "emu")
SOURCES = [os.path.join(EMU_DIR, f) for f in ("emulator.cpp", "emulated_ops.cpp", "reparam_kl_cu.cpp",
                                              "reparam_gjs_cu.cpp", "mig_histogram_cu.cpp",
                                              "gaussian_logdensity_cu.cpp", "selftest_kernels.cpp")]


def cuda_include_dir() -> str | None:
    """The folder holding cuda_runtime_api.h: $CUDA_HOME, $CUDA_PATH, /usr/local/cuda, or beside nvcc."""
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    roots += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for root in filter(None, roots):
        if os.path.isfile(os.path.join(root, "include", "cuda_runtime_api.h")):
            return os.path.join(root, "include")
    return None


def _flags() -> list[str]:
    # The CPU op's flags (contraction off above all), so both sides round alike; C++20 for std::barrier.
    return _build.cxx_flags() + ["-std=c++20", "-pthread"]


@functools.lru_cache(maxsize=None)
def build():
    """The compiled module (``reparam_kl_forward``, ``mig_histogram``, ...); skips the test without CUDA headers."""
    include = cuda_include_dir()
    if include is None:
        pytest.skip("CUDA headers (cuda_runtime_api.h) not found: cannot compile the .cu sources for the emulator")
    from torch.utils.cpp_extension import load

    # The folder is named by what ninja cannot see (flags, paths); ninja's dependency files then
    # rebuild exactly the objects whose sources or included headers (the .cu files) changed.
    digest = hashlib.sha1(" ".join(_flags() + [include] + SOURCES).encode())
    name = f"vaebench_emu_{digest.hexdigest()[:12]}"
    root = os.environ.get("VAEBENCH_BUILD_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vaebench"))
    build_dir = os.path.join(root, name)
    os.makedirs(build_dir, exist_ok=True)
    os.environ.setdefault("MAX_JOBS", "2")
    return load(
        name=name,
        sources=SOURCES,
        extra_include_paths=_build.INCLUDE_DIRS + [include],
        extra_cflags=_flags(),
        # The emulator defines cudaGetLastError itself: bind the module's calls to it even where
        # a real libcudart is loaded in the same process.
        extra_ldflags=["-pthread", "-Wl,-Bsymbolic"],
        build_directory=build_dir,
        with_cuda=False,
        verbose=False,
    )


# ---- shared by the kernel tests ----------------------------------------------------------------

PAD = 64  # guard elements on each side of every emulated buffer


class Guarded:
    """A tensor of `shape` inside a buffer with PAD sentinel elements on both sides, starting
    `shift` elements past a 64-byte boundary (shift 1: no 16-byte vector access is aligned)."""

    def __init__(self, shape, dtype, fill, shift=0):
        n = int(np.prod(shape))
        self.buf = torch.full((n + 2 * PAD + shift,), 7.0, dtype=dtype)
        assert self.buf.data_ptr() % 64 == 0
        self.start = PAD + shift
        self.t = self.buf[self.start:self.start + n].view(shape)
        self.t.copy_(fill if torch.is_tensor(fill) else torch.full(shape, fill, dtype=dtype))

    def pads_intact(self):
        n = self.t.numel()
        outside = torch.cat([self.buf[:self.start], self.buf[self.start + n:]])
        return bool((outside == 7.0).all())


def acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def same_bits(a, b):
    return a.shape == b.shape and torch.equal(a.view(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def reordered_sum_bound(abs_sum, n, acc_dtype, out_dtype):
    """Bound on |s_a - s_b| for two summation orders of the same n float terms whose absolute
    values sum to abs_sum: each is within (n - 1) u abs_sum of the exact sum (u: unit roundoff of
    the accumulator), plus one rounding of each result to the output dtype."""
    u = torch.finfo(acc_dtype).eps / 2
    return 2 * n * u * abs_sum + torch.finfo(out_dtype).eps * abs_sum + 1e-30
