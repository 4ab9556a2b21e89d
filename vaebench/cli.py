"""The command line: ``python -m vaebench {run,bench,figures}``."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import os
import sys
import time
from pathlib import Path

from vaebench.utils import allocator

# Parts of `run all`, in order: name -> module exposing PROFILES and run(out_dir, profile, ...).
PARTS = {
    "bench": "vaebench.bench.runner",
    "beta-vae": "vaebench.experiments.beta_vae",
    "methods": "vaebench.experiments.methods",
    "models": "vaebench.experiments.models",
    "estimators": "vaebench.experiments.estimators",
}
# The metric suite's names (vaebench.metrics METRICS + OPTIONAL), listed here so --help needs no torch import.
METRIC_NAMES = ("mig", "beta_vae", "factor_vae", "dci", "sap", "modularity_explicitness", "unsupervised", "irs",
                "mig_sup", "dcimig", "jemmig", "pca_shape", "mig_chen")
# smoke / quick / paper exist for every part; cpu for the beta-VAE, methods and models, sweep for the first two.
PROFILE_NAMES = ("smoke", "quick", "paper", "cpu", "sweep")


def _parse_set(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")  # main(): one line, exit 2
        out[key.replace("-", "_")] = value
    return out


def _device(arg: str) -> str:
    import torch

    if arg == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if arg.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {arg}: torch sees no CUDA device")  # main(): one line, exit 2
    return arg


def _part_overrides(module, profile: str, args) -> dict:
    """--data / --impl / --set, passed to a part only where its config has the field."""
    fields = {f.name for f in dataclasses.fields(module.PROFILES[profile])}
    wanted = dict(_parse_set(args.set))
    if getattr(args, "data", None):
        wanted["data_path"] = args.data
    if getattr(args, "impl", None):
        wanted["impl"] = args.impl
    return {k: v for k, v in wanted.items() if k in fields}


def _write_run_json(out_dir: Path, args, parts: list[str], started: float, finished: dict) -> None:
    """run.json: the provenance of the latest invocation, plus a ``history`` of every
    invocation into this folder (a resumed or partly forced run keeps the earlier records)."""
    from vaebench.utils import io
    from vaebench.utils.provenance import provenance

    path = out_dir / "run.json"
    history = json.loads(path.read_text()).get("history", []) if path.exists() else []
    info = provenance(command="python -m vaebench " + " ".join(sys.argv[1:]), profile=args.profile, seed=args.seed,
                      parts=parts, finished_parts=finished, wall_seconds=round(time.time() - started, 1),
                      force=args.force)
    record = {k: info[k] for k in ("command", "date", "git_commit", "finished_parts", "wall_seconds")}
    started_iso = getattr(args, "_started_iso", None)
    if history and history[-1].get("started") == started_iso:
        history[-1] = {**record, "started": started_iso}  # same invocation, one more part finished
    else:
        history.append({**record, "started": started_iso})
    io.write_json(path, {**info, "history": history})


def _executor(args):
    """The executor of the experiments' units (--executor), or None for the plain local run."""
    from vaebench.executors import make_executor

    name = getattr(args, "executor", "local")
    if name == "local":
        if getattr(args, "ray_address", None):
            raise ValueError(f"--ray-address needs --executor ray (given --executor local, "
                             f"--ray-address {args.ray_address})")
        if getattr(args, "cpus_per_task", None) is not None:
            raise ValueError(f"--cpus-per-task needs --executor ray (given --executor local, "
                             f"--cpus-per-task {args.cpus_per_task})")
    return make_executor(name, address=getattr(args, "ray_address", None),
                         cpus_per_task=1 if getattr(args, "cpus_per_task", None) is None else args.cpus_per_task,
                         max_retries=getattr(args, "max_retries", 2), jobs=getattr(args, "jobs", 1))


def cmd_run(args) -> int:
    executor = _executor(args)
    try:
        return _run_parts(args, executor)
    finally:
        if hasattr(executor, "close"):
            executor.close()  # stops a Ray this run started


