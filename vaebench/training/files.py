"""Where a trained unit's files live, and reading them back: checkpoints by stage, the arrays the
figures need, the exported model; a damaged file is named once and counts for nothing."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vaebench.models import checkpoint_state
from vaebench.utils import io

STAGES = ("init", "mid", "end", "last")


@dataclass(frozen=True)
class UnitFiles:
    """The files of unit ``tag`` of an experiment whose files start with ``prefix``, in ``out_dir``:

    - ``<prefix>_checkpoints/<tag>_<stage>.pt``: ``init`` (before the first step), ``mid`` (after
      ``max(1, total_steps // 2)`` steps), ``end`` (trained, with its history and evaluation) and
      ``last`` (the resume point, deleted once ``end`` exists); each loads with ``load_vae``;
    - ``<prefix>_arrays_<tag>.npz``: what the figures need;
    - ``models/<tag>.pt``: the exported weights (float32, small enough to commit)."""

    out_dir: Path
    prefix: str
    tag: str

    def checkpoint(self, stage: str) -> Path:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        return Path(self.out_dir) / f"{self.prefix}_checkpoints" / f"{self.tag}_{stage}.pt"

    @property
    def arrays(self) -> Path:
        return Path(self.out_dir) / f"{self.prefix}_arrays_{self.tag}.npz"

    @property
    def model(self) -> Path:
        return Path(self.out_dir) / "models" / f"{self.tag}.pt"


_WARNED: set = set()  # damaged files already named by this process, as (path, size, mtime)


def warn_damaged(path: Path, text: str) -> None:
    """One line on stderr, that does not break a progress bar, the first time this process reads
    ``path`` damaged (a run reads a unit's files more than once: resume, then scoring)."""
    stat = path.stat()
    seen = (str(path), stat.st_size, stat.st_mtime_ns)
    if seen not in _WARNED:
        _WARNED.add(seen)
        tqdm.write(f"vaebench: warning: {text}", file=sys.stderr)


def forget_warnings() -> None:
    """Each run names the damaged files it finds, also those an earlier run in the process named."""
    _WARNED.clear()


def resume_state(last: Path, run_id: str | None, device: str) -> dict | None:
    """The ``last`` checkpoint to resume from: None where there is none, it belongs to another
    run id, or it is damaged (then one warning line names it, and the unit trains from step 0)."""
    if not last.exists():
        return None
    try:
        state = io.load_torch(last, map_location=device)
    except io.ModelFileError as e:
        warn_damaged(last, f"{e}; training from step 0 instead")
        return None
    return state if state.get("run_id") == run_id else None


def finished_state(path: Path, run_id: str | None) -> dict | None:
    """``path`` (end checkpoint or exported model) as a finished unit of run ``run_id``, or None."""
    if not path.exists():
        return None
    try:
        state = io.load_torch(path)
    except io.ModelFileError as e:
        warn_damaged(path, f"{e}; not taken for a finished unit")
        return None
    finished = isinstance(state, dict) and "history" in state and "metrics" in state
    return state if finished and state.get("run_id") == run_id else None


def arrays_readable(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with np.load(path) as arrays:
            for name in arrays.files:
                arrays[name]  # reads and CRC-checks each member
    except Exception as e:  # noqa: BLE001 - a damaged archive fails in many ways (BadZipFile, zlib, EOF...)
        reason = " ".join(str(e).split()) or type(e).__name__
        warn_damaged(path, f"{path}: a truncated or corrupt arrays file ({reason}); its unit is done again")
        return False
    return True


def save_npz(path: Path, arrays: dict) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def export_model(path: Path, model, **extra) -> None:
    """Weights only, float32 and contiguous (a few MB for the conv model), loadable with ``load_vae``."""
    state = checkpoint_state(model, **extra)
    state["model_state"] = {k: v.detach().float().contiguous().cpu() for k, v in state["model_state"].items()}
    io.save_torch(path, state)
