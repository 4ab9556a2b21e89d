"""The just-in-time build compiles what setup.py would: CUDA sources and flags where CUDA is wanted,
and a cache folder keyed by everything that changes the binary."""
import os

import pytest
import torch.utils.cpp_extension

from vaebench import _build, _extension


@pytest.fixture
def jit_calls(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setenv("VAEBENCH_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(torch.utils.cpp_extension, "load", lambda **kw: calls.append(kw))
    return calls


def _build_with(monkeypatch, jit_calls, cuda: bool) -> dict:
    monkeypatch.setattr(_build, "want_cuda", lambda: cuda)
    _extension._jit_build()
    return jit_calls[-1]


def test_jit_build_includes_cuda_sources_and_nvcc_flags_where_cuda_is_wanted(monkeypatch, jit_calls):
    kw = _build_with(monkeypatch, jit_calls, cuda=True)
    names = {os.path.basename(p) for p in kw["sources"]}
    assert {"reparam_kl.cu", "mig_histogram.cu", "reparam_kl_glue.cpp", "mig_histogram_glue.cpp"} <= names
    assert set(_build.cpu_sources()) <= set(kw["sources"])
    assert kw["with_cuda"] is True and kw["extra_cuda_cflags"] == _build.nvcc_flags()
    assert "--fmad=false" in kw["extra_cuda_cflags"]  # the CPU/CUDA bitwise claim rests on it


def test_jit_build_is_cpu_only_without_cuda(monkeypatch, jit_calls):
    kw = _build_with(monkeypatch, jit_calls, cuda=False)
    assert kw["sources"] == _build.cpu_sources() and kw["with_cuda"] is False
    assert not any(p.endswith(".cu") for p in kw["sources"])


def test_cache_key_covers_the_cuda_choice_cu_contents_and_nvcc_flags(monkeypatch, jit_calls, tmp_path):
    cpu = _build_with(monkeypatch, jit_calls, cuda=False)["name"]
    cuda = _build_with(monkeypatch, jit_calls, cuda=True)["name"]
    assert cpu != cuda
    assert _build_with(monkeypatch, jit_calls, cuda=True)["name"] == cuda  # stable
    fake_cu = tmp_path / "k.cu"
    fake_cu.write_text("// one kernel\n")
    monkeypatch.setattr(_build, "cuda_sources", lambda: [str(fake_cu)])
    before = _build_with(monkeypatch, jit_calls, cuda=True)["name"]
    fake_cu.write_text("// another kernel\n")
    edited = _build_with(monkeypatch, jit_calls, cuda=True)["name"]
    assert edited != before
    monkeypatch.setattr(_build, "nvcc_flags", lambda: ["-O2"])
    assert _build_with(monkeypatch, jit_calls, cuda=True)["name"] != edited
    assert jit_calls[-1]["build_directory"].startswith(str(tmp_path))
