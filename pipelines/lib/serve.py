"""`hub serve`: run the hub's three long-lived processes and look after them.

The children are the webhook receiver (``python -m events.receiver``), the Dagster daemon
(sensors, declarative automation, run queue, run monitoring) and, optionally, the Dagster
webserver. Each runs in a process group of its own, so that stopping it also stops what it
started (the daemon's code server and run workers, the webserver's code server), and so
that a Ctrl-C in the terminal reaches only this supervisor, which then stops them in order.

Policy when a child exits by itself (decided here, documented in the README):

- it is reported at once with its name and exit code (or signal), then restarted after a
  back-off that doubles from 1 s up to 60 s;
- a child that stayed up for ``STABLE_SECONDS`` is considered healthy again: its back-off
  starts over from 1 s;
- a child that exits ``MAX_QUICK_EXITS`` times in a row (5; env ``HUB_SERVE_MAX_QUICK_EXITS``)
  without staying up that long is not going to come up by itself (a port in use, a broken
  install, a missing module): the supervisor stops every child and exits with status 1,
  naming it, rather than keep a hub running that silently lacks a part.

Stopping (SIGINT, SIGTERM): SIGTERM goes to every child's process group; each gets
``STOP_GRACE_SECONDS`` to exit, then its group is sent SIGKILL. Nothing is left running.
A run worker cut short this way is failed and retried by run monitoring when the daemon
next starts (see pipelines/lib/run_health.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STABLE_SECONDS = 60.0
MAX_QUICK_EXITS = int(os.environ.get("HUB_SERVE_MAX_QUICK_EXITS", "5"))
"""How many exits in a row, each before ``STABLE_SECONDS`` of uptime, make the supervisor
give up (env ``HUB_SERVE_MAX_QUICK_EXITS``)."""
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
STOP_GRACE_SECONDS = 20.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ChildSpec:
    """One process to supervise: a short name for messages, and its command line."""

    name: str
    argv: Sequence[str]
    ready_url: str | None = None  # answered 200 once the child serves (said once, if set)


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    backoff: float = FIRST_BACKOFF_SECONDS
    restart_at: float | None = None
    said_ready: bool = False
    pumps: list[threading.Thread] = field(default_factory=list)


def describe_exit(code: int) -> str:
    """'exit code 3' or 'killed by SIGKILL' (Popen gives a signal as a negative code)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def tool(name: str) -> str:
    """A console script installed beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    import shutil

    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def hub_children(
    *, receiver_port: int, webserver_port: int | None, host: str = "127.0.0.1"
) -> list[ChildSpec]:
    """The receiver, the Dagster daemon and (unless ``webserver_port`` is None) the webserver.

    Both servers listen on loopback only: the Dagster webserver has no authentication, and
    the receiver is meant to sit behind a TLS-terminating reverse proxy.
    """
    children = [
        ChildSpec(
            "receiver",
            [sys.executable, "-m", "events.receiver", "--host", host, "--port", str(receiver_port)],
            ready_url=f"http://{host}:{receiver_port}/healthz",
        ),
        ChildSpec("daemon", [tool("dagster-daemon"), "run", "-m", "pipelines.definitions"]),
    ]
    if webserver_port is not None:
        children.append(
            ChildSpec(
                "webserver",
                [
                    tool("dagster-webserver"),
                    "-m",
                    "pipelines.definitions",
                    "-h",
                    host,
                    "-p",
                    str(webserver_port),
                ],
                ready_url=f"http://{host}:{webserver_port}/server_info",
            )
        )
    return children


class Supervisor:
    """Start children, restart the ones that exit, stop them all on request.

    ``say`` receives one line per event (started, ready, exited, restarting, stopping); the
    children's own output is copied to ``output`` line by line, prefixed with their name.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        say: Callable[[str], None] = print,
        output: IO[str] | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
        stable_seconds: float = STABLE_SECONDS,
        max_quick_exits: int = MAX_QUICK_EXITS,
    ) -> None:
        self.children = [_Child(spec) for spec in specs]
        self.env = dict(env if env is not None else os.environ)
        self.cwd = cwd
        self.say = say
        self.output = output if output is not None else sys.stdout
        self.stop_grace = stop_grace
        self.stable_seconds = stable_seconds
        self.max_quick_exits = max_quick_exits
        self.stop_requested = threading.Event()
        self.failed: str | None = None  # why the supervisor gave up, if it did
        self._output_lock = threading.Lock()

    # ------------------------------------------------------------------ children
    def _start(self, child: _Child) -> None:
        child.restart_at = None
        child.said_ready = False
        try:
            child.process = subprocess.Popen(
                list(child.spec.argv),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        except OSError as err:
            child.process = None
            self.say(f"{child.spec.name}: could not start ({err.strerror or err})")
            self._exited(child, None)
            return
        child.started_at = time.monotonic()
        pump = threading.Thread(
            target=self._pump, args=(child.spec.name, child.process), daemon=True
        )
        pump.start()
        child.pumps = [pump]
        self.say(f"{child.spec.name}: started (pid {child.process.pid})")

    def _pump(self, name: str, process: subprocess.Popen[bytes]) -> None:
        """Copy a child's output, each line prefixed with its name."""
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            with self._output_lock:
                try:
                    self.output.write(f"[{name}] {line}\n")
                    self.output.flush()
                except (OSError, ValueError):  # our own output closed: keep draining
                    pass
        process.stdout.close()

    def _exited(self, child: _Child, code: int | None) -> None:
        """Report an exit and schedule a restart, or give up on a child that keeps failing."""
        name = child.spec.name
        uptime = time.monotonic() - child.started_at if code is not None else 0.0
        if uptime >= self.stable_seconds:
            child.quick_exits = 0
            child.backoff = FIRST_BACKOFF_SECONDS
        child.quick_exits += 1
        how = describe_exit(code) if code is not None else "did not start"
        if child.quick_exits >= self.max_quick_exits:
            self.failed = (
                f"{name} exited {child.quick_exits} times in a row without staying up "
                f"{self.stable_seconds:g} s (last: {how}); stopping the hub"
            )
            self.say(self.failed)
            self.stop_requested.set()
            return
        child.restart_at = time.monotonic() + child.backoff
        self.say(f"{name}: exited ({how}) after {uptime:.0f} s; restarting in {child.backoff:g} s")
        child.backoff = min(child.backoff * 2, MAX_BACKOFF_SECONDS)

    def _check_ready(self, child: _Child) -> None:
        if child.said_ready or child.spec.ready_url is None or child.process is None:
            return
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(child.spec.ready_url, timeout=0.5) as answer:
                if answer.status == 200:
                    child.said_ready = True
                    where = child.spec.ready_url.rsplit("/", 1)[0]
                    self.say(f"{child.spec.name}: ready at {where}")
        except (urllib.error.URLError, OSError, ValueError):
            pass

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        """Supervise until asked to stop (or a child keeps failing); 0, or 1 if it gave up."""
        for child in self.children:
            self._start(child)
            if self.stop_requested.is_set():
                break
        next_ready_check = 0.0
        while not self.stop_requested.is_set():
            now = time.monotonic()
            for child in self.children:
                if child.process is not None:
                    code = child.process.poll()
                    if code is not None:
                        child.process = None
                        self._exited(child, code)
                elif child.restart_at is not None and now >= child.restart_at:
                    self._start(child)
                if self.stop_requested.is_set():
                    break
            if now >= next_ready_check:
                next_ready_check = now + 0.5
                for child in self.children:
                    self._check_ready(child)
            self.stop_requested.wait(POLL_SECONDS)
        self.stop()
        return 1 if self.failed else 0

    def request_stop(self, why: str) -> None:
        """Ask the main loop to stop everything (safe from a signal handler)."""
        if not self.stop_requested.is_set():
            self.say(f"{why}: stopping the hub's processes")
        self.stop_requested.set()

    def stop(self) -> None:
        """SIGTERM every child's process group, wait, then SIGKILL what is left."""
        running = [c for c in self.children if c.process is not None]
        for child in running:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for child in running:
            assert child.process is not None
            try:
                code = child.process.wait(max(0.0, deadline - time.monotonic()))
                self.say(f"{child.spec.name}: stopped ({describe_exit(code)})")
            except subprocess.TimeoutExpired:
                self.say(f"{child.spec.name}: still running after {self.stop_grace:g} s; killed")
        # Whatever is left in a group (the leader's children included) is killed now.
        for child in running:
            assert child.process is not None
            _signal_group(child.process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(5)
            for pump in child.pumps:
                pump.join(2)
            child.process = None


def _signal_group(process: subprocess.Popen[bytes] | None, sig: int) -> None:
    """Signal the child's whole process group (its pid is the group id)."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def install_signal_handlers(supervisor: Supervisor) -> None:
    """SIGINT and SIGTERM ask the supervisor to stop (a second one does not hurry it: the
    children are already being stopped with a bounded grace)."""

    def on_signal(signum: int, _frame: object) -> None:
        supervisor.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
