"""Helpers of the fault suite: ``stylebatch`` as a real process, a TCP proxy that drops connections, stray servers."""

from __future__ import annotations

import contextlib
import re
import selectors
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.scale.scale_helpers import BIN
from tests.support import wait_for

STYLEBATCH = str(BIN / "stylebatch")
SERVER_MODULE = "flows.temporary_server"
TOTALS = re.compile(r"^rendered (\d+), skipped (\d+), failed (\d+), cancelled (\d+) in ([\d.]+) s; outputs in (.+)$")
# ~1 s a pair on a 2-core CPU (48 px, 20 L-BFGS iterations, random weights): long enough to be caught mid-render.
SLOW = ["--weights", "random:0", "--image-size", "48", "--iterations", "20"]


@dataclass
class Run:
    """A ``stylebatch`` process, its stdout and stderr in files."""

    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started: float

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

    def totals(self) -> tuple[int, int, int, int]:
        """rendered, skipped, failed, cancelled: the summary's last line."""
        lines = self.stdout.splitlines()
        match = TOTALS.match(lines[-1]) if lines else None
        assert match, f"no summary:\n{self.stdout}\n{self.stderr[-3000:]}"
        return int(match[1]), int(match[2]), int(match[3]), int(match[4])

    def pairs(self, status: str) -> set[str]:
        """Pair ids with ``status`` in the summary table."""
        found = set()
        for line in self.stdout.splitlines():
            cells = re.split(r"\s{2,}", line.strip())
            if len(cells) >= 3 and cells[0].isdigit() and cells[2] == status:
                found.add(cells[1])
        return found


def start(*args: str, env: dict[str, str], cwd: Path, name: str = "run") -> Run:
    out, err = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:  # the child keeps its own copies
        proc = subprocess.Popen(
            [STYLEBATCH, *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # signals in a test reach this process only, as a terminal's would the run
        )
    return Run(proc, out, err, time.monotonic())


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
