"""An experiment made of trained units (the beta-VAE grid, the methods): what every such grid
shares, for ``vaebench.executors``.

A grid's units are small frozen dataclasses with ``seed``, ``str(unit)`` (its tag, naming its
files), ``keys()`` (its identifying columns, e.g. beta and seed) and ``make_method(cfg, setup)``.
Its config is a ``vaebench.training.TrainConfig`` subclass with a ``prefix`` (the files' first
word) and ``grid_fields`` (tuple fields a later run may extend, e.g. betas). Then:

- ``run_unit`` trains (or resumes) and evaluates one unit, writes its checkpoints, arrays and
  exported model; ``load_finished`` reads a finished one back; ``merge`` writes the tables
  ``<prefix>_losses.csv``, ``<prefix>_mig.csv`` and ``<prefix>_trajectory.csv``;
- ``experiment`` checks and records ``<prefix>_config.json`` and returns the ``Experiment``;
- ``score_finished`` scores every finished unit with the metric suite (``<prefix>_metrics.csv``).

Each unit is independent of the others and of what ran before it in the process (the model's
init is seeded by the unit; every other draw has its own generator), so executors may run them
anywhere with the same numbers.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vaebench.methods import MethodSetup
from vaebench.models import checkpoint_state, precision as prec
from vaebench.training import files as unit_files
from vaebench.training.config import NOT_TRAINING, TrainConfig
from vaebench.training.evaluation import Probe, evaluate
from vaebench.training.files import UnitFiles
from vaebench.training import loop
from vaebench.utils import allocator, io
from vaebench.utils.provenance import hardware, provenance


@dataclass(frozen=True)
class RunSetup:
    """What every unit of one run shares: the config, the run's seed (the data draws) and the
    dSprites file resolved on the driver (None: the renderer)."""

    cfg: TrainConfig
    seed: int = 0
    data_path: str | None = None
    # Marks the files this run's units write: files with another id (a run since forced) are not
    # resumed from nor taken as finished. None for folders written before run ids existed.
    run_id: str | None = None


@dataclass(frozen=True)
class Home:
    """Where a unit that another run trained keeps its files (a unit's optional ``home``): that
    run's folder, file prefix and run id, the unit's tag there, and the key columns its rows carry
    in place of the unit's own keys (e.g. ``("beta",)`` for a beta-VAE unit)."""

    folder: str
    prefix: str
    tag: str
    run_id: str | None
    keys: tuple[str, ...] = ()


def _where(setup: RunSetup | None, unit, out_dir: Path | None) -> tuple[UnitFiles, str | None]:
    """The unit's files and the run id they must carry: its home's, or this run's in ``out_dir``."""
    home = getattr(unit, "home", None)
    if home is not None:
        return UnitFiles(Path(home.folder), home.prefix, home.tag), home.run_id
    return UnitFiles(Path(out_dir), setup.cfg.prefix, str(unit)), setup.run_id


def unit_files_of(setup: RunSetup, unit, out_dir: Path) -> UnitFiles:
    return _where(setup, unit, out_dir)[0]


@dataclass
class Context:
    data: object
    train_idx: np.ndarray
    eval_idx: np.ndarray
    originals: np.ndarray
    probe: Probe | None


_CONTEXTS: dict = {}  # the latest run's context: a process loads the data once for all its units


def _subset(n_total: int, size: int | None, rng: np.random.Generator) -> np.ndarray:
    if size is None or size >= n_total:
        return np.arange(n_total, dtype=np.int64)
    return np.sort(rng.choice(n_total, size=size, replace=False)).astype(np.int64)


def unit_context(setup: RunSetup, device: str) -> Context:
    """The data and the index draws shared by every unit of a run (pure functions of ``setup``)."""
    key = (setup, str(device))
    if key not in _CONTEXTS:
        from vaebench.data import load_dataset

        cfg, seed = setup.cfg, setup.seed
        data = load_dataset(setup.data_path)
        rng = np.random.default_rng(seed)  # one data draw shared by every unit: paired comparisons
        train_idx = _subset(len(data), cfg.train_size, rng)
        eval_idx = rng.permutation(len(data))[: cfg.eval_size] if cfg.eval_size else rng.permutation(len(data))
        originals = rng.choice(len(data), size=cfg.num_originals, replace=False)
        probe = None
        if cfg.trajectory_every:
            # Its own stream of the run's seed, so the draws above do not depend on trajectory settings.
            probe_idx = np.random.default_rng([seed, 1]).choice(len(data), size=min(cfg.trajectory_size, len(data)),
                                                                replace=False)
            probe = Probe(data, probe_idx, cfg.num_bins, device, cfg.channels_last, cfg.eval_batch_size)
        _CONTEXTS.clear()
        _CONTEXTS[key] = Context(data, train_idx, eval_idx, originals, probe)
    return _CONTEXTS[key]


def run_unit(setup: RunSetup, unit, out_dir: Path, device: str = "cpu", *, progress: bool = False,
             on_partial=None) -> tuple[list[dict], dict, list[dict]]:
    """Trains (or resumes) and evaluates one unit; writes its checkpoints, arrays npz and exported
    model. Returns (loss history, metrics, trajectory). ``on_partial`` receives
    ``(history, None, trajectory)`` whenever the trajectory grows."""
    cfg, out_dir = setup.cfg, Path(out_dir)
    files, keys = unit_files_of(setup, unit, out_dir), unit.keys()
    allocator.keep_freed_memory()  # here too: a unit may run in a spawned worker or on Ray
    threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        ctx = unit_context(setup, device)
        method = unit.make_method(cfg, MethodSetup(total_steps=cfg.total_steps(len(ctx.train_idx)),
                                                   data_size=len(ctx.train_idx), latent_dim=cfg.latent_dim,
                                                   seed=unit.seed, device=str(device), lr=cfg.lr))
        on_trajectory = (lambda rows: on_partial(([], None, list(rows)))) if on_partial else None
        model, history, trajectory = loop.train(cfg, method, ctx.data, ctx.train_idx, unit.seed, files, keys, device,
                                                progress, probe=ctx.probe, on_trajectory=on_trajectory,
                                                run_id=setup.run_id)
        scores, arrays = evaluate(model, cfg, ctx.data, ctx.eval_idx, ctx.originals, loop.unit_seeds(unit.seed)[1],
                                  device, method)
    finally:
        torch.set_num_threads(threads)
    if scores.get("active_dims") == 0:  # e.g. a dead encoder: say so now, not after hours of scoring
        print(f"[vaebench] warning: {unit} has no active latent unit (no code varies over the evaluation "
              "images): a collapsed posterior or a dead encoder", file=sys.stderr, flush=True)
    metrics = {**keys, **scores, "steps": history[-1]["step"], "train_seconds": loop.train_seconds(history, cfg.batch_size),
               "precision": prec.resolve_precision(cfg.precision, device), "trained_on": hardware(device)}
    unit_files.save_npz(files.arrays, arrays)
    kept = {"method_state": method.model_part()} if method.keeps_state else {}  # e.g. the VampPrior's prior
    if cfg.export_models:
        # With its history, evaluation and trajectory: a committed model file marks its unit finished.
        unit_files.export_model(files.model, model, **keys, step=history[-1]["step"], metrics=metrics,
                                history=history, trajectory=trajectory, run_id=setup.run_id, **kept)
    io.save_torch(files.checkpoint("end"),
                  checkpoint_state(model, **keys, step=history[-1]["step"], history=history, trajectory=trajectory,
                                   metrics=metrics, run_id=setup.run_id, **kept))
    files.checkpoint("last").unlink(missing_ok=True)
    return history, metrics, trajectory


def finished_model(setup: RunSetup, unit, out_dir: Path) -> Path | None:
    """The unit's finished model file (exported model, else end checkpoint), or None."""
    files, run_id = _where(setup, unit, out_dir)
    return next((p for p in (files.model, files.checkpoint("end"))
                 if unit_files.finished_state(p, run_id) is not None), None)


def load_finished(setup: RunSetup | None, unit, out_dir: Path | None):
    """(history, metrics, trajectory) of a unit of this run (``setup.run_id``) with its arrays and
    an ``end`` checkpoint or an exported model file (which a committed reference run keeps
    instead), and its exported model where the config exports one; else None. A damaged file
    gets one warning line and never counts. A unit with a ``home`` is read from there (any
    ``setup``), its rows under the unit's own keys."""
    files, run_id = _where(setup, unit, out_dir)
    home = getattr(unit, "home", None)
    if not unit_files.arrays_readable(files.arrays):
        return None
    end, exported = (unit_files.finished_state(p, run_id) for p in (files.checkpoint("end"), files.model))
    if home is None and setup.cfg.export_models and exported is None:
        return None  # missing, damaged or of an earlier run: the unit is done again
    state = end or exported
    if state is None:
        return None
    result = state["history"], state["metrics"], state.get("trajectory", [])
    if home is not None:
        keys = unit.keys()

        def renamed(row: dict) -> dict:
            return {**keys, **{k: v for k, v in row.items() if k not in keys and k not in home.keys}}

        result = [renamed(r) for r in result[0]], renamed(result[1]), [renamed(r) for r in result[2]]
    return result


def merge(setup: RunSetup, out_dir: Path, results: list) -> None:
    """Writes the losses, MIG and trajectory tables from ``[(unit, (history, metrics, trajectory))]``
    in unit order; a partial result (metrics None) adds only its trajectory rows. The loss table's
    columns: the units' keys, ``LOSS_COLUMNS``, then every method's own values (empty where a
    method has none)."""
    out_dir, prefix = Path(out_dir), setup.cfg.prefix
    finished = [(u, r) for u, r in results if r[1] is not None]
    for unit, _ in finished:  # a reused unit's figure arrays beside this run's (small: ~60 kB)
        if getattr(unit, "home", None) is not None:
            here = UnitFiles(out_dir, prefix, str(unit)).arrays
            if not here.exists():
                with io.atomic_path(here) as tmp:
                    tmp.write_bytes(unit_files_of(setup, unit, out_dir).arrays.read_bytes())
    traj_rows = [row for _, r in results for row in r[2]]
    if finished:
        rows = [row for _, r in finished for row in r[0]]
        keys = list(dict.fromkeys(k for u, _ in finished for k in u.keys()))
        extra = list(dict.fromkeys(k for row in rows for k in row if k not in keys and k not in loop.LOSS_COLUMNS))
        io.write_csv(out_dir / f"{prefix}_losses.csv", pd.DataFrame(rows, columns=keys + loop.LOSS_COLUMNS + extra))
        io.write_csv(out_dir / f"{prefix}_mig.csv", pd.DataFrame([r[1] for _, r in finished]))
    if traj_rows:
        io.write_csv(out_dir / f"{prefix}_trajectory.csv", pd.DataFrame(traj_rows))


def check_config_file(out_dir: Path, cfg: TrainConfig, seeds: list[int], force: bool, name: str,
                      units: list | None = None) -> None:
    """Refuses to mix results of different configs in one folder (unless force). The grid (its
    ``grid_fields`` and seeds) may grow, so a reference run can be extended later, but not lose units
    (nor the units the folder's config records, where it records them and ``units`` is given)."""
    path = out_dir / f"{cfg.prefix}_config.json"
    if force or not path.exists():
        return
    recorded = json.loads(path.read_text())
    old = recorded.get("config", {})
    new = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    grid = set(cfg.grid_fields)
    diff = sorted(k for k in new if k not in set(NOT_TRAINING) | grid | set(cfg.unit_fields) and old.get(k) != new[k])
    diff += [k for k in sorted(grid) if not set(old.get(k) or []) <= set(new[k])]
    if not set(recorded.get("seeds") or []) <= set(seeds):
        diff.append("seeds")
    lost = sorted(set(recorded.get("units") or []) - {str(u) for u in units}) if units is not None else []
    if lost:
        diff.append(f"units: would drop {len(lost)} ({', '.join(lost[:3])}{', ...' if len(lost) > 3 else ''})")
    if diff:
        raise ValueError(f"{out_dir} holds {name} results of another config (differs in {diff}; a run may add "
                         f"{'/'.join(sorted(grid))} or seeds, not drop them); use force=True or another out_dir")


def _run_id(path: Path, force: bool) -> str | None:
    """The folder's recorded run id (None where it predates them); a new one for a new folder or
    a forced run."""
    if path.exists() and not force:
        return json.loads(path.read_text()).get("run_id")
    return uuid.uuid4().hex


def experiment(name: str, cfg: TrainConfig, units: list, profile: str, out_dir: Path, *, seed: int = 0,
               seeds: list[int], force: bool = False, device: str = "cpu"):
    """The ``vaebench.executors.Experiment`` of a grid (config checked and recorded in ``out_dir``).
    ``force`` starts a new run id, so every unit is trained again whatever the folder holds; its
    files are replaced (atomically) only as the new ones are written, and a forced run that is
    interrupted resumes as itself."""
    from vaebench.data import SKLEARN_DIGITS
    from vaebench.data.dsprites import ENV_VAR
    from vaebench.executors import Experiment

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unit_files.forget_warnings()
    check_config_file(out_dir, cfg, seeds, force, name, units)
    data_path = cfg.data_path or os.environ.get(ENV_VAR) or None
    config_path = out_dir / f"{cfg.prefix}_config.json"
    if data_path and data_path != SKLEARN_DIGITS:
        data_path = str(Path(data_path).resolve())
    setup = RunSetup(cfg, seed, data_path or None, _run_id(config_path, force))
    unit_context(setup, device)  # a bad data file fails here, once; the local units reuse it
    io.write_json(config_path, {"profile": profile, "config": dataclasses.asdict(cfg), "seeds": seeds,
                                "units": [str(u) for u in units],
                                "precision": prec.resolve_precision(cfg.precision, device), "run_id": setup.run_id,
                                "provenance": provenance(device=device)})
    return Experiment(name, setup, units, run_unit, load_finished, merge, out_dir, device)


def score_finished(exp, progress: bool = True) -> None:
    """The metric suite on every finished unit of ``exp`` into ``<prefix>_metrics.csv``: one row
    per model (the unit's keys, its own MIG and gaps, then every suite column), written as each
    model finishes; a model whose weights and settings already have a row is not scored again.
    Every unit is scored on the same draws (the run's seed): paired comparisons across units."""
    from vaebench.experiments import scoring
    from vaebench.metrics import SuiteSizes, parse_metrics

    setup, out_dir = exp.config, Path(exp.out_dir)
    cfg = setup.cfg
    if cfg.suite_scale == 0:
        return
    entries, csv = [], out_dir / f"{cfg.prefix}_metrics.csv"
    for unit in exp.units:
        finished = load_finished(setup, unit, out_dir)
        path = finished_model(setup, unit, out_dir)  # not a damaged one
        if finished is None or path is None:
            continue
        if getattr(unit, "home", None) is not None:
            _reuse_row(unit, csv, path)
        metrics = finished[1]
        entries.append({"path": path, "unit": str(unit), **unit.keys(),
                        **{k: v for k, v in metrics.items() if k == "mig" or k.startswith("gap_")},
                        "model": str(path)})
    if not entries:
        return
    # The unit's own MIG and gaps are kept; the suite's MIG pass (on its i.i.d. points) adds info_<factor>.
    wanted = list(parse_metrics(cfg.suite_metrics))
    sizes = SuiteSizes(num_bins=cfg.num_bins).scaled(cfg.suite_scale)
    precision = prec.resolve_precision("fp32", exp.device)
    scoring.score_files(entries, unit_context(setup, exp.device).data, csv,
                        settings={"metrics": wanted, "scale": cfg.suite_scale, "seed": setup.seed,
                                  "num_bins": cfg.num_bins, "precision": precision},
                        seed=setup.seed, sizes=sizes, metrics=wanted, device=exp.device, precision=precision,
                        progress=progress, key="unit")


def _reuse_row(unit, csv: Path, model: Path) -> None:
    """Copies a reused unit's suite row from its home's table into ``csv`` (under the unit's keys),
    where ``csv`` has none; ``scoring.score_files`` then takes it only if its weights digest and
    settings match this run's, and scores the model again otherwise."""
    from vaebench.experiments import scoring

    home = unit.home
    source = Path(home.folder) / f"{home.prefix}_metrics.csv"
    if not source.exists() or (csv.exists() and str(unit) in set(pd.read_csv(csv)["unit"])):
        return
    rows = pd.read_csv(source)
    rows = rows[rows["unit"] == home.tag]
    if len(rows):
        keys = unit.keys()
        row = {k: v for k, v in rows.iloc[-1].to_dict().items() if k not in keys and k not in home.keys}
        row = {"unit": str(unit), **keys, **{k: v for k, v in row.items() if k != "unit"}, "model": str(model)}
        scoring.append_row(csv, row, key="unit")


def run(exp, executor=None, progress: bool = True, *, train: bool = True) -> None:
    """Runs every unit of ``exp`` (locally, one after another, or with ``executor``), then scores
    every finished unit with the metric suite (``score_finished``), also when some unit failed.
    ``train=False`` only scores the units already finished: a run built over sessions shows them
    while its other units still train."""
    from vaebench.executors import UnitsFailed, run_experiment

    if not train:
        score_finished(exp, progress)
        return
    try:
        run_experiment(exp, executor, progress=progress)
    except UnitsFailed:
        score_finished(exp, progress)
        raise
    score_finished(exp, progress)
