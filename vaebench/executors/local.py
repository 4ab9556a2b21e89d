"""Runs the units one after another in this process (the default executor)."""
from __future__ import annotations

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

    def __post_init__(self):
        check_retries(self.max_retries)

    def execute(self, exp: Experiment, pending: list, driver: Driver) -> None:
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