def _run_parts(args, executor) -> int:
    from vaebench.executors import UnitsFailed
    from vaebench.reports import report

    out_dir = Path(args.out or f"runs/{args.profile}")
    parts = list(PARTS) if args.what == "all" else [args.what]
    modules = {name: importlib.import_module(PARTS[name]) for name in parts}
    lacking = [name for name, m in modules.items() if args.profile not in m.PROFILES]
    if lacking and args.what != "all":
        raise ValueError(f"--profile: expected a profile of {args.what} ({', '.join(modules[args.what].PROFILES)}), "
                         f"got {args.profile!r}")
    for name in lacking:  # `run all --profile cpu`: the parts that define it
        print(f"[vaebench] {name} has no profile {args.profile!r}: skipped", flush=True)
        del modules[name]
        parts.remove(name)
    if args.score_only:
        _keep_scored_parts(args, modules, parts)
    known = {f.name for m in modules.values() for f in dataclasses.fields(m.PROFILES[args.profile])}
    unused = set(_parse_set(args.set)) - known
    if unused:
        raise ValueError(f"--set: expected settings of this run ({', '.join(sorted(known))}), got {sorted(unused)}: "
                         "no part of this run has them")
    out_dir.mkdir(parents=True, exist_ok=True)  # only once the arguments are known to be good
    started, finished, failed = time.time(), {}, {}
    args._started_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
    for name, module in modules.items():
        overrides = _part_overrides(module, args.profile, args)
        # Parts made of independent units take the executor; the benchmark always runs here.
        if "executor" in inspect.signature(module.run).parameters:
            overrides["executor"] = executor
        if args.score_only:
            overrides["train"] = False
        print(f"[vaebench] {name} ({args.profile}) -> {out_dir}", flush=True)
        t0 = time.time()
        # The benchmark times every device present unless one is named.
        if name == "bench":
            device = "all" if args.device == "auto" else args.device
        else:  # on Ray the cluster's devices count, not this machine's
            device = executor.device(args.device) if hasattr(executor, "device") else _device(args.device)
        try:
            module.run(out_dir, args.profile, seed=args.seed, force=args.force, device=device,
                       progress=not args.no_progress, **overrides)
        except UnitsFailed as e:  # the part's other units finished; so do the other parts
            failed[name] = e
            continue
        finished[name] = round(time.time() - t0, 1)
        if not args.score_only:  # run.json records training runs; a scoring pass trained nothing
            _write_run_json(out_dir, args, parts, started, finished)
    figures = report.make_figures(out_dir)
    path = report.write_report(out_dir)
    print(f"[vaebench] wrote {len(figures)} figures and {path}")
    for name, e in failed.items():
        print(f"[vaebench] {name}: {len(e.failed)} unit(s) failed, rerun to retry them:", file=sys.stderr)
        for unit, error in e.failed.items():
            print(f"  {unit}: {error}", file=sys.stderr)
    return 1 if failed else 0


def _scores_units(module) -> bool:
    """Whether a part is made of scored units: its run can skip training (``train=False``)."""
    return "train" in inspect.signature(module.run).parameters


def _keep_scored_parts(args, modules: dict, parts: list[str]) -> None:
    """--score-only: the parts made of scored units; `all` skips the others."""
    if args.force:
        raise ValueError("--score-only trains nothing, --force starts every unit again: expected one of them, "
                         "got both")
    unscored = [name for name, m in modules.items() if not _scores_units(m)]
    if unscored and args.what != "all":
        scored = [name for name, path in PARTS.items() if _scores_units(importlib.import_module(path))]
        raise ValueError(f"--score-only: expected a part made of scored units ({', '.join(scored)}), "
                         f"got {args.what}")
    for name in unscored:
        print(f"[vaebench] {name} has no units to score: skipped", flush=True)
        del modules[name]
        parts.remove(name)


def cmd_bench(args) -> int:
    args.what, args.data, args.impl, args.score_only = "bench", None, None, False
    return cmd_run(args)


def cmd_sweep(args) -> int:
    from vaebench.experiments import sweep

    out = Path(args.out)
    if not args.collect_only:
        names = [n for n in args.only.split(",") if n] if args.only else None
        codes = sweep.run_sweep(out, names, jobs=args.jobs, device=_device(args.device), seed=args.seed,
                                extra=_parse_set(args.set), progress=not args.no_progress)
        failed = {n: c for n, c in codes.items() if c}
        if failed:
            print(f"[vaebench] sweep: variants failed (see <out>/<variant>/log.txt): {failed}", flush=True)
    summary = sweep.collect(out)
    print(sweep.summary_markdown(out), end="")
    print(f"[vaebench] wrote {out / 'sweep_summary.csv'}, {out / 'sweep_trajectories.csv'}, {out / 'sweep_mig.png'}")
    return 0 if len(summary) else 1


