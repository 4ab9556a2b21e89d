"""Where a result came from: versions, device, git commit, date."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys


# What produces results: a change here (not in results/ or docs) makes a checkout "dirty".
SOURCE_PATHS = ("csrc", "vaebench", "setup.py", "pyproject.toml")


def git_commit(root: str | None = None) -> str:
    """The checkout's commit (with ``+dirty`` if its sources have local changes), or 'unknown'."""
    root = root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS],
                               cwd=root, capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_capability() -> str:
    """The vector instruction set torch's CPU kernels dispatch to here ("AVX2", "AVX512", ...):
    one model name ("AMD EPYC") covers machines with and without AVX-512 and native bfloat16."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def hardware(device: str = "cpu") -> str:
    """What a unit's bits depend on, without the thread count: the GPU's name, or the CPU model and
    its instruction set (e.g. "AMD EPYC, AVX2"). Recorded with each trained unit, whose seeds may
    be trained on different machines over several sessions."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_name()}, {cpu_capability()}"


def device_description(device: str = "cpu") -> str:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_name()} ({os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, {cpu_capability()})"


def ran_on_this_cpu(description: str) -> bool:
    """Whether a recorded ``device_description`` names this machine's CPU model and, where it
    records one, its instruction set. torch's CPU kernels are chosen by the instruction set
    (oneDNN's bf16 convolutions run on AMX where a CPU has it), so training reproduces bit for
    bit only on the kind of CPU that recorded it. Older descriptions name the model alone."""
    name, _, rest = description.partition(" (")
    details = [d.strip() for d in rest.rstrip(")").split(",")]
    recorded = [d for d in details[2:] if d]  # after "N logical CPUs", "torch threads N"
    return name == cpu_name() and (not recorded or recorded[0] == cpu_capability())


def provenance(**extra) -> dict:
    """A dict to store beside results: versions, device, commit, date, plus ``extra``."""
    import numpy
    import torch

    import vaebench

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "vaebench": vaebench.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": device_description("cuda" if torch.cuda.is_available() else "cpu"),
        "cuda_available": torch.cuda.is_available(),
        "argv": sys.argv,
    }
    info.update(extra)
    return info
