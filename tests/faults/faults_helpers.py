"""Helpers of the fault suite: ``stylebatch`` as a real process, a TCP proxy that drops connections, stray servers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import selectors
import shutil
import signal
import socket
import subprocess
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tasks.runs.records import RunSummary
from tests.flows.helpers import PAIR_FILES, pair_dirs
from tests.scale.scale_helpers import BIN, REPO_ROOT
from tests.support import wait_for

STYLEBATCH = str(BIN / "stylebatch")
UV = os.environ.get("UV") or shutil.which("uv") or "uv"  # uv sets UV in what it runs (uv run pytest)
SERVER_MODULE = "flows.temporary_server"
TOTALS = re.compile(
    r"^rendered (\d+), skipped (\d+), failed (\d+), cancelled (\d+)(?:, preempted \d+)? in ([\d.]+) s; outputs in (.+)$"
)
# ~1 s a pair on a 2-core CPU (32 px: no mirrored margin; 20 L-BFGS iterations, random weights): long enough to be
# caught mid-render.
SLOW = ["--weights", "random:0", "--image-size", "32", "--iterations", "20"]


@dataclass
class Run:
    """A ``stylebatch`` process (or ``uv run`` running it), its stdout and stderr in files."""

    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started: float
    terminal: int | None = None  # the controlling terminal's master side, if it was started from one

    def ctrl_c(self) -> None:
        """Type Ctrl-C in its terminal: the kernel sends SIGINT to the terminal's foreground process group."""
        assert self.terminal is not None, "started without a terminal"
        os.write(self.terminal, b"\x03")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"stylebatch did not end in {timeout} s:\n{self.stderr[-3000:]}") from None

    def stderr_lines_as_they_come(self, timeout: float = 240) -> list[tuple[float, str]]:
        """Every stderr line with the time it appeared (seconds after the start), until the process ends."""
        seen: list[tuple[float, str]] = []
        deadline = time.monotonic() + timeout
        while True:
            ended = self.proc.poll() is not None
            lines = self.stderr.splitlines(keepends=True)
            complete = lines if ended else [line for line in lines if line.endswith("\n")]
            now = time.monotonic() - self.started
            seen += [(now, line.rstrip("\n")) for line in complete[len(seen) :]]
            if ended:
                return seen
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"stylebatch did not end in {timeout} s:\n{self.stderr[-3000:]}")
            time.sleep(0.1)

    def totals(self) -> tuple[int, int, int, int]:
        """rendered, skipped, failed, cancelled: the summary's last line."""
        lines = self.stdout.splitlines()
        match = TOTALS.match(lines[-1]) if lines else None
        assert match, f"no summary:\n{self.stdout}\n{self.stderr[-3000:]}"
        return int(match[1]), int(match[2]), int(match[3]), int(match[4])

    def summary(self) -> RunSummary:
        """The summary file that the summary's ``summary: <path>`` line names (a local output root's)."""
        (path,) = [line.removeprefix("summary: ") for line in self.stdout.splitlines() if line.startswith("summary: ")]
        return RunSummary.model_validate_json(Path(path).read_text())

    def pairs(self, status: str) -> set[str]:
        """Pair ids with ``status`` in the summary file (the table shows labels, and wraps them)."""
        return {row.id for row in self.summary().pairs if row.status == status}


def start(
    *args: str, env: dict[str, str], cwd: Path, name: str = "run", uv: bool = False, terminal: bool = False
) -> Run:
    """``stylebatch ARGS`` in a session of its own (signals in a test reach it as they would a run in its own
    terminal); with ``uv``, as the README runs it (``uv run stylebatch``); with ``terminal``, with a pseudo-terminal
    as its stdin and controlling terminal (stdout and stderr stay files)."""
    command = [UV, "run", "--no-sync", "--project", str(REPO_ROOT), "stylebatch"] if uv else [STYLEBATCH]
    out, err = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    master, slave = pty.openpty() if terminal else (None, subprocess.DEVNULL)
    with out.open("wb") as stdout, err.open("wb") as stderr:  # the child keeps its own copies
        proc = subprocess.Popen(
            [*command, *args],
            env=env,
            cwd=cwd,
            stdin=slave,
            stdout=stdout,
            stderr=stderr,
            start_new_session=not terminal,
            preexec_fn=_own_terminal if terminal else None,
        )
    if terminal:
        os.close(slave)
    return Run(proc, out, err, time.monotonic(), master)


def _own_terminal() -> None:
    """In the child: a new session whose controlling terminal is its stdin (a terminal window's shell)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def markers(out: Path) -> dict[str, str]:
    """pair id -> its done.json as written (a pair rendered twice would change it)."""
    return {p.parent.name: p.read_text() for p in out.glob("*/done.json")}


def assert_consistent(out: Path) -> None:
    """No result without its marker, and nothing but staging folders hidden."""
    for name, files in pair_dirs(out).items():
        assert "result.png" not in files or files == PAIR_FILES, (name, files)
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
    assert all(name.endswith((".tmp", ".tmp.old")) for name in hidden), hidden


def temporary_servers() -> list[tuple[psutil.Process, int]]:
    """Running temporary Prefect servers (of any stylebatch run), each with the pid of the run that started it."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, ValueError, IndexError):
            cmdline = proc.info["cmdline"] or []
            if SERVER_MODULE in cmdline:
                found.append((proc, int(cmdline[cmdline.index(SERVER_MODULE) + 2])))
    return found


def stray_servers() -> list[psutil.Process]:
    """Temporary servers whose run is gone: orphans (other tests' live runs may have servers of their own)."""
    return [proc for proc, parent in temporary_servers() if not psutil.pid_exists(parent)]


def assert_no_stray_server(timeout: float = 15) -> None:
    """Servers of killed runs notice within a second or two: none may outlive that."""
    wait_for(lambda: not stray_servers(), timeout, every=0.25, what="temporary Prefect servers to exit")


def kill(run: Run, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        run.proc.send_signal(sig)


class DroppingProxy:
    """A TCP proxy to ``upstream`` that, while ``dropping``, closes every connection, old and new."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.dropping = False
        self.dropped = 0  # connections refused or cut while dropping
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop(self, seconds: float) -> None:
        """Cut every open connection and refuse new ones for ``seconds``."""
        with self._lock:
            self.dropping = True
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        time.sleep(seconds)
        self.dropping = False

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.dropping:
                self.dropped += 1
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open |= {client, upstream}
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            if self.dropping:
                self.dropped += 1
        finally:
            with self._lock:
                self._open -= {client, upstream}
            selector.close()
            client.close()
            upstream.close()