def _size(text: str) -> int | None:
    """``--size``: a number of images, or ``all`` (None: the full grid)."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--size: expected a number of images or 'all', got {text!r}") from None


def cmd_evaluate(args) -> int:
    from vaebench.experiments import evaluate

    size = _size(args.size)
    if not 0.0 < args.scale <= 1.0:
        raise ValueError(f"--scale: expected a fraction in (0, 1], got {args.scale}")
    table = evaluate.score_models(args.paths, size=size, seed=args.seed, device=_device(args.device),
                                  precision=args.precision, num_bins=args.num_bins, progress=not args.no_progress,
                                  metrics=args.metrics, scale=args.scale, n_jobs=args.jobs, out=args.csv,
                                  force=args.force)
    print(evaluate.format_table(table), end="")
    print(f"[vaebench] wrote {args.csv}")
    return 0


def cmd_figures(args) -> int:
    from vaebench.reports import report

    out_dir = Path(args.dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"figures: expected a results folder, got {str(out_dir)!r}, which "
                                f"{'is a file' if out_dir.exists() else 'does not exist'}")
    figures = report.make_figures(out_dir)
    path = report.write_report(out_dir)
    print(f"[vaebench] rebuilt {len(figures)} figures and {path} from the CSVs in {out_dir}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line, like the command's own (subcommands inherit it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = _Parser(
        prog="python -m vaebench", formatter_class=fmt,
        description="vaebench: rerun beta-VAE/MIG and gradient-estimator experiments on fused kernels; "
                    "compare kernel vs eager speed; rebuild figures and REPORT.md from CSVs.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, device_default="auto"):
        p.add_argument("--profile", choices=PROFILE_NAMES, default="quick",
                       help="smoke: seconds (CI); quick: ~10 min per experiment on a 2-core CPU; paper: full size, for a GPU")
        # Not results/: that folder holds the committed reference run, which a rerun would
        # otherwise resume instead of redoing on this machine.
        p.add_argument("--out", default=None,
                       help="results folder (CSVs, figures, REPORT.md, run.json); default runs/<profile>")
        p.add_argument("--seed", type=int, default=0, help="base seed of every part")
        p.add_argument("--force", action="store_true", help="redo finished parts instead of resuming")
        p.add_argument("--device", default=device_default, help="cpu, cuda, or auto (cuda when available)")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field of the profile, e.g. --set epochs=5 (repeatable)")

    run = sub.add_parser("run", formatter_class=fmt, help="run experiments (all = bench + beta-vae + estimators)",
                         description="Runs experiments into --out, resuming finished parts, then writes figures and REPORT.md.")
    run.add_argument("what", choices=["all", *PARTS], help="which part(s) to run")
    common(run)
    run.add_argument("--data", default=None,
                     help="official dSprites .npz (default: $VAEBENCH_DSPRITES, else the built-in renderer)")
    run.add_argument("--impl", choices=["fused", "eager"], default=None,
                     help="reparameterization + KL implementation in training (default: the profile's, fused)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where the experiments' independent units run: one after another here, or as Ray tasks")
    run.add_argument("--ray-address", default=argparse.SUPPRESS,
                     help="with --executor ray: the cluster to join (e.g. the address `ray start --head` prints, or "
                          "auto); default: a local Ray started for this run")
    run.add_argument("--cpus-per-task", type=int, default=argparse.SUPPRESS,
                     help="with --executor ray: CPUs (and torch threads) per unit; default 1 (GPU units also take one GPU)")
    run.add_argument("--jobs", type=int, default=1,
                     help="with --executor local: units run at once, each in its own process (e.g. 2 single-threaded "
                          "beta-VAE units on a 2-core CPU)")
    run.add_argument("--max-retries", type=int, default=2,
                     help="times a failing unit is retried before it is reported and skipped")
    run.add_argument("--score-only", action="store_true",
                     help="train nothing: score the units already finished (the metric suite, the models summary) "
                          "and rebuild figures and REPORT.md; for a run built over sessions, while its other units "
                          "train (methods and models)")
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", formatter_class=fmt, help="kernel vs eager vs torch.compile speed",
                           description="Times reparam+KL (eager, torch.compile, fused) and MIG (scikit-learn per pair, "
                                       "vectorised, fused) side by side, plus the copy-bandwidth floor; writes bench.csv.")
    common(bench, device_default="all")
    bench.set_defaults(func=cmd_bench)

    sw = sub.add_parser("sweep", formatter_class=fmt, help="beta-VAE recipe sweep: MIG over training per variant",
                        description="Trains the recipe variants of vaebench.experiments.sweep side by side (one "
                                    "process each, resumable) into OUT/<variant>/, then writes sweep_summary.csv, "
                                    "sweep_trajectories.csv and sweep_mig.png.")
    sw.add_argument("--out", default="runs/sweep", help="sweep folder")
    sw.add_argument("--only", default="", help="comma-separated variant names or groups (precision: the bf16/fp32 pair on the cpu recipe; breadth: one change at a time from the conv recipe, 1.6M images each; budget: the cpu profile's recipe on twice its images, beta 4 and 8); default: all")
    sw.add_argument("--jobs", type=int, default=2, help="variants trained at once")
    sw.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    sw.add_argument("--seed", type=int, default=0, help="seed of every variant")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field of every variant, e.g. --set steps=20000")
    sw.add_argument("--collect-only", action="store_true", help="only merge the variants' trajectories")
    sw.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sw.set_defaults(func=cmd_sweep)

    ev = sub.add_parser("evaluate", formatter_class=fmt,
                        help="the disentanglement metric suite on trained models (files or folders of .pt)",
                        description="Scores saved models (vaebench.models.load_vae files, e.g. results/cpu/models/*.pt; "
                                    "read as data, never as code) with disentanglement_lib's metrics at its study "
                                    "sizes (MIG, BetaVAE, FactorVAE, DCI, SAP, modularity/explicitness, unsupervised, "
                                    "IRS) and MIG-sup, DCIMIG, JEMMIG; prints one row per model and a summary per "
                                    "beta, and writes the rows to --csv as each model finishes (a rerun reuses them).")
    ev.add_argument("paths", nargs="+", help=".pt files, or folders searched for models/*.pt and *.pt")
    ev.add_argument("--metrics", default="all",
                    help="all, or a comma-separated subset of: " + ", ".join(METRIC_NAMES) + " (mig_chen, Chen et al.'s "
                         "MIG over the whole grid, only when named: it costs about twice the rest)")
    ev.add_argument("--size", default="10000", help="random grid images MIG is scored on, or 'all' for the full grid")
    ev.add_argument("--scale", type=float, default=1.0,
                    help="the other metrics' point counts as a fraction of disentanglement_lib's study sizes")
    ev.add_argument("--num-bins", type=int, default=20, help="histogram bins of MIG and the binned metrics")
    ev.add_argument("--precision", default="fp32", help="fp32, bf16 or auto (bf16 where native)")
    ev.add_argument("--seed", type=int, default=0, help="seed of every draw")
    ev.add_argument("--device", default="cpu", help="cpu, cuda, or auto")
    ev.add_argument("--jobs", type=int, default=2, help="classifier fits run at once, each in its own process")
    ev.add_argument("--csv", default="evaluation.csv", help="the table of scores, written after every model")
    ev.add_argument("--force", action="store_true", help="score again models the CSV already has")
    ev.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ev.set_defaults(func=cmd_evaluate)

    figures = sub.add_parser("figures", formatter_class=fmt, help="rebuild figures and REPORT.md from CSVs",
                             description="Regenerates every figure and REPORT.md of a results folder from its CSVs alone.")
    figures.add_argument("dir", nargs="?", default="results", help="results folder")
    figures.set_defaults(func=cmd_figures)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    allocator.keep_freed_memory()  # freed activations stay in the process (see its docstring)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        parser.exit(130, "vaebench: interrupted; finished units are kept, rerun the command to resume\n")
    except (ValueError, TypeError, FileNotFoundError) as e:
        # Bad settings or inputs: one clear line, not a traceback (VAEBENCH_DEBUG=1 shows it).
        if os.environ.get("VAEBENCH_DEBUG"):
            raise
        parser.exit(2, f"vaebench: error: {e}\n")
