"""Run the `hub` command in its own process, as a member or operator would.

Its own process, so each command sees only its own environment (HUB_*, DAGSTER_HOME). The
process is forked from a warm parent that has already imported the heavy libraries
(tests/pipelines/zygote.py), which saves each command about seven seconds; set
HUB_TEST_COLD=1 to start every command from a cold interpreter instead.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hub_env(tmp_path: Path, members: Path, **extra: str) -> dict[str, str]:
    """Environment for a hub whose files all live under ``tmp_path`` (nothing inherited)."""
    env = {
        **os.environ,
        "HUB_HOME": str(tmp_path / "hub"),
        "HUB_MEMBERS_DIR": str(members),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "COLUMNS": "200",
        **extra,
    }
    for var in ("HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR", "HUB_DISCLOSURE_THRESHOLD"):
        env.pop(var, None)
    return env


def hub(
    args: list[str], env: dict[str, str], *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`hub <args>` in a process of its own, output captured."""
    process = start(args, env, merge_stderr=False)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(["hub", *args], process.returncode, out, err)


def start(
    args: list[str],
    env: dict[str, str],
    *,
    module: str = "pipelines.cli",
    merge_stderr: bool = True,
) -> Forked:
    """Start `hub <args>` (or ``python -m module args``) and return at once, like Popen."""
    if os.environ.get("HUB_TEST_COLD"):
        return _cold(module, args, env, merge_stderr)
    return _warm().start(module, args, env, merge_stderr)


def _cold(module: str, args: list[str], env: dict[str, str], merged: bool) -> Forked:
    """The same command from a cold interpreter (HUB_TEST_COLD=1)."""
    folder = Path(tempfile.mkdtemp(prefix="hub-cold-"))
    with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if merged else err,
        )
    return Forked(None, popen.pid, folder, merged, popen)


class Forked:
    """A started command, answering the parts of :class:`subprocess.Popen` the tests use.

    Its output goes to files (read when it ends, or as it goes with :meth:`output`).
    """

    def __init__(
        self,
        zygote: _Zygote | None,
        pid: int,
        folder: Path,
        merged: bool,
        popen: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.zygote, self.pid, self.folder, self.merged = zygote, pid, folder, merged
        self.popen = popen

    @property
    def returncode(self) -> int | None:
        if self.popen is not None:
            return self.popen.poll()
        assert self.zygote is not None
        return self.zygote.exits.get(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.popen is not None:
            return self.popen.wait(timeout)
        assert self.zygote is not None
        with self.zygote.ended:
            if not self.zygote.ended.wait_for(lambda: self.pid in self.zygote.exits, timeout):
                raise subprocess.TimeoutExpired(f"hub (pid {self.pid})", timeout or 0)
        return self.zygote.exits[self.pid]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def output(self) -> str:
        """Everything it has written to stdout so far."""
        return (self.folder / "stdout").read_text(encoding="utf-8", errors="replace")

    def communicate(self, timeout: float | None = None) -> tuple[str, str | None]:
        self.wait(timeout)
        err = None if self.merged else (self.folder / "stderr").read_text(encoding="utf-8")
        return self.output(), err


class _Zygote:
    """The warm parent (one per test process), started on first use."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.pipelines.zygote"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.folder = Path(tempfile.mkdtemp(prefix="hub-zygote-"))
        self.lock = threading.Lock()
        self.ended = threading.Condition()
        self.exits: dict[int, int] = {}
        self.started: dict[int, int] = {}
        self.count = 0
        self.reader = threading.Thread(target=self._read, name="zygote-answers", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            answer = json.loads(line)
            with self.ended:
                if "rc" in answer:
                    self.exits[answer["pid"]] = answer["rc"]
                else:
                    self.started[answer["id"]] = answer["pid"]
                self.ended.notify_all()
        with self.ended:
            self.ended.notify_all()

    def start(self, module: str, args: list[str], env: dict[str, str], merged: bool) -> Forked:
        with self.lock:
            self.count += 1
            ident = self.count
        folder = self.folder / str(ident)
        folder.mkdir()
        for name in ("stdout", "stderr"):  # there to read before the child writes
            (folder / name).touch()
        request = {
            "id": ident,
            "module": module,
            "args": args,
            "env": env,
            "cwd": str(ROOT),
            "stdout": str(folder / "stdout"),
            "stderr": None if merged else str(folder / "stderr"),
        }
        assert self.process.stdin is not None
        with self.lock:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        with self.ended:
            if not self.ended.wait_for(
                lambda: ident in self.started or self.process.poll() is not None, 60
            ):
                raise RuntimeError("the test zygote did not start the command within 60 s")
            if ident not in self.started:
                raise RuntimeError(f"the test zygote ended (rc {self.process.poll()})")
            return Forked(self, self.started.pop(ident), folder, merged)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


_ZYGOTE: list[_Zygote] = []
_START = threading.Lock()


def _warm() -> _Zygote:
    with _START:
        if not _ZYGOTE or _ZYGOTE[0].process.poll() is not None:
            _ZYGOTE[:] = [_Zygote()]
            atexit.register(_ZYGOTE[0].close)
        return _ZYGOTE[0]
