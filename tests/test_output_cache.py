"""The CPU output cache: freed outputs are reused, never aliased, and bounded."""
import os
import subprocess
import sys
import threading

import pytest
import torch

from vaebench.ops import (
    cpu_output_cache_info,
    cpu_output_cache_limit,
    empty_cpu_output_cache,
    philox_normal,
    reparam_kl,
    reparam_kl_eager,
    set_cpu_output_cache_limit,
)

B, D = 4096, 128  # 2 MB float32 outputs: above the 1 MB caching threshold


def _inputs(seed=0, b=B, d=D):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), 0.5 * torch.randn(b, d, generator=g)


def _expected(mu, logvar, seed, offset=0):
    eps = philox_normal(mu.shape, seed=seed, offset=offset)
    return reparam_kl_eager(mu, logvar, eps)


def test_freed_output_is_reused_and_values_are_fresh():
    mu, logvar = _inputs()
    empty_cpu_output_cache()
    z, _ = reparam_kl(mu, logvar, seed=1)
    ptr = z.data_ptr()
    z.fill_(float("nan"))  # garbage left in the block must not leak into the next output
    del z
    hits = cpu_output_cache_info()["hits"]
    z2, kl2 = reparam_kl(mu, logvar, seed=2)
    assert z2.data_ptr() == ptr
    assert cpu_output_cache_info()["hits"] == hits + 1
    z_ref, kl_ref = _expected(mu, logvar, seed=2)
    torch.testing.assert_close(z2, z_ref)
    torch.testing.assert_close(kl2, kl_ref)


def test_live_outputs_never_share_memory():
    mu, logvar = _inputs()
    outs = [reparam_kl(mu, logvar, seed=s)[0] for s in range(4)]
    assert len({z.data_ptr() for z in outs}) == 4
    for s, z in enumerate(outs):
        torch.testing.assert_close(z, _expected(mu, logvar, seed=s)[0])


def test_gradients_from_cached_blocks_are_exact_and_accumulate():
    mu, logvar = _inputs()
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    for step in range(3):  # grads of step k land in blocks freed by step k-1
        z, kl = reparam_kl(mu, logvar, seed=7, offset=0)
        (z.sum() + kl.sum()).backward()
    eps = philox_normal(mu.shape, seed=7, offset=0)
    std = torch.exp(0.5 * logvar.detach())
    torch.testing.assert_close(mu.grad, 3 * (1 + mu.detach()))
    torch.testing.assert_close(logvar.grad, 3 * 0.5 * (eps * std + std**2 - 1))


def test_small_outputs_bypass_the_cache():
    mu, logvar = _inputs(b=16, d=8)
    before = cpu_output_cache_info()
    reparam_kl(mu, logvar, seed=1)
    after = cpu_output_cache_info()
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])


def test_cached_output_can_be_resized_and_saved(tmp_path):
    mu, logvar = _inputs()
    z, _ = reparam_kl(mu, logvar, seed=3)
    ref = z.clone()
    z.resize_(2 * B, D)  # the storage grows through the cache's allocator
    torch.testing.assert_close(z[:B], ref)
    torch.save(z[:B], tmp_path / "z.pt")
    torch.testing.assert_close(torch.load(tmp_path / "z.pt"), ref)


def test_empty_cache_releases_held_blocks():
    mu, logvar = _inputs()
    z, _ = reparam_kl(mu, logvar, seed=1)
    del z
    assert cpu_output_cache_info()["held_bytes"] >= B * D * 4
    empty_cpu_output_cache()
    info = cpu_output_cache_info()
    assert info["held_bytes"] == 0 and info["held_blocks"] == 0


def test_concurrent_calls_from_threads_are_correct():
    mu, logvar = _inputs()
    expected = {s: reparam_kl(mu, logvar, seed=s)[0].clone() for s in range(8)}
    errors = []

    def work(s):
        for _ in range(5):
            z, _ = reparam_kl(mu, logvar, seed=s)
            if not torch.equal(z, expected[s]):
                errors.append(s)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _run_with_limit(value: str, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VAEBENCH_CPU_OUTPUT_CACHE_MB=value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_limit_zero_turns_caching_off():
    code = (
        "import torch\n"
        "from vaebench.ops import reparam_kl, cpu_output_cache_info\n"
        f"mu = torch.randn({B}, {D}); lv = torch.randn({B}, {D})\n"
        "for s in range(3): reparam_kl(mu, lv, seed=s)\n"
        "i = cpu_output_cache_info()\n"
        "assert i['limit_bytes'] == 0 and i['held_bytes'] == 0 and i['hits'] == 0, i\n"
    )
    r = _run_with_limit("0", code)
    assert r.returncode == 0, r.stderr


def test_limit_is_respected():
    # Four live 2 MB outputs freed under a 5 MB limit: at most two stay held.
    code = (
        "import torch\n"
        "from vaebench.ops import reparam_kl, cpu_output_cache_info\n"
        f"mu = torch.randn({B}, {D}); lv = torch.randn({B}, {D})\n"
        "zs = [reparam_kl(mu, lv, seed=s)[0] for s in range(4)]\n"
        "del zs\n"
        "i = cpu_output_cache_info()\n"
        "assert i['limit_bytes'] == 5 << 20 and 0 < i['held_bytes'] <= 5 << 20, i\n"
    )
    r = _run_with_limit("5", code)
    assert r.returncode == 0, r.stderr


def test_bad_limit_is_a_clear_error():
    code = "import torch\nfrom vaebench.ops import reparam_kl\nreparam_kl(torch.zeros(4096, 128), torch.zeros(4096, 128))\n"
    r = _run_with_limit("lots", code)
    assert r.returncode != 0
    assert "VAEBENCH_CPU_OUTPUT_CACHE_MB" in r.stderr and "'lots'" in r.stderr


def test_limit_can_be_changed_at_runtime():
    mu, logvar = _inputs()
    reparam_kl(mu, logvar, seed=1)  # leaves a block held
    with cpu_output_cache_limit(0):
        assert cpu_output_cache_info()["held_bytes"] == 0  # lowering the limit evicts
        before = cpu_output_cache_info()
        for s in range(3):
            z, _ = reparam_kl(mu, logvar, seed=s)
            torch.testing.assert_close(z, _expected(mu, logvar, seed=s)[0])
        del z
        after = cpu_output_cache_info()
        assert after["hits"] == before["hits"] and after["held_bytes"] == 0
    assert cpu_output_cache_info()["limit_bytes"] > 0
    with pytest.raises(RuntimeError, match="limit_bytes must be >= 0, got -1"):
        set_cpu_output_cache_limit(-1)
