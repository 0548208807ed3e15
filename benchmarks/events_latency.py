"""End-to-end latency under the real Dagster daemon: a change in a member's system to a new
release that contains it (issue #20; target p95 < 60 s over at least 20 changes).

The demo's five members (copied, with their sample data, to a temporary folder so the
repository is never edited) run under a real ``dagster-daemon``; after the first release
and a quiet spell, one record is changed at a time, spaced, and the time to the release
that contains it is measured. Two modes:

- ``--mode webhook`` (the issue's measure): ``hub serve --no-webserver`` runs the receiver
  and the daemon, and serves the demo's CRM sandboxes, which send the hub a signed Standard
  Webhook (CiviCRM) or an Outbound Message (Salesforce) when a record changes. A change is
  an API call to a sandbox (CiviCRM APIv4 ``Contact.update``; Salesforce REST ``PATCH
  /sobjects/Contact/{id}``), as a member's staff editing a contact. Needs the receiver
  (``events.receiver``) and the inbox sensor.
- ``--mode chain``: no receiver; a line is appended to a spreadsheet member's CSV (the file
  sensor notices it). It measures the same chain, raw load -> canonical -> linkage ->
  publication, under ``dagster-daemon run`` alone, so it also runs on code that has no
  ``hub serve``: ``--code DIR`` runs the daemon on another checkout (its dagster.yaml too),
  to measure a baseline in the same session.

"Contains the change": the member's canonical partition was materialised after the change
(by the load that read it, or automation right after), and the release was written by a run
that started after that. The latency is from the change to that release's materialisation.

Run from the repository root: ``.venv/bin/python benchmarks/events_latency.py --mode webhook``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import httpx  # noqa: E402

CANONICAL = dg.AssetKey(["canonical", "person"])
RELEASE = dg.AssetKey(["published", "release"])
EVENT_TIMEOUT = 300.0
CIVICRM = "harbour_wellbeing"
SALESFORCE = "southbank_advice"
SPREADSHEET = "northside_housing"

EVENTS_SECTIONS = {
    CIVICRM: "events:\n  webhook_secret: {env: HUB_HARBOUR_WELLBEING_WEBHOOK_SECRET}\n",
    SALESFORCE: (
        "events:\n"
        "  webhook_secret: {env: HUB_SOUTHBANK_ADVICE_WEBHOOK_SECRET}\n"
        "  outbound_message_token: {env: HUB_SOUTHBANK_ADVICE_OM_TOKEN}\n"
        "  organization_id: 00D5g000004DEMOEA4\n"
    ),
}


def _copy_demo(tmp: Path, with_events: bool) -> Path:
    """The demo's member files and sample data under ``tmp`` (same relative layout)."""
    shutil.copytree(ROOT / "members", tmp / "members")
    shutil.copytree(ROOT / "sample_data", tmp / "sample_data")
    if with_events:
        for org, section in EVENTS_SECTIONS.items():
            path = tmp / "members" / f"{org}.yaml"
            text = path.read_text(encoding="utf-8")
            if "\nevents:" not in text:
                path.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")
    return tmp / "members"


def _wait(what: str, condition: Callable[[], object], timeout: float) -> object:
    started = time.monotonic()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def _busy(instance: dg.DagsterInstance) -> bool:
    statuses = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    return bool(instance.get_run_records(dg.RunsFilter(statuses=statuses), limit=1))


def _settle(instance: dg.DagsterInstance, quiet: float = 20.0, timeout: float = 600.0) -> None:
    """Wait until no run has been queued or running for ``quiet`` seconds."""
    started = time.monotonic()
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < quiet:
        if _busy(instance):
            idle_since = time.monotonic()
        if time.monotonic() - started > timeout:
            raise TimeoutError("the hub never went quiet")
        time.sleep(0.5)


def _release_with(instance: dg.DagsterInstance, org: str, changed_at: float) -> float | None:
    """When the first release containing a change made at ``changed_at`` was written."""
    canonical = instance.fetch_materializations(
        dg.AssetRecordsFilter(CANONICAL, asset_partitions=[org], after_timestamp=changed_at),
        limit=1,
        ascending=True,
    ).records
    if not canonical:
        return None
    mapped = canonical[0].timestamp
    releases = instance.fetch_materializations(
        dg.AssetRecordsFilter(RELEASE, after_timestamp=mapped), limit=20, ascending=True
    ).records
    for record in releases:
        run = instance.get_run_record_by_id(record.run_id)
        if run is not None and run.start_time is not None and run.start_time >= mapped:
            return record.timestamp
    return None


