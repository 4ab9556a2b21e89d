"""Runs the units on this machine (the default executor): one after another in this process,
or ``jobs`` at a time in worker processes. On a small CPU several single-threaded units side by
side train faster than one unit on every core (two 1-thread beta-VAE units on 2 cores: about
15% more images per second than one 2-thread unit), and their results are the same."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass

from vaebench.executors import Driver, Experiment, call_unit


def check_retries(max_retries) -> None:
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries (--max-retries) must be an integer >= 0, got {max_retries!r}")


@dataclass
class LocalExecutor:
    """A failing unit is retried up to ``max_retries`` times, then reported; the next one
    starts either way. KeyboardInterrupt stops the run (finished units are already merged)."""

    max_retries: int = 2
    jobs: int = 1  # units at once; above 1 each runs in a worker process

    def __post_init__(self):
        check_retries(self.max_retries)
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"jobs (--jobs) must be an integer >= 1, got {self.jobs!r}")

    def execute(self, exp: Experiment, pending: list, driver: Driver) -> None:
        if self.jobs > 1 and len(pending) > 1:
            return self._execute_in_processes(exp, pending, driver)
        for unit in pending:
            attempt = 0
            while True:
                t0 = time.perf_counter()
                try:
                    result = call_unit(exp.run_unit, exp.config, unit, exp.out_dir, exp.device,
                                       fail=driver.fail_now(unit, attempt), progress=driver.progress,
                                       on_partial=lambda partial, unit=unit: driver.merge((unit, partial)))
                except Exception as e:  # noqa: BLE001 - reported by name, the other units go on
                    if driver.failed(unit, e, attempt):
                        attempt += 1
                        continue
                    break
                driver.done(unit, result, time.perf_counter() - t0, attempt)
                break

    def _execute_in_processes(self, exp: Experiment, pending: list, driver: Driver) -> None:
        # spawn, not fork: the parent's torch thread pools and the renderer's state must not be copied.
        pool = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_exit_with_parent, initargs=(os.getpid(),))
        running: dict[cf.Future, tuple] = {}

        def submit(unit, attempt: int) -> None:
            future = pool.submit(_timed_unit, exp.run_unit, exp.config, unit, exp.out_dir, exp.device,
                                 driver.fail_now(unit, attempt))
            running[future] = (unit, attempt)

        try:
            for unit in pending:
                submit(unit, 0)
            while running:
                finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    unit, attempt = running.pop(future)
                    try:
                        result, seconds = future.result()
                    except Exception as e:  # noqa: BLE001 - reported by name, the other units go on
                        if driver.failed(unit, e, attempt):
                            submit(unit, attempt + 1)
                        continue
                    driver.done(unit, result, seconds, attempt)
        except BaseException:
            # Ctrl-C or a driver error: finished units are merged already; stop the others now.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()


def _exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Worker initializer: the worker ends when the driver does. Ctrl-C reaches every process of
    the terminal's group, but a driver killed alone (``kill``, out of memory) would otherwise leave
    its workers training on, taking the cores from whatever runs next."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)  # files are written atomically: a unit stopped here resumes from its last checkpoint

    threading.Thread(target=watch, name="vaebench-exit-with-parent", daemon=True).start()


def _timed_unit(run_unit, config, unit, out_dir, device, fail: bool):
    """One attempt in a worker process (no progress bars: they would interleave)."""
    t0 = time.perf_counter()
    result = call_unit(run_unit, config, unit, out_dir, device, fail=fail)
    return result, time.perf_counter() - t0
