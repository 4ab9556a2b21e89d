"""Atomic writes: a result file is either complete or absent, never half-written.

Each writer writes to a temporary file in the destination folder and renames it
into place (``os.replace`` is atomic on POSIX), so an interrupted run leaves the
previous version or nothing. ``load_torch`` is the one reader of torch files: data only, never code.

Fault injection, for tests only: ``VAEBENCH_FAULT_CORRUPT="glob,..."`` truncates every file whose
name matches one of the globs to half its size right after it is written (what a full disk or a
copy cut short leaves), so resuming from damaged files can be tested.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

CORRUPT_ENV = "VAEBENCH_FAULT_CORRUPT"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should read like any file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _inject_corruption(path)


def _inject_corruption(path: Path) -> None:
    patterns = [p.strip() for p in os.environ.get(CORRUPT_ENV, "").split(",") if p.strip()]
    if any(fnmatch.fnmatch(path.name, p) for p in patterns):
        os.truncate(path, path.stat().st_size // 2)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Writes a pandas DataFrame as CSV, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be read as vaebench data; the message is one line
    naming the file and why (the CLI prints it as ``vaebench: error: ...``)."""


_ZIP_MAGIC = b"PK\x03\x04"  # what torch.save writes: a zip archive


def load_torch(path: str | os.PathLike, map_location="cpu") -> Any:
    """A ``torch.save`` file read as data: torch's restricted unpickler (``weights_only=True``)
    builds only tensors and plain containers and refuses every other global before calling it,
    so a crafted file cannot run code. Every failure is one ``ModelFileError`` line."""
    import pickle

    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns on the way to refusing odd pickles: noise here
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as e:
        raise ModelFileError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise ModelFileError(f"{path}: is a folder, not a model file") from e
    except OSError as e:
        raise ModelFileError(f"{path}: cannot be read: {e.strerror or e}") from e
    except pickle.UnpicklingError as e:
        needs = re.search(r"GLOBAL (\S+) (?:was not an allowed|whose module)", str(e))
        if needs:
            raise ModelFileError(f"{path}: refused: it needs {needs[1]}, which a vaebench file never holds; "
                                 f"nothing of it was executed") from e
        raise ModelFileError(_unreadable(path, e)) from e
    except Exception as e:  # a damaged or foreign file fails in many ways (RuntimeError, EOFError, KeyError...)
        raise ModelFileError(_unreadable(path, e)) from e


def _unreadable(path: Path, e: Exception) -> str:
    with open(path, "rb") as f:
        head = f.read(len(_ZIP_MAGIC))
    if not head:
        return f"{path}: is empty, not a torch file"
    if head != _ZIP_MAGIC:
        return f"{path}: not a torch file (torch.save writes a zip archive; this file starts with {head!r})"
    # torch's messages run over lines and advice; the first sentence of the cause is enough.
    text = str(e).split("WeightsUnpickler error:")[-1].split("Check the documentation")[0]
    text = re.sub(r"\[enforce fail at [^\]]*\]\s*\.?", "", text)
    reason = " ".join(text.split()).split(". ")[0] or type(e).__name__
    return f"{path}: a truncated or corrupt torch file ({reason})"


def save_figure(fig, path_png: str | os.PathLike, pdf: bool = True) -> None:
    """Saves a matplotlib figure as PNG (and PDF beside it), atomically, and closes it."""
    import matplotlib.pyplot as plt

    path_png = Path(path_png)
    with atomic_path(path_png) as tmp:
        fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    if pdf:
        with atomic_path(path_png.with_suffix(".pdf")) as tmp:
            fig.savefig(tmp, format="pdf", bbox_inches="tight")
    plt.close(fig)
