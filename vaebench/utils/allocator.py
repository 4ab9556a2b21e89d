"""Keeps freed host memory in the process, so a training step does not page-fault its
activations back in at every step.

With glibc's defaults a CPU training step of the conv beta-VAE frees a few tens of MB of
activations at its end, glibc hands the top of the heap back to the OS (``M_TRIM_THRESHOLD``)
or unmaps the block (``M_MMAP_THRESHOLD``), and the next step's allocations fault every page in
again, zero-filled by the kernel. On this project's 2-core CPU that made an fp32 conv step at
batch 64 about 1.6x slower (``python -m vaebench bench``, row ``fp32_default_malloc``, timed in a
fresh process that does not call this). ``keep_freed_memory`` raises both thresholds, so freed blocks are reused
by the next step; the cost is that the process keeps up to ``TRIM_BYTES`` of freed memory.

A no-op where the C library is not glibc. ``VAEBENCH_MALLOC_TUNING=0`` turns it off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit); larger blocks are
# still mapped and unmapped, as they would be anyway.
MMAP_BYTES = 32 * 1024 * 1024
TRIM_BYTES = 1024 * 1024 * 1024
ENV = "VAEBENCH_MALLOC_TUNING"

_applied: bool | None = None


def is_glibc() -> bool:
    """Whether this process runs on glibc (the only C library whose mallopt this sets)."""
    try:
        return bool(hasattr(os, "confstr") and os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):  # no such name: not glibc
        return False


def _libc():
    if not is_glibc():
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def keep_freed_memory() -> bool:
    """Raises glibc's trim and mmap thresholds for this process (once); True if they are set.
    False where the C library is not glibc, where mallopt refused, or where ``VAEBENCH_MALLOC_TUNING=0``."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return _applied
    libc = _libc()
    if libc is None:
        return _applied
    # mallopt returns 1 on success. Setting either threshold turns off glibc's dynamic mmap
    # threshold, hence both are set together, the mmap one to its highest allowed value.
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))
    return _applied


def applied() -> bool:
    """Whether ``keep_freed_memory`` has set the thresholds in this process."""
    return bool(_applied)
