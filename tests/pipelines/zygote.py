"""A warm parent for `hub` commands in tests: each command still runs in its own process.

A `hub run` spends about seven of its twenty seconds importing Dagster, dlt, Great
Expectations, Splink and their dependencies; the suite runs `hub` dozens of times. This
process imports those libraries once (only third-party ones: the hub's own modules are
imported afresh by every command) and then forks a child per command. The child is a real,
separate process: its own pid, environment, working folder, stdout and stderr files, exit
code and normal interpreter shutdown (atexit handlers run). What it does not re-check is
that the libraries import cleanly in a cold interpreter; the demo, crash, stop and daemon
tests start cold processes for that.

Protocol (one JSON object per line): a request on stdin
``{"id", "module", "args", "env", "cwd", "stdout", "stderr"}`` (``stderr`` null: into the
stdout file) is answered on stdout with ``{"id": …, "pid": N}`` as soon as the child
exists, and ``{"pid": N, "rc": N}`` when it ends (a negative rc is the signal that ended it,
as in :mod:`subprocess`). Children run side by side. When stdin closes (the test process is
gone) the children still running are killed and this process ends.
"""

from __future__ import annotations

import json
import os
import runpy
import select
import signal
import sys
import time
from typing import Any

# Imported once here so every forked command finds them in memory. Only libraries, and only
# what a `hub` command imports anyway; importing them starts no thread (checked below),
# which is what makes forking safe.
PRELOAD = (
    "dagster",
    "dagster._core.execution.api",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dlt",
    "dlt.pipeline.pipeline",
    "dlt.destinations",
    "duckdb",
    "great_expectations",
    "great_expectations.expectations",
    "splink",
    "pandas",
    "pyarrow",
    "scipy.stats",
    "highspy",
    "sqlglot",
    "httpx",
    "typer",
    "rich.console",
    "yaml",
    "frictionless",
    "openlineage.client",
    "phonenumbers",
    "jwt",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "dagster_dlt",
    "structlog",
    "httpcore",
    "upath",
    "nicknames",
    "pendulum",
)


def _preload() -> None:
    import importlib
    import threading

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library missing only makes commands slower
            continue
    if threading.active_count() != 1:
        raise SystemExit(f"preloading started threads {threading.enumerate()}; cannot fork")


def _child(request: dict[str, Any]) -> int:
    """Become the command: its environment, folder and output files, then run it."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    if request.get("stderr"):
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(err, 2)
        os.close(err)
    else:
        os.dup2(out, 2)
    os.close(out)
    sys.argv = [request["module"], *request["args"]]
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


def _say(channel: int, answer: dict[str, Any]) -> None:
    data = (json.dumps(answer) + "\n").encode()
    while data:
        data = data[os.write(channel, data) :]


def main() -> int:
    _preload()
    channel = os.dup(1)  # answers go here; fd 1 becomes each child's stdout
    children: set[int] = set()
    pending = b""
    reading = True
    while reading or children:
        if reading and select.select([0], [], [], 0.05)[0]:
            chunk = os.read(0, 65536)
            if not chunk:  # the test process has gone: nobody will wait for these
                reading = False
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    os.close(channel)
                    return _child(request)  # unwinds to a normal interpreter exit
                children.add(pid)
                _say(channel, {"id": request["id"], "pid": pid})
        elif not reading:
            time.sleep(0.05)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children.discard(pid)
            if reading:
                _say(channel, {"pid": pid, "rc": os.waitstatus_to_exitcode(status)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
