"""The gaussian_logdensity_lse workloads timed by ``benchmarks/`` and ``python -m vaebench bench``.

Each case is a zero-argument callable doing one forward + backward pass of one implementation on
fixed inputs (codes ``z [B, D]``, components ``mu, logvar [M, D]``, random upstream gradients for
both outputs), so both harnesses time the same work:

- ``eager``: ``gaussian_logdensity_lse_eager``, plain PyTorch forming the ``[B, M, D]`` terms;
- ``compile``: ``torch.compile`` of that same function (inductor);
- ``fused``: ``vaebench.ops.gaussian_logdensity_lse``.

Peak memory (``peak_bytes``) is measured in a fresh Python process per (impl, size), because
torch's CPU allocator keeps no statistics and a process's resident-set high-water mark only goes
up: the child builds the inputs, runs the case once (for ``compile``: compiles it), frees what it
can (``gc``, glibc's ``malloc_trim``), resets the kernel's high-water mark (``/proc/self/clear_refs``)
and reads its resident set, runs the case once more and reports the high-water mark minus that
resident set: the extra resident memory one forward + backward needs beyond its inputs, whatever
allocates it. Linux only (None elsewhere).
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
from typing import Callable

import torch

from vaebench.ops import gaussian_logdensity_lse, gaussian_logdensity_lse_eager

IMPLS = ("eager", "compile", "fused")
MODE = "forward_backward"

_compiled: dict[str, Callable] = {}


def _compiled_eager(device: str) -> Callable:
    if device not in _compiled:
        _compiled[device] = torch.compile(gaussian_logdensity_lse_eager, fullgraph=True)
    return _compiled[device]


def make_case(impl: str, batch: int, components: int, dim: int, device: str = "cpu", dtype=torch.float32,
              seed: int = 0) -> Callable[[], None]:
    """A callable running one forward + backward of ``impl`` on fixed inputs."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, dim, generator=g, dtype=dtype).to(device).requires_grad_()
    mu = torch.randn(components, dim, generator=g, dtype=dtype).to(device).requires_grad_()
    logvar = (0.5 * torch.randn(components, dim, generator=g, dtype=dtype)).to(device).requires_grad_()
    grad_joint = torch.randn(batch, generator=g, dtype=dtype).to(device)
    grad_marg = torch.randn(batch, dim, generator=g, dtype=dtype).to(device)
    fn = {"eager": gaussian_logdensity_lse_eager, "fused": gaussian_logdensity_lse}.get(impl)
    if fn is None:
        fn = _compiled_eager(device)

    def run():
        joint, marg = fn(z, mu, logvar)
        torch.autograd.backward((joint, marg), (grad_joint, grad_marg))
        z.grad = mu.grad = logvar.grad = None

    return run


# ---- peak memory, in a fresh process ---------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measure_here(impl: str, batch: int, components: int, dim: int) -> int:
    case = make_case(impl, batch, components, dim)
    case()  # compiles the torch.compile variant; touches every code path once
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the resident-set high-water mark (VmHWM) to the current resident set
    before = _status_kb("VmRSS")
    case()
    return 1024 * max(0, _status_kb("VmHWM") - before)


def peak_bytes(impl: str, batch: int, components: int, dim: int, timeout: float = 600.0) -> int | None:
    """Extra resident bytes of one forward + backward (see the module doc); None where unmeasurable."""
    if not sys.platform.startswith("linux"):
        return None
    code = (f"import json, vaebench.bench.logdensity_cases as c; "
            f"print(json.dumps(c._measure_here({impl!r}, {batch}, {components}, {dim})))")
    env = dict(os.environ, VAEBENCH_MALLOC_TUNING="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"peak-memory child failed ({impl}, {batch}x{components}x{dim}):\n{out.stderr[-2000:]}")
    return int(json.loads(out.stdout.strip().splitlines()[-1]))
