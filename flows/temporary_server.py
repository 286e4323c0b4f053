"""Prefect's API for one ``stylebatch run``: the configured server, or a temporary local one.

Prefect's own embedded mode starts a temporary server that must answer within 20 s, which a cold
start on a busy machine misses, and leaves it running when it fails, or when the run is killed.
This module starts the same server (Prefect's ``create_app`` under uvicorn, UI and background
services off, as embedded mode does) in its own session, so that Ctrl-C in the terminal reaches
the run and not the server, and stops it after any exit. The server watches its parent and exits
when it is gone, so even ``kill -9`` of the run leaves no server behind.

How long the server may take to start adapts to the machine: as long as its process is alive and
working (its CPU time grows), up to ``STARTUP_LIMIT_S``; one that stops working for ``STALL_S`` is
given up. ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``, when set, is a fixed limit instead.

Run as ``python -m flows.temporary_server PORT PARENT_PID``, it is that server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import psutil

from tasks.runs import stopping

__all__ = ["STALL_S", "STARTUP_LIMIT_S", "ServerError", "TemporaryServer", "kill_all", "prefect_api"]

STARTUP_LIMIT_S = 900  # the most a working server may take to start (seen: 140 s at load 9 on 2 cores)
STALL_S = 20  # a starting server whose CPU time has not grown for this long is stuck
REPORT_AFTER_S, REPORT_EVERY_S = 10, 15  # "waiting for Prefect's temporary server" lines
TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
TELEMETRY_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
_running: set[TemporaryServer] = set()


class ServerError(RuntimeError):
    """No Prefect API could be had; the message is one line saying what to do."""


@contextlib.contextmanager
def prefect_api(
    while_starting: Callable[[], object] = lambda: None, report: Callable[[str], object] = lambda line: None
) -> Iterator[tuple[str, bool]]:
    """(API URL, whether it is a temporary server started here) for the block.

    ``while_starting()`` runs while a temporary server starts (the run's imports overlap its start-up);
    ``report(line)`` says how long it has been starting (from a thread), every ``REPORT_EVERY_S`` once it
    takes ``REPORT_AFTER_S``.

    The URL is also set as ``PREFECT_API_URL`` in this process's environment, so that Prefect, and
    any process the run starts, use it.

    Raises:
        ServerError: the temporary server did not start in time, or Prefect is set to need a server.
    """
    for name, value in TELEMETRY_OFF.items():  # offline machines log telemetry failures; users may opt in
        os.environ.setdefault(name, value)
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    if settings.api.url:
        while_starting()
        yield str(settings.api.url), False
        return
    if not settings.server.ephemeral.enabled:
        raise ServerError("no Prefect server: set PREFECT_API_URL (Prefect's ephemeral mode is switched off)")
    ephemeral = settings.server.ephemeral
    explicit = TIMEOUT_SETTING in os.environ or "startup_timeout_seconds" in ephemeral.model_fields_set
    with TemporaryServer() as server:
        with _reporting(server.started, report):
            while_starting()
            server.wait_until_healthy(ephemeral.startup_timeout_seconds if explicit else None)
        with _environment(PREFECT_API_URL=server.url), temporary_settings({PREFECT_API_URL: server.url}):
            try:
                yield server.url, True
            finally:
                _drain_prefect_workers()


@contextlib.contextmanager
def _reporting(since: float, report: Callable[[str], object]) -> Iterator[None]:
    """``report`` a line every ``REPORT_EVERY_S`` from ``since + REPORT_AFTER_S`` on, until the block ends."""
    done = threading.Event()

    def say() -> None:
        wait = since + REPORT_AFTER_S - time.monotonic()
        while not done.wait(max(0.0, wait)):
            report(f"waiting for Prefect's temporary server to start ({time.monotonic() - since:.0f} s so far)")
            wait = REPORT_EVERY_S

    thread = threading.Thread(target=say, name="server start report", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _drain_prefect_workers() -> None:
    """Send the logs and events Prefect still holds while their server is up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


class TemporaryServer:
    """Prefect's API server in a child process of its own session, stopped with its session."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api"
        self.started = time.monotonic()
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop): the server's messages, shown if it fails
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flows.temporary_server", str(port), str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal is the run's to handle, not the server's
        )
        _running.add(self)

    def __enter__(self) -> TemporaryServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_until_healthy(self, timeout: float | None) -> None:
        """Return once the server answers; ``Stopped`` on Ctrl-C; ``ServerError`` if it exits, stops working
        (no CPU time for ``STALL_S``) or takes over ``STARTUP_LIMIT_S`` (``timeout`` s, if given, instead)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never through a proxy
        progress = _Progress(self.process.pid)
        while True:
            stopping.check()  # Ctrl-C while it starts
            if self.process.poll() is not None:
                raise ServerError(f"Prefect's temporary server exited at start ({self._last_line()}); {_ALTERNATIVE}")
            with contextlib.suppress(OSError), opener.open(f"{self.url}/health", timeout=5) as response:
                if response.status == 200:
                    return
            if (problem := self._too_long(time.monotonic() - self.started, progress.idle_s(), timeout)) is not None:
                raise ServerError(f"Prefect's temporary server {problem}; {_ALTERNATIVE}")
            time.sleep(0.25)

    @staticmethod
    def _too_long(elapsed_s: float, idle_s: float, timeout: float | None) -> str | None:
        """Why waiting for the server ends now, or None."""
        if timeout is not None:
            return f"did not answer within {timeout:g} s (raise {TIMEOUT_SETTING})" if elapsed_s > timeout else None
        if idle_s > STALL_S:
            return f"stopped working while starting (no CPU time in {STALL_S} s, {elapsed_s:.0f} s after its start)"
        if elapsed_s > STARTUP_LIMIT_S:
            return f"did not answer within {STARTUP_LIMIT_S} s, working all along (set {TIMEOUT_SETTING})"
        return None

    def stop(self, wait_s: float = 5) -> None:
        """Stop the server's whole session: politely, then for good."""
        _running.discard(self)
        for sig, wait in ((signal.SIGTERM, wait_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(wait)
                break
        self.log.close()

    def _last_line(self) -> str:
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self.process.returncode}"


_ALTERNATIVE = "or start one with `prefect server start` and set PREFECT_API_URL"


class _Progress:
    """How long a process has done no work: its CPU time has not grown (0 where it cannot be read)."""

    def __init__(self, pid: int):
        self._process = psutil.Process(pid)
        self._cpu_s, self._since = -1.0, time.monotonic()

    def idle_s(self) -> float:
        try:
            times = self._process.cpu_times()
        except psutil.Error:  # gone (the caller sees it exit) or not ours to read
            return 0.0
        now, cpu_s = time.monotonic(), times.user + times.system
        if cpu_s > self._cpu_s:
            self._cpu_s, self._since = cpu_s, now
        return now - self._since


def kill_all() -> None:
    """Kill every server started here at once (a second Ctrl-C, interpreter exit)."""
    for server in list(_running):
        server.stop(wait_s=0)


atexit.register(kill_all)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _exit_with_parent(parent: int) -> None:
    """End this process as soon as ``parent``, the process that started it, is gone (killed, crashed)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


def _serve(port: int, parent: int) -> None:
    _exit_with_parent(parent)
    import uvicorn

    uvicorn.run(
        "prefect.server.api.server:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        log_level="error",
        lifespan="on",
    )


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
