"""Targets: an address to fuzz, optionally a loopback server the harness runs itself.

A :class:`Target` owns the server process when it is given a command: it
starts it, waits until the port accepts, keeps every line of its stderr and
stdout with the time it arrived (a reader thread, so a chatty server never
blocks on a full pipe), reads its resident memory from ``/proc``, and
restarts it after it dies. Started targets must listen on loopback; the
harness refuses any other address for them.
"""

from __future__ import annotations

import collections
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from typing import NamedTuple

from otdpi.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# What in a target's output means trouble: a Python traceback, an error or
# fatal log line, a sanitizer or a C assertion.
ERROR_LINE = re.compile(
    r"Traceback \(most recent call last\)|\bERROR\b|\bFATAL\b|\bCRITICAL\b|"
    r"Sanitizer|Assertion .* failed|Segmentation fault|core dumped",
    re.IGNORECASE,
)


class OutputLine(NamedTuple):
    """One line of a target's output and the monotonic time it was read."""

    at: float
    text: str


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as a (host, port) pair.

    Raises
    ------
    UsageError
        the text is not HOST:PORT with a port in 1..65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"target must be HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen | None = None
) -> bool:
    """Whether ``host:port`` accepts a connection within ``timeout`` seconds.

    Gives up early when ``process``, the server meant to listen there, exits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Target:
    """A fuzzing target: ``host:port`` and, optionally, the command that serves it.

    Parameters
    ----------
    address
        ``HOST:PORT``.
    command
        a shell-style command line (or argv list) that serves ``address``;
        ``{port}`` in it is replaced by the port. None to fuzz a server the
        harness does not run.
    name
        a label for findings (a recipe name, or the command).
    max_concurrency
        how many cases may be in flight at once (1 for servers that serve one
        connection at a time, such as libmodbus's accept loop).
    start_timeout
        seconds to wait for the port after starting.
    env
        extra environment variables for the command.
    reply_timeout
        how long this server may take to answer, when it is known to be slower
        than the profile's default (None: the profile's).
    """

    def __init__(
        self,
        address: str,
        command: str | list[str] | None = None,
        name: str | None = None,
        max_concurrency: int = 64,
        start_timeout: float = 20.0,
        env: dict[str, str] | None = None,
        reply_timeout: float | None = None,
    ) -> None:
        self.host, self.port = parse_address(address)
        self.address = f"{self.host}:{self.port}"
        if isinstance(command, str):
            command = shlex.split(command)
        self.argv = [part.replace("{port}", str(self.port)) for part in command or []]
        if self.argv and self.host not in LOOPBACK:
            raise UsageError(
                f"the harness starts servers on loopback only, not {self.host}"
            )
        self.name = name or (shlex.join(self.argv) if self.argv else self.address)
        self.max_concurrency = max_concurrency
        self.start_timeout = start_timeout
        self.env = env
        self.reply_timeout = reply_timeout
        self.process: subprocess.Popen | None = None
        self.output: collections.deque[OutputLine] = collections.deque(maxlen=20000)
        self.lines_seen = 0
        self.restarts = 0
        self._lock = threading.Lock()
        self._life = threading.RLock()  # start, stop and restart one at a time

    @property
    def managed(self) -> bool:
        """Whether the harness runs the server itself."""
        return bool(self.argv)

    # -- process life ------------------------------------------------------------

    def start(self) -> None:
        """Start the server (if managed) and wait until its port accepts.

        Raises
        ------
        UsageError
            the server did not come up within ``start_timeout``.
        """
        # A server restarted at once may find its port still held for a
        # moment; it then exits, and is given two more tries.
        for attempt in range(3):
            if self._start_once(last=attempt == 2):
                return

    def _start_once(self, last: bool) -> bool:
        if self.process is not None:
            self.stop()  # never lose hold of a server that still runs
        if self.managed:
            env = dict(os.environ, **(self.env or {}))
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            threading.Thread(
                target=self._read_output, args=(self.process,), daemon=True
            ).start()
        if wait_for_port(self.host, self.port, self.start_timeout, self.process):
            return True
        exited = self.process is not None and self.process.poll() is not None
        tail = " | ".join(line.text for line in list(self.output)[-5:])
        self.stop()
        if exited and not last:
            time.sleep(0.5)
            return False
        raise UsageError(f"target {self.name} did not listen on {self.address}: {tail}")

    def _read_output(self, process: subprocess.Popen) -> None:
        for raw in process.stdout:
            line = OutputLine(time.monotonic(), raw.decode("utf-8", "replace").rstrip())
            with self._lock:
                self.output.append(line)
                self.lines_seen += 1

    def alive(self) -> bool:
        """Whether a managed server still runs (True for unmanaged ones)."""
        return not self.managed or (
            self.process is not None and self.process.poll() is None
        )

    def restart(self) -> None:
        """Stop and start the server again."""
        with self._life:
            self.stop()
            self.restarts += 1
            self.start()

    def ensure_running(self) -> None:
        """Restart a managed server that has died; several callers restart it once."""
        with self._life:
            if not self.alive():
                self.restart()

    def stop(self) -> None:
        """Stop a managed server: SIGTERM to its process group, then SIGKILL."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=3)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=3)

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------

    def rss_kib(self) -> int | None:
        """Resident memory of the server process in KiB, None if unknown."""
        if self.process is None:
            return None
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float | None:
        """User and system CPU seconds the server process has used, None if unknown."""
        if self.process is None:
            return None
        try:
            with open(f"/proc/{self.process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def lines_since(self, count: int) -> list[OutputLine]:
        """Output lines read after the first ``count`` lines ever read."""
        with self._lock:
            new = self.lines_seen - count
            if new <= 0:
                return []
            return list(self.output)[-min(new, len(self.output)) :]
