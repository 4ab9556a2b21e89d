"""Runs an experiment's independent units, in this process or on a Ray cluster.

An experiment describes itself with an ``Experiment``: its units (small picklable
descriptions; ``str(unit)`` names one), a top-level function that runs one unit and returns
its result, a function that loads a finished unit's result from disk (resume), and a
function that merges the results into the experiment's tables. ``run_experiment`` skips the
finished units, hands the rest to an executor (``LocalExecutor``, or
``vaebench.executors.ray.RayExecutor``), merges after every unit so an interrupted run keeps
consistent tables, and raises ``UnitsFailed`` at the end if a unit failed every attempt.

Fault injection, for tests only, read on the driver and sent with each attempt (so it reaches
worker processes and Ray workers too):

- ``VAEBENCH_FAULT_UNITS="name[:n],..."`` makes the named units raise ``InjectedFault`` on their
  first ``n`` attempts (every attempt without ``:n``);
- ``VAEBENCH_FAULT_KILL="name@k[:n],..."`` makes the process running the named unit kill itself
  with SIGKILL (what the OOM killer sends) once it has done ``k`` training steps, on its first
  ``n`` attempts (every attempt without ``:n``). An experiment marks its steps with ``fault_point``.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

FAULT_ENV = "VAEBENCH_FAULT_UNITS"
KILL_ENV = "VAEBENCH_FAULT_KILL"


@dataclass(frozen=True)
class Experiment:
    """What an executor needs to run an experiment's units.

    ``run_unit(config, unit, out_dir, device, *, progress, on_partial)`` must be a top-level
    function (Ray ships it by reference); it writes the unit's own files (checkpoints, arrays)
    and returns its result. ``on_partial(result)``, when given, may be called with a partial
    result while the unit runs (the local executor merges it; Ray passes None).
    ``load_finished(config, unit, out_dir)`` returns a finished unit's result, or None.
    ``merge(config, out_dir, results)`` writes the tables from ``[(unit, result)]`` in unit order.
    """

    name: str
    config: Any
    units: Sequence[Any]
    run_unit: Callable
    load_finished: Callable
    merge: Callable
    out_dir: Path
    device: str = "cpu"


@dataclass
class Outcome:
    """Results by unit name (loaded or run), the names loaded from disk, errors by unit name."""

    results: dict[str, Any] = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class InjectedFault(RuntimeError):
    """Raised by a unit named in ``VAEBENCH_FAULT_UNITS`` (tests of retries and reporting)."""


class WorkerDied(RuntimeError):
    """The process running a unit ended without a result (a signal, e.g. the OOM killer's SIGKILL,
    or an exit); the message says how, e.g. "worker killed by signal 9 (SIGKILL)"."""


def exit_cause(exitcode: int | None) -> str:
    """How a worker process ended, from its exit code (negative: the signal that killed it)."""
    if exitcode is not None and exitcode < 0:
        try:
            name = f" ({signal.Signals(-exitcode).name})"
        except ValueError:
            name = ""
        return f"worker killed by signal {-exitcode}{name}"
    return f"worker exited with code {exitcode} before finishing its unit"


class UnitsFailed(RuntimeError):
    """Some units failed every attempt; the others finished and their results were merged."""

    def __init__(self, experiment: str, failed: dict[str, str]):
        self.experiment, self.failed = experiment, dict(failed)
        lines = "; ".join(f"{name}: {err}" for name, err in failed.items())
        super().__init__(f"{experiment}: {len(failed)} unit(s) failed: {lines}")


def fault_plan(text: str | None = None) -> dict[str, int]:
    """``VAEBENCH_FAULT_UNITS`` parsed: unit name -> attempts that fail (a large number: all)."""
    text = os.environ.get(FAULT_ENV, "") if text is None else text
    plan = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, count = item.partition(":")
        try:
            plan[name] = int(count) if count else 1 << 30
        except ValueError:
            raise ValueError(f"{FAULT_ENV}: expected name[:attempts], got {item!r}") from None
    return plan


def kill_plan(text: str | None = None) -> dict[str, tuple[int, int]]:
    """``VAEBENCH_FAULT_KILL`` parsed: unit name -> (step, attempts that are killed)."""
    text = os.environ.get(KILL_ENV, "") if text is None else text
    plan = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, rest = item.partition("@")
        step, _, count = rest.partition(":")
        try:
            plan[name] = (int(step), int(count) if count else 1 << 30)
        except ValueError:
            raise ValueError(f"{KILL_ENV}: expected name@step[:attempts], got {item!r}") from None
    return plan


_kill_at: int | None = None  # the step at which this process kills itself (the attempt running here)


def fault_point(step: int) -> None:
    """Called by an experiment after each training step: the process dies here if the running
    attempt was told to (``VAEBENCH_FAULT_KILL``), as abruptly as an OOM kill, no cleanup."""
    if _kill_at is not None and step == _kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


def call_unit(run_unit: Callable, config, unit, out_dir: Path, device: str, *, fail: bool = False,
              kill_at: int | None = None, progress: bool = False, on_partial=None):
    """One attempt at ``unit`` (what both executors call)."""
    global _kill_at
    if fail:
        raise InjectedFault(f"injected fault in unit {unit} ({FAULT_ENV})")
    _kill_at = kill_at
    try:
        return run_unit(config, unit, out_dir, device, progress=progress, on_partial=on_partial)
    finally:
        _kill_at = None


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


class Driver:
    """The executor-independent bookkeeping of one experiment run: results, merging, the
    progress bar over units and one status line per finished, retried or failed unit."""

    def __init__(self, experiment: Experiment, max_retries: int, progress: bool):
        self.experiment, self.max_retries, self.progress = experiment, max_retries, progress
        self.outcome = Outcome()
        self.faults = fault_plan()
        self.kills = kill_plan()
        self.errors: dict[str, BaseException] = {}
        self.bar = None

    def fail_now(self, unit, attempt: int) -> bool:
        return attempt < self.faults.get(str(unit), 0)

    def kill_at(self, unit, attempt: int) -> int | None:
        step, attempts = self.kills.get(str(unit), (None, 0))
        return step if attempt < attempts else None

    def merge(self, partial: tuple | None = None) -> None:
        exp = self.experiment
        done = self.outcome.results
        rows = [(u, done[str(u)]) for u in exp.units if str(u) in done]
        if partial is not None:
            rows = [(u, r) for u, r in rows if str(u) != str(partial[0])] + [partial]
            order = {str(u): i for i, u in enumerate(exp.units)}
            rows.sort(key=lambda ur: order[str(ur[0])])
        exp.merge(exp.config, exp.out_dir, rows)

    def status(self, text: str, always: bool = False) -> None:
        if self.progress:
            tqdm.write(f"[{self.experiment.name}] {text}", file=sys.stderr)
        elif always:
            print(f"[{self.experiment.name}] {text}", file=sys.stderr, flush=True)

    def done(self, unit, result, seconds: float, attempt: int) -> None:
        self.outcome.results[str(unit)] = result
        self.merge()
        if self.bar is not None:
            self.bar.update(1)
        again = f" (attempt {attempt + 1})" if attempt else ""
        self.status(f"{unit} finished in {seconds:.1f} s{again}")

    def failed(self, unit, error: BaseException, attempt: int, text: str | None = None) -> bool:
        """Records a failed attempt (``text``: its one-line report, default from ``error``);
        True when the unit gets another."""
        text = text or describe(error)
        self.errors[str(unit)] = error  # the last one, chained to UnitsFailed for its traceback
        if os.environ.get("VAEBENCH_DEBUG"):
            traceback.print_exception(error)
        retry = attempt < self.max_retries
        if retry:
            self.status(f"{unit} failed (attempt {attempt + 1} of {self.max_retries + 1}): {text}; retrying",
                        always=True)
        else:
            self.outcome.failed[str(unit)] = text
            self.status(f"{unit} FAILED after {attempt + 1} attempt(s): {text}", always=True)
            if self.bar is not None:
                self.bar.set_postfix(failed=len(self.outcome.failed))
                self.bar.update(1)
        return retry


def run_experiment(experiment: Experiment, executor=None, *, progress: bool = True) -> Outcome:
    """Loads the finished units, runs the others with ``executor`` (default ``LocalExecutor()``)
    and merges their results; raises ``UnitsFailed`` after the others finished if any failed."""
    from vaebench.executors.local import LocalExecutor

    executor = executor or LocalExecutor()
    names = [str(u) for u in experiment.units]
    if len(set(names)) != len(names):
        raise ValueError(f"{experiment.name}: unit names must be unique, got {names}")
    driver = Driver(experiment, executor.max_retries, progress)
    pending = []
    for unit in experiment.units:
        result = experiment.load_finished(experiment.config, unit, experiment.out_dir)
        if result is None:
            pending.append(unit)
        else:
            driver.outcome.results[str(unit)] = result
            driver.outcome.loaded.append(str(unit))
    if driver.outcome.loaded:
        driver.merge()
    driver.bar = tqdm(total=len(names), initial=len(names) - len(pending), desc=experiment.name, unit="unit",
                      disable=not progress)
    try:
        if pending:
            executor.execute(experiment, pending, driver)
    except KeyboardInterrupt:
        kept = [n for n in names if n in driver.outcome.results]
        driver.bar.close()
        driver.status(f"interrupted: {len(kept)} of {len(names)} unit(s) finished and kept"
                      f"{' (' + ', '.join(kept) + ')' if kept else ''}; a rerun resumes the others from their "
                      "last checkpoint", always=True)
        raise
    finally:
        driver.bar.close()
    if driver.outcome.failed:
        first = driver.errors.get(next(iter(driver.outcome.failed)))
        raise UnitsFailed(experiment.name, driver.outcome.failed) from first
    return driver.outcome


def make_executor(name: str = "local", *, address: str | None = None, cpus_per_task: int = 1,
                  max_retries: int = 2, jobs: int = 1):
    """``local`` or ``ray`` (Ray is imported only here, only for ``ray``)."""
    if name == "local":
        if address:
            raise ValueError(f"--ray-address needs --executor ray, got --executor {name}")
        from vaebench.executors.local import LocalExecutor

        return LocalExecutor(max_retries=max_retries, jobs=jobs)
    if name == "ray":
        if jobs != 1:
            raise ValueError(f"--jobs is for --executor local (Ray runs as many units as the cluster holds), got {jobs}")
        from vaebench.executors.ray import RayExecutor

        return RayExecutor(address=address, cpus_per_task=cpus_per_task, max_retries=max_retries)
    raise ValueError(f"executor must be 'local' or 'ray', got {name!r}")


