"""Runs the units as Ray tasks, on a local Ray or on a cluster (``address``).

Each unit is one task: one GPU (plus ``cpus_per_task`` CPUs) when the device is CUDA, else
``cpus_per_task`` CPUs, with torch using that many threads (an experiment's own thread
setting, e.g. ``BetaVAEConfig.num_threads``, wins inside its units). Tasks write their own
files (checkpoints, arrays) under ``out_dir``, so on a multi-node cluster ``out_dir`` must be on
a filesystem every node sees at the same path; the driver gathers the results and writes
the tables. Retries are the driver's (Ray's own are off), so every failure, a worker process or
node lost included, is reported by name and counted against ``max_retries`` as on the local executor.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vaebench.executors import Driver, Experiment, WorkerDied, call_unit, describe
from vaebench.executors.local import check_retries


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install --no-build-isolation -e '.[ray]' "
                         "(or pip install ray)") from None
    return ray


def _task(run_unit, config, unit, out_dir: Path, device: str, threads: int, fail: bool, kill_at: int | None = None):
    """The body of one Ray task: torch threads for the CPUs it holds, then the unit."""
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    result = call_unit(run_unit, config, unit, out_dir, device, fail=fail, kill_at=kill_at)
    return result, time.perf_counter() - t0


def _lost_worker(ray, error: Exception) -> WorkerDied | None:
    """A task that ended with its worker process or node rather than an error of its own, as the
    local executor reports a dead worker (Ray does not say which signal it was)."""
    kinds = tuple(getattr(ray.exceptions, name) for name in ("WorkerCrashedError", "NodeDiedError",
                                                             "LocalRayletDiedError") if hasattr(ray.exceptions, name))
    if not isinstance(error, kinds):
        return None
    first = (str(error).strip().splitlines() or [""])[0]
    return WorkerDied(f"worker died ({type(error).__name__}: {first})".replace(": )", ")"))


@dataclass
class RayExecutor:
    """``address``: an existing cluster (``ray start --head`` prints it; "auto" finds a local
    one); None starts a local Ray for the run, stopped by ``close``. A Ray already initialised
    in this process (``ray.init``) is used as it is and left running."""

    address: str | None = None
    cpus_per_task: int = 1
    max_retries: int = 2

    def __post_init__(self):
        check_retries(self.max_retries)
        if not isinstance(self.cpus_per_task, int) or self.cpus_per_task < 1:
            raise ValueError(f"cpus_per_task (--cpus-per-task) must be an integer >= 1, got {self.cpus_per_task!r}")
        self._started = False

    def start(self):
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=True)
            self._started = True
        return ray

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def device(self, arg: str) -> str:
        """``--device`` for the cluster: ``auto`` is cuda where the cluster has GPUs."""
        ray = self.start()
        gpus = ray.cluster_resources().get("GPU", 0)
        if arg == "auto":
            return "cuda" if gpus else "cpu"
        if arg.startswith("cuda") and not gpus:
            raise ValueError(f"--device {arg}: the Ray cluster has no GPU")
        return arg

    def _resources(self, ray, device: str) -> dict:
        gpu = str(device).startswith("cuda")
        need = {"CPU": self.cpus_per_task, **({"GPU": 1} if gpu else {})}
        have = ray.cluster_resources()
        short = {k: f"{v} per task, the cluster has {have.get(k, 0):g}" for k, v in need.items() if have.get(k, 0) < v}
        if short:
            flag = "--device" if "GPU" in short else "--cpus-per-task"
            raise ValueError(f"{flag}: the Ray cluster cannot run one task: {short}")
        return {"num_cpus": self.cpus_per_task, "num_gpus": 1 if gpu else 0}

    def execute(self, exp: Experiment, pending: list, driver: Driver) -> None:
        ray = self.start()
        task = ray.remote(_task).options(**self._resources(ray, exp.device), max_retries=0, retry_exceptions=False)
        out_dir = Path(exp.out_dir).resolve()  # workers may start elsewhere
        running = {}

        def submit(unit, attempt: int) -> None:
            ref = task.remote(exp.run_unit, exp.config, unit, out_dir, exp.device, self.cpus_per_task,
                              driver.fail_now(unit, attempt), driver.kill_at(unit, attempt))
            running[ref] = (unit, attempt)

        for unit in pending:
            submit(unit, 0)
        try:
            while running:
                [ref], _ = ray.wait(list(running), num_returns=1)
                unit, attempt = running.pop(ref)
                try:
                    result, seconds = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a task's error, or a lost worker
                    cause = getattr(e, "cause", None)  # the task's own exception; e holds its traceback
                    lost = _lost_worker(ray, e)
                    text = str(lost) if lost else describe(cause if isinstance(cause, BaseException) else e)
                    if driver.failed(unit, e, attempt, text):
                        submit(unit, attempt + 1)
                    continue
                driver.done(unit, result, seconds, attempt)
        except KeyboardInterrupt:
            for ref in running:  # finished units are merged already; stop the rest
                ray.cancel(ref, force=True)
            raise
