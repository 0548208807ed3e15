"""`hub serve` and its supervisor, with real processes: children started, a failing child
reported and restarted, one that keeps failing stopping the hub, and nothing left alive
after SIGTERM (grandchildren included)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipelines.lib.serve import ChildSpec, Supervisor

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _group_members(pgids: set[int]) -> list[int]:
    """Live (not zombie) processes whose process group is one of ``pgids``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "(comm) "
        state, pgid = fields[0], int(fields[2])
        if pgid in pgids and state != "Z":
            alive.append(int(entry.name))
    return alive


class Lines:
    """Collects what a supervisor says, thread-safe, and waits for a line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_a_failing_child_is_reported_restarted_with_backoff_then_the_hub_stops(
    tmp_path: Path,
) -> None:
    said = Lines()
    steady = ChildSpec("steady", _python("import time; time.sleep(60)"))
    flaky = ChildSpec("flaky", _python("import sys; print('flaky here'); sys.exit(3)"))
    output = (tmp_path / "out.txt").open("w", encoding="utf-8")
    supervisor = Supervisor(
        [steady, flaky], say=said, output=output, max_quick_exits=3, stop_grace=5
    )
    started = time.monotonic()
    code = supervisor.run()
    took = time.monotonic() - started
    output.close()
    text = said.text()
    assert code == 1
    # Reported with its name and exit code each time, restarted after 1 s then 2 s.
    assert text.count("flaky: exited (exit code 3)") == 2
    assert "restarting in 1 s" in text and "restarting in 2 s" in text
    assert "flaky exited 3 times in a row" in text and "(last: exit code 3)" in text
    # Giving up stops the healthy child too.
    assert re.search(r"steady: stopped \(killed by SIGTERM\)", text), text
    assert 3.0 <= took < 15.0
    # The children's output is passed on, prefixed with their name.
    assert "[flaky] flaky here" in (tmp_path / "out.txt").read_text(encoding="utf-8")


def test_stop_kills_a_child_and_its_grandchild_that_ignore_sigterm(tmp_path: Path) -> None:
    said = Lines()
    pid_file = tmp_path / "grandchild.pid"
    stubborn = ChildSpec(
        "stubborn",
        _python(
            f"""
            import signal, subprocess, sys, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            child = subprocess.Popen([sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "time.sleep(120)"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            time.sleep(120)
            """
        ),
    )
    sink = (tmp_path / "out.txt").open("w", encoding="utf-8")
    supervisor = Supervisor([stubborn], say=said, output=sink, stop_grace=1)
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, said.text()
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    leader = supervisor.children[0].process
    assert leader is not None
    group = {leader.pid}
    assert grandchild in _group_members(group)
    supervisor.request_stop("SIGTERM")
    runner.join(30)
    assert not runner.is_alive()
    assert "stubborn: still running after 1 s; killed" in said.text()
    assert _group_members(group) == []
    sink.close()


@pytest.mark.slow
def test_hub_serve_runs_daemon_webserver_and_receiver_and_sigterm_leaves_nothing(
    tmp_path: Path,
) -> None:
    members = tmp_path / "members"
    members.mkdir()
    webserver_port, receiver_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "HUB_HOME": str(tmp_path / "hub"),
        "HUB_MEMBERS_DIR": str(members),
        "PYTHONPATH": str(ROOT),
        # Until the receiver lands a child may be restarting: keep supervising meanwhile.
        "HUB_SERVE_MAX_QUICK_EXITS": "1000",
        "COLUMNS": "200",
    }
    for var in ("DAGSTER_HOME", "HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR"):
        env.pop(var, None)
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serve",
            "--receiver-port",
            str(receiver_port),
            "--webserver-port",
            str(webserver_port),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert serve.stdout is not None
        for line in serve.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("webserver: ready at") for line in lines):
            assert serve.poll() is None, "\n".join(lines[-40:])
            assert time.monotonic() < deadline, "\n".join(lines[-40:])
            time.sleep(0.2)
        pids = {
            match[1]: int(match[2])
            for line in list(lines)
            if (match := re.match(r"(receiver|daemon|webserver): started \(pid (\d+)\)", line))
        }
        assert {"daemon", "webserver", "receiver"} <= set(pids)
        assert (tmp_path / "hub" / "dagster" / "dagster.yaml").exists()  # DAGSTER_HOME prepared
        # The daemon has started its code server: a grandchild in its process group.
        while len(_group_members({pids["daemon"]})) < 2:
            assert time.monotonic() < deadline, "\n".join(lines[-40:])
            time.sleep(0.2)
        groups = {pids["daemon"], pids["webserver"]}
        assert len(_group_members(groups)) >= 3
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0, "\n".join(lines[-40:])
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(10)
    reader.join(10)
    text = "\n".join(lines)
    assert "SIGTERM: stopping the hub's processes" in text
    assert "daemon: stopped" in text and "webserver: stopped" in text
    time.sleep(0.5)
    assert _group_members(set(pids.values())) == [], text[-3000:]
