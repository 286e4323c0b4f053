"""Several images' optimiser steps at once, their closures' evaluations gathered into batches.

Each image keeps its own optimiser, so L-BFGS keeps its own history, line search and step length,
and asks for as many evaluations as it would alone. Each step runs in a thread of its own; when
every step still running is waiting for an evaluation (or has ended), the waiting ones are
evaluated together, in the calling thread, as one batch through the network. So a batch gives each
image the result it would get alone, and an image that needs an extra line-search evaluation
costs the others nothing but a smaller batch for that one round. A lone step runs in the calling
thread, without threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["Gatherer"]

Evaluate = Callable[[list[int]], dict[int, Exception]]  # image keys -> errors of single images


class Gatherer:
    """Runs up to ``max_steps`` steps at once and answers their ``request``s in batches through ``evaluate``.

    ``evaluate(keys)`` evaluates the images named by ``keys`` together and returns the errors of
    those that failed alone; an exception it raises fails every image of that batch.
    """

    def __init__(self, evaluate: Evaluate, max_steps: int):
        self._evaluate, self._max_steps = evaluate, max_steps
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Condition()
        self._running = 0  # steps not ended yet
        self._waiting: list[int] = []  # keys of steps waiting for an evaluation
        self._answers: dict[int, Exception | None] = {}
        self._inline = False

    def __enter__(self) -> Gatherer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def step(self, steps: dict[int, Callable[[], None]]) -> dict[int, Exception]:
        """Run every step (each may ``request`` evaluations); return the errors of those that raised."""
        if len(steps) == 1:
            return self._step_inline(*next(iter(steps.items())))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_steps, thread_name_prefix="nst-step")
        self._running = len(steps)
        futures = {key: self._pool.submit(self._run, step) for key, step in steps.items()}
        try:
            self._serve()
        except BaseException:  # Ctrl-C in this thread: let the steps end before leaving
            self._abort()
            raise
        return {key: error for key, future in futures.items() if (error := future.exception()) is not None}

    def request(self, key: int) -> None:
        """Wait until the image ``key`` has been evaluated at its current pixels (called from its step).

        Raises:
            Exception: the image's own evaluation error, or its batch's.
        """
        if self._inline:
            error = self._evaluate_safely([key]).get(key)
        else:
            with self._lock:
                self._waiting.append(key)
                self._lock.notify_all()
                self._lock.wait_for(lambda: key in self._answers)
                error = self._answers.pop(key)
        if error is not None:
            raise error

    def _step_inline(self, key: int, step: Callable[[], None]) -> dict[int, Exception]:
        self._inline = True
        try:
            step()
        except Exception as exc:
            return {key: exc}
        finally:
            self._inline = False
        return {}

    def _run(self, step: Callable[[], None]) -> None:
        try:
            step()
        finally:
            with self._lock:
                self._running -= 1
                self._lock.notify_all()

    def _serve(self) -> None:
        """Evaluate the waiting steps in batches until every step has ended."""
        while True:
            with self._lock:
                self._lock.wait_for(lambda: len(self._waiting) == self._running)
                if self._running == 0:
                    return
                batch, self._waiting = sorted(self._waiting), []  # in key order, whatever the threads' timing
            try:
                errors = self._evaluate_safely(batch)
            except BaseException:  # Ctrl-C: ``_abort`` answers them
                with self._lock:
                    self._waiting += batch
                raise
            with self._lock:
                self._answers.update({key: errors.get(key) for key in batch})
                self._lock.notify_all()

    def _evaluate_safely(self, keys: list[int]) -> dict[int, Exception]:
        try:
            return self._evaluate(keys)
        except Exception as exc:  # the batch as a whole failed (out of memory ...): each of its images did
            return dict.fromkeys(keys, exc)

    def _abort(self) -> None:
        """Fail every request, now and until the running steps have ended."""
        stopped = RuntimeError("the batch was stopped")
        with self._lock:
            while self._running:
                self._answers.update(dict.fromkeys(self._waiting, stopped))
                self._waiting = []
                self._lock.notify_all()
                self._lock.wait_for(lambda: self._waiting or not self._running)
