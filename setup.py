"""Builds vaebench and its extension ``vaebench._C``.

Install with ``pip install --no-build-isolation .`` (torch must already be
installed: an isolated build environment would download another torch). The
CPU kernels are always built; the CUDA kernels too where torch has CUDA and
nvcc is found (set TORCH_CUDA_ARCH_LIST when no GPU is visible).
"""
import importlib.util
import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

_spec = importlib.util.spec_from_file_location("_vb_build", os.path.join("vaebench", "_build.py"))
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

rel = lambda paths: [os.path.relpath(p) for p in paths]  # noqa: E731 setuptools wants relative paths
if build.want_cuda():
    ext = CUDAExtension(
        "vaebench._C",
        rel(build.cpu_sources() + build.cuda_sources()),
        include_dirs=build.INCLUDE_DIRS,
        define_macros=[("VAEBENCH_WITH_CUDA", "1")],
        extra_compile_args={"cxx": build.cxx_flags(), "nvcc": build.nvcc_flags()},
        extra_link_args=["-fopenmp"],
    )
else:
    ext = CppExtension(
        "vaebench._C",
        rel(build.cpu_sources()),
        include_dirs=build.INCLUDE_DIRS,
        extra_compile_args={"cxx": build.cxx_flags()},
        extra_link_args=["-fopenmp"],
    )

setup(
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
