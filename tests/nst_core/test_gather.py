"""The gatherer: steps in threads whose evaluations are answered in batches, each step as it would run alone."""

from __future__ import annotations

import threading

import pytest

from nst_core.gather import Gatherer


class Recorder:
    """``evaluate`` for the gatherer: records each batch of keys; ``fail`` names keys that fail alone."""

    def __init__(self, fail: frozenset[int] = frozenset()):
        self.batches: list[list[int]] = []
        self.fail = fail

    def __call__(self, keys: list[int]) -> dict[int, Exception]:
        self.batches.append(keys)
        return {key: ValueError(f"image {key}") for key in keys if key in self.fail}


def asking(gather: Gatherer, key: int, times: int, seen: list[int]) -> None:
    for _ in range(times):
        gather.request(key)
        seen.append(key)


def test_every_waiting_step_is_evaluated_in_one_batch_until_it_ends() -> None:
    """Steps asking for 1, 3 and 2 evaluations (an L-BFGS line search needing more or fewer): three
    rounds, each with every step that still asks, in key order."""
    recorder = Recorder()
    seen: list[int] = []
    with Gatherer(recorder, 3) as gather:
        errors = gather.step(
            {key: lambda key=key, n=n: asking(gather, key, n, seen) for key, n in ((2, 1), (0, 3), (1, 2))}
        )
    assert errors == {}
    assert recorder.batches == [[0, 1, 2], [0, 1], [0]]
    assert sorted(seen) == [0, 0, 0, 1, 1, 2]


def test_a_lone_step_runs_in_the_calling_thread() -> None:
    recorder = Recorder()
    threads = []

    def step() -> None:
        threads.append(threading.current_thread())
        gather.request(7)

    with Gatherer(recorder, 4) as gather:
        assert gather.step({7: step}) == {}
    assert threads == [threading.current_thread()]
    assert recorder.batches == [[7]]


def test_an_image_that_fails_its_evaluation_fails_alone() -> None:
    recorder = Recorder(fail=frozenset({1}))
    seen: list[int] = []
    with Gatherer(recorder, 3) as gather:
        errors = gather.step({key: lambda key=key: asking(gather, key, 2, seen) for key in (0, 1, 2)})
    assert list(errors) == [1]
    assert str(errors[1]) == "image 1"
    assert recorder.batches == [[0, 1, 2], [0, 2]]
    assert sorted(seen) == [0, 0, 2, 2]


def test_a_failing_batch_fails_each_of_its_images() -> None:
    def evaluate(keys: list[int]) -> dict[int, Exception]:
        raise MemoryError("out of memory")

    with Gatherer(evaluate, 2) as gather:
        errors = gather.step({key: lambda key=key: gather.request(key) for key in (0, 1)})
    assert sorted(errors) == [0, 1]
    assert all(isinstance(error, MemoryError) for error in errors.values())


def test_a_step_that_raises_ends_alone() -> None:
    recorder = Recorder()
    seen: list[int] = []

    def raising() -> None:
        gather.request(2)
        raise KeyError("its own error")

    with Gatherer(recorder, 3) as gather:
        errors = gather.step({0: lambda: asking(gather, 0, 2, seen), 1: lambda: asking(gather, 1, 2, seen), 2: raising})
    assert list(errors) == [2]
    assert isinstance(errors[2], KeyError)
    assert recorder.batches == [[0, 1, 2], [0, 1]]


def test_an_interrupt_while_serving_ends_every_step_and_propagates() -> None:
    """Ctrl-C in the calling thread: the steps waiting get an error and end; no thread is left waiting."""
    started = threading.active_count()

    def evaluate(keys: list[int]) -> dict[int, Exception]:
        raise KeyboardInterrupt

    ended: list[int] = []

    def step(key: int) -> None:
        try:
            asking(gather, key, 3, [])
        finally:
            ended.append(key)

    with pytest.raises(KeyboardInterrupt), Gatherer(evaluate, 2) as gather:
        gather.step({key: lambda key=key: step(key) for key in (0, 1)})
    assert sorted(ended) == [0, 1]
    assert threading.active_count() == started


@pytest.mark.parametrize("steps", [2, 3])
def test_steps_that_ask_for_nothing_end_without_an_evaluation(steps: int) -> None:
    recorder = Recorder()
    with Gatherer(recorder, steps) as gather:
        assert gather.step(dict.fromkeys(range(steps), lambda: None)) == {}
    assert recorder.batches == []
