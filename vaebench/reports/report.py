"""``REPORT.md`` of a results folder: provenance, then each part's section, all from files."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from vaebench.utils import io

# Report modules in the order their sections appear; each exposes make_figures and summary_markdown.
SECTIONS = ("vaebench.reports.bench", "vaebench.reports.beta_vae", "vaebench.reports.metrics",
            "vaebench.reports.methods", "vaebench.reports.models", "vaebench.reports.mig_estimators",
            "vaebench.reports.estimators")


def _modules():
    return [importlib.import_module(name) for name in SECTIONS]


def _run_part(fn, out_dir, empty):
    # A part that has not run into this folder (its CSVs are absent) has no figures or section.
    try:
        return fn(out_dir)
    except FileNotFoundError:
        return empty


def make_figures(out_dir) -> list[Path]:
    """Regenerates every figure of ``out_dir`` from its CSVs (parts that did not run are skipped)."""
    paths = []
    for mod in _modules():
        paths += _run_part(mod.make_figures, out_dir, [])
    return paths


def _provenance_lines(out_dir: Path) -> list[str]:
    path = out_dir / "run.json"
    if not path.exists():
        return []
    run = json.loads(path.read_text())
    keys = ["command", "profile", "seed", "date", "git_commit", "device", "torch", "python", "wall_seconds"]
    lines = ["| | |", "|---|---|"] + [f"| {k} | `{run[k]}` |" for k in keys if k in run]
    history = [f"- {h['started']}: `{h['command']}` at `{h['git_commit']}`, finished {h['finished_parts']}"
               for h in run.get("history", [])]
    if len(history) > 1:
        lines += ["", "Invocations into this folder (finished parts are kept, not redone):", "", *history]
    return ["## Provenance", "", *lines, ""]


def _figure_lines(out_dir: Path, captions: dict[str, str]) -> list[str]:
    """The section's figures that exist in ``out_dir``, each shown with its one-sentence caption."""
    lines = []
    for pattern, caption in captions.items():
        for path in sorted(out_dir.glob(pattern.replace("{device}", "*"))):
            lines += [f"**{path.name}**: {caption}", "", f"![{path.stem}]({path.name})", ""]
    return lines


def write_report(out_dir) -> Path:
    out_dir = Path(out_dir)
    parts = [
        "# vaebench report",
        "",
        "Every number below is read from the CSVs in this folder (`python -m vaebench figures` rebuilds the figures "
        "and this report from them). The documents' numbers come from `REFERENCE.md` of the project.",
        "",
        *_provenance_lines(out_dir),
    ]
    for mod in _modules():
        section = _run_part(mod.summary_markdown, out_dir, "")
        if section:
            parts += [section.rstrip(), "", *_figure_lines(out_dir, mod.CAPTIONS)]
    path = out_dir / "REPORT.md"
    io.write_text(path, "\n".join(parts) + "\n")
    return path
