"""Runs the units on this machine (the default executor): one after another in this process,
or ``jobs`` at a time in worker processes. On a small CPU several single-threaded units side by
side train faster than one unit on every core (two 1-thread beta-VAE units on 2 cores: about
15% more images per second than one 2-thread unit), and their results are the same."""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection as mp_connection
import os
import pickle
import signal
import threading
import time
import traceback
from dataclasses import dataclass

from vaebench.executors import Driver, Experiment, WorkerDied, call_unit, describe, exit_cause


def check_retries(max_retries) -> None:
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries (--max-retries) must be an integer >= 0, got {max_retries!r}")


@dataclass
class LocalExecutor:
    """A failing unit (an exception, or with ``jobs`` > 1 its worker process dying) is retried up
    to ``max_retries`` times, from its last checkpoint, then reported; the other units go on
    either way. KeyboardInterrupt stops the run (finished units are already merged)."""

    max_retries: int = 2
    jobs: int = 1  # units at once; above 1 each runs in a worker process

    def __post_init__(self):
        check_retries(self.max_retries)
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"jobs (--jobs) must be an integer >= 1, got {self.jobs!r}")

    def execute(self, exp: Experiment, pending: list, driver: Driver) -> None:
        if self.jobs > 1:  # even for one unit: a worker that dies is retried, the driver lives on
            return self._execute_in_processes(exp, pending, driver)
        for unit in pending:
            attempt = 0
            while True:
                t0 = time.perf_counter()
                try:
                    result = call_unit(exp.run_unit, exp.config, unit, exp.out_dir, exp.device,
                                       fail=driver.fail_now(unit, attempt), kill_at=driver.kill_at(unit, attempt),
                                       progress=driver.progress,
                                       on_partial=lambda partial, unit=unit: driver.merge((unit, partial)))
                except Exception as e:  # noqa: BLE001 - reported by name, the other units go on
                    if driver.failed(unit, e, attempt):
                        attempt += 1
                        continue
                    break
                driver.done(unit, result, time.perf_counter() - t0, attempt)
                break

    def _execute_in_processes(self, exp: Experiment, pending: list, driver: Driver) -> None:
        # Processes of our own rather than a ProcessPoolExecutor: when one dies (OOM killer, a
        # signal, an exit) only its unit is lost and retried; a pool would break as a whole and
        # take the units running beside it down too.
        queue = [(unit, 0) for unit in pending]
        workers: list[_Worker] = []
        try:
            while queue or any(w.task for w in workers):
                while queue and sum(1 for w in workers if w.task) < self.jobs:
                    worker = next((w for w in workers if not w.task), None)
                    if worker is None:
                        worker = _Worker()
                        workers.append(worker)
                    unit, attempt = queue.pop(0)
                    worker.start(exp, unit, attempt, driver)
                busy = [w for w in workers if w.task]
                ready = set(mp_connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
                for worker in busy:
                    if worker.conn not in ready and worker.process.sentinel not in ready:
                        continue
                    (unit, attempt), reply = worker.task, worker.reply()
                    if reply is None:  # the process is gone: a fresh one takes its place
                        workers.remove(worker)
                        error = WorkerDied(exit_cause(worker.process.exitcode))
                        if driver.failed(unit, error, attempt, str(error)):
                            queue.append((unit, attempt + 1))
                        continue
                    kind, value, seconds = reply
                    if kind == "error":
                        if driver.failed(unit, value, attempt):
                            queue.append((unit, attempt + 1))
                    else:
                        driver.done(unit, value, seconds, attempt)
        except BaseException:
            # Ctrl-C or a driver error: finished units are merged already; stop the others now
            # (files are written atomically, so a unit stopped anywhere resumes from its last checkpoint).
            for worker in workers:
                worker.process.kill()
            raise
        finally:
            for worker in workers:
                worker.close()


class _Worker:
    """One spawned worker process running units one at a time, sent over a pipe (spawn, not
    fork: the parent's torch thread pools and the renderer's state must not be copied). The
    process lives on between units, so a unit finds the run's data already loaded."""

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_loop, args=(child, os.getpid()), daemon=True,
                                   name="vaebench-worker")
        self.process.start()
        child.close()
        self.task: tuple | None = None  # (unit, attempt) it runs

    def start(self, exp: Experiment, unit, attempt: int, driver: Driver) -> None:
        self.task = (unit, attempt)
        self.conn.send((exp.run_unit, exp.config, unit, exp.out_dir, exp.device, driver.fail_now(unit, attempt),
                        driver.kill_at(unit, attempt)))

    def reply(self):
        """``(kind, value, seconds)`` of the task it ran, or None when the process died first."""
        self.task = None
        try:
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):  # it died while sending
            pass
        self.process.join()  # its sentinel was ready: it is exiting or gone
        return None

    def close(self) -> None:
        if self.process.is_alive() and self.task is None:
            try:
                self.conn.send(None)  # done: the loop returns and the process exits
            except OSError:
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _worker_loop(conn, parent_pid: int) -> None:
    # Ctrl-C in the terminal reaches the whole group; the driver alone decides and stops its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent_pid)
    # tqdm's default lock is a multiprocessing semaphore that a killed worker cannot release; the
    # driver's resource tracker then warns of it at exit. Workers show no bars: a thread lock will do.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the driver is gone
            return
        if task is None:
            return
        run_unit, config, unit, out_dir, device, fail, kill_at = task
        t0 = time.perf_counter()
        try:  # no progress bars in workers: they would interleave
            result = call_unit(run_unit, config, unit, out_dir, device, fail=fail, kill_at=kill_at)
        except Exception as e:  # noqa: BLE001 - sent to the driver, which reports it by name
            conn.send(("error", _picklable(e), 0.0))
            continue
        conn.send(("ok", result, time.perf_counter() - t0))


def _picklable(error: Exception) -> Exception:
    """``error`` with its traceback text attached (VAEBENCH_DEBUG prints it), or, when it cannot
    cross the pipe, a RuntimeError that says the same in one line."""
    remote = _RemoteTraceback("".join(traceback.format_exception(error)))
    try:
        pickle.dumps(error)
    except Exception:  # noqa: BLE001 - any pickling failure
        error = RuntimeError(describe(error))
    error.__cause__ = remote
    return error


class _RemoteTraceback(Exception):
    """The worker's traceback of a failed attempt, chained to the error the driver reports."""

    def __str__(self) -> str:
        return self.args[0]


def _exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """In a worker: it ends when the driver does. Ctrl-C reaches every process of
    the terminal's group, but a driver killed alone (``kill``, out of memory) would otherwise leave
    its workers training on, taking the cores from whatever runs next."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)  # files are written atomically: a unit stopped here resumes from its last checkpoint

    threading.Thread(target=watch, name="vaebench-exit-with-parent", daemon=True).start()
