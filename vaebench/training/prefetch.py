"""Batches made ahead of the step that needs them: a background thread renders the next batches
while the current step runs (the renderer and NumPy release the GIL), so the step never waits."""
from __future__ import annotations

import contextlib
import queue
import threading
from typing import Callable, Iterator


class Prefetcher:
    """Iterates ``make(i)`` for ``i`` in ``range(start, stop)``, computed up to ``depth`` items ahead
    in a background thread. An exception in ``make`` is raised by ``next`` at its item.

    Use as a context manager (or call ``close``) so the thread stops when the loop ends early.
    """

    _DONE = object()

    def __init__(self, make: Callable[[int], object], start: int, stop: int, depth: int = 3):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(make, start, stop), daemon=True)
        self._thread.start()

    def _work(self, make, start, stop):
        try:
            for i in range(start, stop):
                item = make(i)
                while not self._stop.is_set():
                    try:
                        self._queue.put((None, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as e:  # handed to the consumer, which raises it at this item
            self._queue.put((e, None))
            return
        self._queue.put((None, self._DONE))

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        error, item = self._queue.get()
        if error is not None:
            raise error
        if item is self._DONE:
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join(timeout=5)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
