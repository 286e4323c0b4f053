"""retry_transient: transient storage errors are retried with backoff within the budget; others fail at once."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from nst_core import StorageError
from tasks.runs import stopping
from tasks.storage.retries import MAX_WAIT_S, retry_transient


class Flaky:
    """Raises ``errors`` in turn, then returns "ok"; counts calls."""

    def __init__(self, *errors: Exception):
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def transient(cause: str = "connection refused") -> StorageError:
    return StorageError("output", "s3://b/p", cause, transient=True)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits asked for, without waiting."""
    asked: list[float] = []
    monkeypatch.setattr(stopping, "sleep", asked.append)
    return asked


def test_transient_errors_are_retried_with_growing_waits(waits: list[float], caplog: pytest.LogCaptureFixture) -> None:
    op = Flaky(transient(), transient(), transient("timed out"))
    with caplog.at_level(logging.WARNING):
        assert retry_transient(op, retry_for_s=60) == "ok"
    assert op.calls == 4
    assert len(waits) == 3 and waits[0] < waits[2] <= 30
    assert caplog.messages[0].startswith("output s3://b/p: connection refused; trying again in ")
    assert caplog.messages[2].startswith("output s3://b/p: timed out; trying again in ")


def test_permanent_errors_fail_at_once(waits: list[float]) -> None:
    op = Flaky(StorageError("output", "/ro", "read-only file system", transient=False))
    with pytest.raises(StorageError, match=r"read-only file system$"):
        retry_transient(op, retry_for_s=60)
    assert (op.calls, waits) == (1, [])


def test_other_errors_are_not_retried(waits: list[float]) -> None:
    op = Flaky(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        retry_transient(op, retry_for_s=60)
    assert op.calls == 1


def test_the_budget_ends_the_retries_and_says_so() -> None:
    op = Flaky(*[transient()] * 100)
    with pytest.raises(StorageError) as info:
        retry_transient(op, retry_for_s=1.5)
    assert 2 <= op.calls < 100
    assert str(info.value).startswith(f"output s3://b/p: connection refused (gave up after {op.calls} tries in ")
    assert info.value.transient


def test_a_stop_request_ends_a_wait_at_once() -> None:
    stopping.reset()
    op = Flaky(*[transient()] * 100)
    timer = threading.Timer(0.3, stopping.request_stop)
    timer.start()
    try:
        with pytest.raises(stopping.Stopped):
            retry_transient(op, retry_for_s=600)
    finally:
        timer.cancel()
        stopping.reset()
    assert op.calls <= 2


def test_the_budget_bounds_slow_tries_and_their_waits() -> None:
    """Tries that take a while: the waits end at the budget, so the whole retry ends within a try of it."""

    def slow() -> str:
        time.sleep(0.3)
        raise transient()

    start = time.monotonic()
    with pytest.raises(StorageError, match="gave up after"):
        retry_transient(slow, retry_for_s=4)
    assert 4 <= time.monotonic() - start < 4 + 0.3 + 0.5


def test_waits_stay_short_enough_for_a_line_every_30_s(waits: list[float], caplog: pytest.LogCaptureFixture) -> None:
    op = Flaky(*[transient()] * 12)
    with caplog.at_level(logging.WARNING):
        assert retry_transient(op, retry_for_s=10_000) == "ok"
    assert max(waits) <= MAX_WAIT_S < 30
    assert len(caplog.messages) == 12  # one line per wait
    assert caplog.messages[-1].endswith(" of 10000 s)")
