"""Loads the compiled ops into ``torch.ops.vaebench``.

The ahead-of-time build (``pip install --no-build-isolation .``) provides
``vaebench._C``. Where it is missing (a source checkout, an install that
skipped the build), the same sources are compiled just in time with ninja into
a cache folder, once per source version.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os

import torch

from vaebench import _build

log = logging.getLogger(__name__)
_loaded = False


def _jit_build() -> None:
    from torch.utils.cpp_extension import load

    # The same choice as setup.py: the CUDA kernels join where torch has CUDA and nvcc is found.
    with_cuda = _build.want_cuda()
    sources = _build.cpu_sources() + (_build.cuda_sources() if with_cuda else [])
    cuda_flags = _build.nvcc_flags() if with_cuda else []
    # Flags change the binary too, and so does the CUDA choice (it adds sources).
    digest = hashlib.sha1(" ".join(_build.cxx_flags() + ["|"] + cuda_flags).encode())
    for path in sources + sorted(_headers()):
        with open(path, "rb") as f:
            digest.update(f.read())
    name = f"vaebench_C_{digest.hexdigest()[:12]}"
    build_dir = os.path.join(
        os.environ.get("VAEBENCH_BUILD_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vaebench")), name
    )
    os.makedirs(build_dir, exist_ok=True)
    log.warning("vaebench._C not built; compiling the %s kernels just in time into %s",
                "CPU and CUDA" if with_cuda else "CPU", build_dir)
    load(
        name=name,
        sources=sources,
        extra_include_paths=_build.INCLUDE_DIRS,
        extra_cflags=_build.cxx_flags(),
        extra_cuda_cflags=cuda_flags,
        extra_ldflags=["-fopenmp"],
        build_directory=build_dir,
        with_cuda=with_cuda,
        is_python_module=False,
        verbose=False,
    )


def _headers() -> list[str]:
    out = []
    for dirpath, _, files in os.walk(_build.CSRC):
        out += [os.path.join(dirpath, f) for f in files if f.endswith(".h")]
    return out


def _prebuilt_beside_sources() -> bool:
    """Whether ``vaebench._C`` is this checkout's own build. An editable install's import
    finder resolves ``vaebench._C`` to the installed checkout's file even when vaebench itself
    is imported from another checkout (a git worktree): that build is of other sources."""
    spec = importlib.util.find_spec("vaebench._C")
    here = os.path.dirname(os.path.abspath(__file__))
    return spec is not None and spec.origin is not None and os.path.dirname(os.path.abspath(spec.origin)) == here


def load_extension() -> None:
    """Make sure torch.ops.vaebench.* exist (idempotent)."""
    global _loaded
    if _loaded:
        return
    try:
        if not _prebuilt_beside_sources():
            raise ImportError("no vaebench._C beside these sources")
        from vaebench import _C  # noqa: F401  (registers the ops on import)
    except ImportError:
        _jit_build()
    _loaded = True


def has_cuda_kernels(op: str = "reparam_kl") -> bool:
    """True when the loaded build registered a CUDA kernel for ``vaebench::<op>``."""
    load_extension()
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"vaebench::{op}", "CUDA")
