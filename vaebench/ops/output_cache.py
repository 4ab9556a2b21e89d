"""The CPU output cache of the fused ops (``csrc/cpu/output_cache.h``).

Large CPU outputs of ``reparam_kl`` and its backward (1 MB and up) come from a
cache of freed blocks instead of fresh pages, which the kernel would otherwise
zero-fill on first touch. At most ``VAEBENCH_CPU_OUTPUT_CACHE_MB`` megabytes
(default 512; 0 turns caching off) are held while unused.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from vaebench._extension import load_extension


def cpu_output_cache_info() -> dict[str, int]:
    """Bytes and blocks held unused, the limit in bytes, and allocation hits/misses so far."""
    load_extension()
    held, blocks, limit, hits, misses = torch.ops.vaebench.cpu_output_cache_stats()
    return {"held_bytes": held, "held_blocks": blocks, "limit_bytes": limit, "hits": hits, "misses": misses}


def empty_cpu_output_cache() -> None:
    """Return every unused cached block to the system."""
    load_extension()
    torch.ops.vaebench.empty_cpu_output_cache()


def set_cpu_output_cache_limit(limit_bytes: int) -> int:
    """Sets the most bytes held unused (0 turns caching off and frees what is held); returns the previous limit."""
    load_extension()
    return int(torch.ops.vaebench.set_cpu_output_cache_limit(int(limit_bytes)))


@contextmanager
def cpu_output_cache_limit(limit_bytes: int) -> Iterator[None]:
    """Runs the block under another cache limit, e.g. 0 to time the ops on fresh pages."""
    previous = set_cpu_output_cache_limit(limit_bytes)
    try:
        yield
    finally:
        set_cpu_output_cache_limit(previous)