class Changes:
    """One record change per call, in turn over the chosen members' systems."""

    def __init__(self, members: Path, crm: str, mode: str) -> None:
        self.members = members
        if mode == "chain":
            self.order = [SPREADSHEET]
        else:
            self.order = {"civicrm": [CIVICRM], "salesforce": [SALESFORCE]}.get(
                crm, [CIVICRM, SALESFORCE]
            )
        self.client = httpx.Client(timeout=10)
        self._sf_token: str | None = None

    def make(self, n: int) -> str:
        org = self.order[n % len(self.order)]
        if org == SPREADSHEET:
            people = self.members.parent / "sample_data" / SPREADSHEET / "people.csv"
            with people.open("a", encoding="utf-8") as fh:
                fh.write(f"NHT-9{n:04d},Bench,Person{n},01/01/1990,M14 3ZZ,,,Yes\n")
        elif org == CIVICRM:
            answer = self.client.post(
                "http://127.0.0.1:18444/civicrm/ajax/api4/Contact/update",
                data={
                    "params": json.dumps(
                        {"where": [["id", "=", 1 + n % 5]], "values": {"last_name": f"Bench{n}"}}
                    )
                },
                headers={
                    "X-Civi-Auth": "Bearer sandbox-api-key",
                    "X-Requested-With": "XMLHttpRequest",
                },
            )
            answer.raise_for_status()
        else:
            if self._sf_token is None:
                token = self.client.post(
                    "http://127.0.0.1:18443/services/oauth2/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "sandbox-consumer-key",
                        "client_secret": "sandbox-consumer-secret",
                    },
                )
                token.raise_for_status()
                self._sf_token = token.json()["access_token"]
            answer = self.client.patch(
                f"http://127.0.0.1:18443/services/data/v62.0/sobjects/Contact/"
                f"003SB000000000{1 + n % 5}AAA",
                json={"LastName": f"Bench{n}"},
                headers={"Authorization": f"Bearer {self._sf_token}"},
            )
            answer.raise_for_status()
        return org


def _start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the child's process group (hub serve stops its own children), wait, then
    SIGKILL whatever is left in the group (the daemon's code server and run workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def run(args: argparse.Namespace) -> dict:
    code = Path(args.code).resolve()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="hub-events-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        members = _copy_demo(root, with_events=args.mode == "webhook")
        home = root / "hub"
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True)
        shutil.copyfile(code / "dagster.yaml", dagster_home / "dagster.yaml")
        if args.mode == "chain":
            # The sandboxes live in this process (they put their credentials in os.environ,
            # which the daemon inherits); the daemon is the only child.
            from connectors.members import load_members
            from pipelines.lib.demo import demo_sandboxes

            stack.enter_context(demo_sandboxes(load_members(members).members))
        env = {
            **os.environ,
            "HUB_HOME": str(home),
            "HUB_MEMBERS_DIR": str(members),
            "DAGSTER_HOME": str(dagster_home),
            "PYTHONPATH": str(code),
        }
        for var in ("HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR", "HUB_EVENTS_INBOX"):
            env.pop(var, None)
        log = root / "service.log"
        bindir = Path(sys.executable).parent
        if args.mode == "webhook":
            cmd = [sys.executable, "-m", "pipelines.cli", "serve", "--no-webserver"]
            cmd += ["--receiver-port", str(args.receiver_port)]
        else:
            cmd = [str(bindir / "dagster-daemon"), "run", "-m", "pipelines.definitions"]
        started = time.monotonic()
        service = _start(cmd, env, code, log)
        if args.log:  # kept after the temporary folder goes (registered first: runs last)
            stack.callback(lambda: shutil.copyfile(log, args.log))
        stack.callback(_stop, service)
        first = _wait(
            "the first release",
            lambda: (home / "releases" / "LATEST").exists() and time.monotonic() - started,
            args.first_timeout,
        )
        # Opened once the daemon has created the instance's storage (no race on its schema).
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(dagster_home)))
        print(f"first release {first:.0f} s after start; waiting for the hub to go quiet")
        _settle(instance)
        changes = Changes(members, args.crm, args.mode)
        for n in range(args.events):
            changed_at = time.time()
            org = changes.make(n)
            try:
                released = _wait(
                    f"the release with change {n}",
                    lambda org=org, at=changed_at: _release_with(instance, org, at),
                    EVENT_TIMEOUT,
                )
                latency = float(released) - changed_at  # type: ignore[arg-type]
            except TimeoutError:
                latency = float("inf")
            results.append({"n": n, "member": org, "seconds": round(latency, 2)})
            print(f"change {n:2d} ({org}): {latency:6.1f} s", flush=True)
            time.sleep(args.spacing)
        if service.poll() is not None:
            print(log.read_text(encoding="utf-8", errors="replace")[-3000:])
    times = sorted(r["seconds"] for r in results)
    summary = {
        "mode": args.mode,
        "code": str(code),
        "events": len(times),
        "p50": round(statistics.median(times), 1),
        "p95": round(times[math.ceil(0.95 * len(times)) - 1], 1),  # nearest rank
        "max": times[-1],
        "min": times[0],
        "results": results,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["webhook", "chain"], default="webhook")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=5.0, help="pause between changes")
    parser.add_argument("--crm", choices=["civicrm", "salesforce", "both"], default="both")
    parser.add_argument("--code", default=str(ROOT), help="the checkout the daemon runs")
    parser.add_argument("--receiver-port", type=int, default=8787)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--log", help="keep the service's output in this file")
    parser.add_argument(
        "--first-timeout", type=float, default=1800, help="seconds to wait for the first release"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the service is stopped and the temporary folder goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    summary = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
