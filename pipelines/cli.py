"""The ``hub`` command: list and check members, run the hub, run the demo.

Heavy imports (Dagster, dlt) happen inside commands so ``hub --help`` and ``hub members``
answer at once.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Outcomes Hub: load member data, deduplicate people, publish a shared dataset.",
    no_args_is_help=True,
    add_completion=False,
)
if TYPE_CHECKING:
    import dagster as dg

    from connectors.members import Member
    from pipelines.lib.runner import StageResult
    from pipelines.settings import HubSettings
    from transforms.dedup.review import ReviewPair
    from transforms.warehouse import Warehouse

console = Console()
REPO_ROOT = Path(__file__).resolve().parent.parent


def _settings() -> HubSettings:
    from pipelines.settings import HubSettings

    return HubSettings.from_env()


@app.command()
def members() -> None:
    """List member organisations and any member file that does not validate."""
    from connectors.members import load_members

    settings = _settings()
    registry = load_members(settings.members_dir)
    table = Table(title=f"Members in {settings.members_dir}")
    for column in ("org_id", "name", "connector", "tables", "consent"):
        table.add_column(column)
    for org_id, member in sorted(registry.members.items()):
        tables = (
            getattr(member.connector, "tables", None)
            or getattr(member.connector, "entities", None)
            or [o.resource for o in _salesforce_objects(member)]
        )
        table.add_row(
            org_id, member.name, member.connector.kind, ", ".join(tables), member.sharing.consent
        )
    console.print(table)
    for _org_id, member in sorted(registry.members.items()):
        _print_event_doors(member, only_problems=True)
    for org_id, err in sorted(registry.errors.items()):
        console.print(f"[bold red]{org_id}: not loaded[/]\n{err}")
    if not registry.members and not registry.errors:
        console.print(
            f"No member files (*.yaml) in {settings.members_dir}. "
            "Set HUB_MEMBERS_DIR or copy one from members/."
        )
    if registry.errors:
        raise typer.Exit(1)


@app.command()
def check(org_id: Annotated[str, typer.Argument(help="the member's id (its file name)")]) -> None:
    """Check one member: its config, its files and how its data will map."""
    from connectors.errors import MemberConfigError
    from connectors.members import load_members

    settings = _settings()
    try:
        member = load_members(settings.members_dir).get(org_id)
    except MemberConfigError as err:
        console.print(f"[bold red]✗[/] {err}")
        raise typer.Exit(1) from err
    console.print(
        f"[green]✓[/] members/{member.config_path.name} is valid "
        f"({member.connector.kind} connector)"
    )
    doors_ok = _print_event_doors(member)
    _print_holds(member, settings)
    if member.connector.kind == "spreadsheet":
        from connectors.spreadsheets import check_member

        _fetch_remote_files(member, settings)
        report = check_member(member)
        console.print(report.render(), markup=False, highlight=False)
        if not report.ok:
            raise typer.Exit(1)
    elif member.connector.kind == "salesforce_npsp":
        _print_crm_consent(member, settings)
        _check_salesforce(member)
    elif member.connector.kind == "civicrm":
        _print_crm_consent(member, settings)
        _check_civicrm(member)
    if not doors_ok:
        raise typer.Exit(1)


def _print_event_doors(member: Member, only_problems: bool = False) -> bool:
    """The member's event endpoints (``events:``): open, or why a configured one is closed
    (its secret is missing or malformed). False when one is closed."""
    from rich.markup import escape

    from events.doors import describe_doors

    ok = True
    for good, line in describe_doors(member):
        ok = ok and good
        if good and not only_problems:
            console.print(f"[green]✓[/] {escape(line)}")
        elif not good:
            who = f"{member.org_id}: " if only_problems else ""
            console.print(f"[bold red]✗[/] {who}{escape(line)}")
    return ok


def _fetch_remote_files(member: Member, settings: HubSettings) -> None:
    """Copy a member's files from its bucket (connector.location) to the hub's cache, as a
    load would, so the check reads what the load will; exit 1 with the reason if it cannot."""
    from rich.markup import escape

    from connectors.errors import SpreadsheetError
    from connectors.spreadsheets.remote import cache_root, sync_location

    location = member.location
    if location is None or not location.remote:
        return
    try:
        sync_location(member, cache_root(settings.home))
    except SpreadsheetError as err:
        console.print(f"[bold red]✗[/] {escape(str(err))}")
        raise typer.Exit(1) from err
    console.print(f"[green]✓[/] files at {escape(location.url())} copied to the hub's cache")


def _print_holds(member: Member, settings: HubSettings) -> None:
    """Why the member's last load is held, if it is (connectors/holds.py), with the fix."""
    from rich.markup import escape

    from connectors.holds import member_holds

    holds = member_holds(settings.pipelines_dir, member.org_id, [member.connector.kind])
    if not holds:
        return
    console.print(f"[yellow]! The last load is held, not taken ({len(holds)} hold(s)):[/]")
    for item in holds:
        console.print(f"[yellow]  ! {escape(item.describe())}[/]")
    for fix in dict.fromkeys(h.fix for h in holds if h.fix):
        console.print(f"  Fix: {escape(fix)}")


def _print_crm_consent(member: Member, settings: HubSettings) -> None:
    """What the member's sharing policy does to the consent answers of its last load.

    A CRM member's answers are in the hub's raw layer once it has loaded; before its first
    load there is nothing to count, and the check says so rather than guessing.
    """
    from connectors.values import consent_line
    from transforms.consent_report import crm_consent_counts
    from transforms.warehouse import DuckDBWarehouse, WarehouseBusyError

    if not member.connector.consent_field:
        console.print(
            f"  consent: no consent field configured; sharing.consent: {member.sharing.consent}"
        )
        return
    counts = None
    if settings.warehouse_path.exists():
        try:
            # A check must not wait behind a run for the warehouse lock's full 15 minutes.
            warehouse = DuckDBWarehouse(settings.warehouse_path)
            with warehouse.connect(read_only=True, wait=5) as session:
                counts = crm_consent_counts(session, member)
        except WarehouseBusyError:
            console.print("  consent: not counted (a hub run holds the warehouse); try again")
            return
    if counts is None:
        console.print(
            "  consent: counted after the member's first load (`hub run --org "
            f"{member.org_id}`), from its contacts' {member.connector.consent_field}"
        )
        return
    console.print(f"  {consent_line(member.sharing.consent, counts)} (at the last load)")


def _salesforce_objects(member: Member) -> list:
    from connectors.salesforce_npsp.source import object_specs

    return object_specs(member.connector.settings())


def _check_salesforce(member: Member) -> None:
    """Log in, confirm the API version, list objects and unreadable mapped fields."""
    from connectors.errors import ConnectorError
    from connectors.salesforce_npsp.check import check_org

    try:
        result = check_org(member.connector.settings(), member.connector.credentials())
    except ConnectorError as err:
        console.print(f"[bold red]✗[/] {err}")
        raise typer.Exit(1) from err
    if not result.authenticated:
        console.print(f"[red]✗[/] not authenticated; API version {result.api_version} not checked")
    elif result.api_version_available is None:
        console.print(
            f"[green]✓[/] authenticated; API version {result.api_version} not checked "
            "(the check stopped first: see below)"
        )
    else:
        console.print(
            f"[green]✓[/] authenticated; API version {result.api_version} "
            f"{'offered' if result.api_version_available else 'NOT offered'} "
            f"(latest {result.latest_api_version})"
        )
    for obj in result.objects:
        if obj.found:
            console.print(
                f"  ✓ {obj.sobject}: {obj.fields} readable fields, "
                f"{obj.records if obj.records is not None else '?'} records"
            )
        else:
            console.print(f"  ✗ {obj.sobject}: not found")
    if result.api_max:
        console.print(f"API allocation: {result.api_used} of {result.api_max} used today")
    for problem in result.problems:
        console.print(f"[red]✗ {problem}[/]")
    _print_mapping_preview(member, result.labels)
    if not result.ok:
        raise typer.Exit(1)


# Per connector: mapping role -> (what the CRM calls it, the YAML key that maps it).
MAPPING_WORDS = {
    "salesforce_npsp": {
        "programmes": "Program",
        "engagement_status": "Stage",
        "outcomes": "outcome",
        "outcome_status": "outcome status",
    },
    "civicrm": {
        "programmes": "case type",
        "engagement_status": "case status",
        "outcomes": "outcome option",
        "outcome_status": "outcome status option",
    },
}


def _print_mapping_preview(member: Member, labels: dict[str, list[str]]) -> None:
    """What the member's mappings make of the labels its CRM uses; gaps say what to add."""
    from connectors.members import normalise_label

    m = member.mappings
    conn = member.connector
    absent = {normalise_label(v) for v in getattr(conn, "absent_statuses", ())}
    words = MAPPING_WORDS[conn.kind]
    tables = {
        "programmes": m.programmes,
        "engagement_status": m.engagement_status,
        "outcomes": m.outcomes,
        "outcome_status": m.outcome_status,
    }
    if labels:
        console.print("Mapping (what the hub will make of the labels your CRM uses):")
    for role, values in labels.items():
        if role == "attendance":
            for value in values:
                effect = "not counted (absence)" if normalise_label(value) in absent else "counted"
                console.print(f"  ✓ attendance '{value}': {effect}")
            continue
        if role in ("delivery_activity_types", "delivered_statuses"):
            chosen = {normalise_label(v) for v in getattr(conn, role)}
            what, plural = (
                ("activity type", "activity types")
                if role == "delivery_activity_types"
                else ("activity status", "activity statuses")
            )
            counted = [v for v in values if normalise_label(v) in chosen]
            for value in counted:
                console.print(f"  ✓ {what} '{value}': counted as a delivery")
            others = len(values) - len(counted)
            if others:
                console.print(
                    f"  · {others} other {plural} are not deliveries "
                    f"(connector.{role} in members/{member.config_path.name})"
                )
            offered = {normalise_label(v) for v in values}
            for value in [v for v in getattr(conn, role) if normalise_label(v) not in offered]:
                console.print(
                    f"  [yellow]! connector.{role} names '{value}', which this site does not "
                    f"have; correct it in members/{member.config_path.name}[/]"
                )
            continue
        what, mapping = words[role], tables[role]
        mapped = {normalise_label(k): v for k, v in mapping.items()}
        for value in values:
            target = mapped.get(normalise_label(value))
            if target is not None:
                console.print(f"  ✓ {what} '{value}' → {target}")
            else:
                console.print(
                    f"  [yellow]! {what} '{value}' has no mapping: its records will be "
                    f"quarantined; add it under mappings.{role} in "
                    f"members/{member.config_path.name}[/]"
                )


def _check_civicrm(member: Member) -> None:
    """Authenticate, read the version and permissions, check fields, preview the mapping."""
    from connectors.civicrm.check import check_site
    from connectors.errors import ConnectorError

    conn = member.connector
    try:
        site_key = conn.site_key.resolve() if conn.site_key else None
        result = check_site(conn.settings(), conn.api_key.resolve(), site_key)
    except ConnectorError as err:
        console.print(f"[bold red]✗[/] {err}")
        raise typer.Exit(1) from err
    console.print(f"[green]✓[/] authenticated; CiviCRM {result.version}")
    for permission, granted in sorted(result.permissions.items()):
        mark = {True: "✓", False: "✗", None: "?"}[granted]
        seen = f" ({result.visible[permission]})" if permission in result.visible else ""
        console.print(f"  {mark} permission: {permission}{seen}")
        if permission in result.notes:
            console.print(f"    not confirmed: {result.notes[permission]}")
    for entity, count in sorted(result.entities.items()):
        custom = result.custom_fields.get(entity)
        extra = f" (custom: {', '.join(custom)})" if custom else ""
        console.print(f"  ✓ {entity}: {count} fields{extra}")
    for problem in result.problems:
        console.print(f"[red]✗ {problem}[/]")
    _print_mapping_preview(member, result.labels)
    if not result.ok:
        raise typer.Exit(1)


def _print_results(results: list[StageResult], settings: HubSettings) -> None:
    from pipelines.lib.summary import render_summary

    console.print(render_summary(results, settings))


def _instance(home: Path) -> dg.DagsterInstance:
    import dagster as dg

    from pipelines.lib.instance import prepare_dagster_home

    prepare_dagster_home(home)
    instance = dg.DagsterInstance.from_config(str(home))
    if not instance.run_monitoring_enabled:  # an older copy of dagster.yaml, kept on purpose
        console.print(
            f"[yellow]{home / 'dagster.yaml'} has no run_monitoring: under the daemon a run "
            "killed mid-way would hold its pool slot until a `hub run`. Compare it with the "
            "repository's dagster.yaml.[/]"
        )
    return instance


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="also print Dagster's own step log")]


Wait = Annotated[
    float,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        help="if another hub run is using this home, wait up to SECONDS for it (default: "
        "refuse at once)",
    ),
]
EXIT_HOME_BUSY = 4
# After Ctrl-C or SIGTERM, the stage under way gets this long to end before the process
# stops anyway; what it leaves is recovered by the next run.
STOP_GRACE_SECONDS = 5.0
# How often a run that waits for a pool slot looks up (and says) which run holds it.
POOL_WAIT_REPORT_SECONDS = 5.0


Full = Annotated[
    list[str] | None,
    typer.Option(
        "--full",
        metavar="ORG",
        help="re-read this member's tables from scratch instead of only what changed "
        "(repeatable); the run loads only the members named with --full or --org",
    ),
]


@app.command()
def run(
    org: Annotated[list[str] | None, typer.Option(help="only these members (repeatable)")] = None,
    full: Full = None,
    verbose: Verbose = False,
    wait: Wait = 0,
) -> None:
    """Load every member (or those named), then link people and publish a release.

    A member whose load or mapping fails is held back: the release counts its
    last good data and says so. Nothing is published until a member has data.

    --full ORG re-reads all of that member's tables from scratch: its cursors are
    reset (no other member's), CRM records are read again and merged on their ids,
    and spreadsheets are reloaded even if unchanged. Use it when a member's CRM
    changed records without marking them changed (a contact merge, a bulk fix).
    Deletions found on the way are still held back when they look like a lost
    permission.

    Exit codes:
      0  every member current, and a release written
      1  a release written, but a member is held back (its last good data is in
         it) or a step failed; the summary names them
      2  usage error (such as an unknown member)
      3  no release written (publishing failed, or nothing to publish)
      4  another hub run holds this home

    One run at a time per hub home: a second one refuses (exit 4), or waits with --wait.
    A run whose process died earlier is found, marked failed and its slots freed first.
    Ctrl-C or SIGTERM stops it within seconds; the next run carries on from there.
    """
    from pipelines.lib.home_lock import HomeBusyError, hold_home

    settings = _settings()
    try:
        with hold_home(settings.home, wait_seconds=wait, command="hub run"):
            _run(settings, org, verbose, full or [])
    except HomeBusyError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(EXIT_HOME_BUSY) from err


@app.command()
def publish(
    revise: Annotated[
        list[str] | None,
        typer.Option(help="recount this published quarter, e.g. 2025-Q2 (repeatable)"),
    ] = None,
    provisional: Annotated[
        bool, typer.Option(help="also publish the quarter that has not ended yet")
    ] = False,
    verbose: Verbose = False,
    wait: Wait = 0,
) -> None:
    """Publish a release from the data already loaded (no member is loaded again).

    Quarters are published once they have ended, then frozen: later releases repeat their
    values unchanged, whatever late data arrives. --revise recounts a published quarter
    with today's data; the revision is disclosure-controlled together with every earlier
    version of that quarter and refused if the change could single anyone out.
    --provisional also publishes the open quarter (frozen the same way).

    Exit codes: 0 a release written; 2 usage error; 3 no release written (the reason is
    printed); 4 another hub run holds this home.
    """
    from pipelines.lib.home_lock import HomeBusyError, hold_home
    from pipelines.lib.runner import publish as run_publish

    settings = _settings()
    for period in revise or []:
        if not re.fullmatch(r"[0-9]{4}-Q[1-4]", period):
            console.print(f"[red]--revise {period!r}: a quarter is written like 2025-Q2[/]")
            raise typer.Exit(2)
    try:
        with hold_home(settings.home, wait_seconds=wait, command="hub publish"):
            home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
            instance = _instance(home)
            _recover(instance, settings)
            results = _supervised(
                lambda stop: [
                    run_publish(
                        settings,
                        instance,
                        revise=revise or [],
                        provisional=provisional,
                        log_level="DEBUG" if verbose else "CRITICAL",
                    )
                ],
                instance,
            )
    except HomeBusyError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(EXIT_HOME_BUSY) from err
    result = results[0] if results else None
    if result is None or not result.success:
        console.print(f"[red]✗ publish: {result.error if result else 'stopped'}[/]")
        raise typer.Exit(3)
    _print_results(results, settings)


def _recover(instance: dg.DagsterInstance, settings: HubSettings) -> None:
    """Clean up after a run that died: its Dagster runs, pool slots and staging folders.

    Called with the home held, so nothing found here belongs to a live ``hub run``.
    """
    from pipelines.lib.run_health import recover_dead_runs
    from transforms.release import remove_stale_staging

    for recovered in recover_dead_runs(instance):
        console.print(f"[yellow]recovered: {recovered.describe()}[/]")
    for folder in remove_stale_staging(settings.releases_dir):
        console.print(f"[yellow]recovered: removed the half-written release {folder.name}[/]")


def _supervised(
    work: Callable[[threading.Event], list[StageResult]], instance: dg.DagsterInstance
) -> list[StageResult]:
    """Run ``work`` in a thread while this (main) thread answers Ctrl-C and SIGTERM.

    Dagster's in-process executor defers interrupts, and can wait for a pool slot without
    ever looking at them; so signals are handled here. The first signal lets the stage under
    way end (for up to STOP_GRACE_SECONDS) and starts no other; then, or at a second signal,
    this process marks its own runs failed, frees their slots and exits. Nothing is left
    that the next run trusts: warehouse writes are transactions, releases are renamed into
    place only when complete, and dlt finishes an interrupted load package on its next run.
    """
    import signal
    import time

    from pipelines.lib.run_health import pool_waits, recover_dead_runs

    stop = threading.Event()
    received: list[int] = []
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["results"] = work(stop)
        except BaseException as err:  # re-raised in the main thread
            outcome["error"] = err

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    worker = threading.Thread(target=target, name="hub-run", daemon=True)
    worker.start()
    said: set[str] = set()
    next_look = time.monotonic() + POOL_WAIT_REPORT_SECONDS
    try:
        while worker.is_alive() and not stop.is_set():
            worker.join(0.2)
            if time.monotonic() >= next_look:  # say who we wait for, once per holder
                next_look = time.monotonic() + POOL_WAIT_REPORT_SECONDS
                waits = pool_waits(instance, os.getpid())
                for line in waits:
                    if line not in said:
                        said.add(line)
                        console.print(f"[yellow]{line}[/]")
                if waits:  # a holder that died meanwhile is recovered now, not at next start
                    for recovered in recover_dead_runs(instance):
                        console.print(f"[yellow]recovered: {recovered.describe()}[/]")
        if stop.is_set():
            name = signal.Signals(received[0]).name if received else "a signal"
            console.print(f"[yellow]{name}: stopping; no further stage will start[/]")
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while worker.is_alive() and time.monotonic() < deadline and len(received) < 2:
                worker.join(0.2)
            code = 128 + (received[0] if received else signal.SIGTERM)
            if worker.is_alive():
                _abandon_own_runs(instance, name)
                console.print(
                    "[yellow]stopped during a stage; `hub run` again carries on from there[/]"
                )
                console.file.flush()
                os._exit(code)
            console.print("[yellow]stopped between stages; `hub run` again carries on[/]")
            raise typer.Exit(code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["results"]


def _abandon_own_runs(instance: dg.DagsterInstance, why: str) -> None:
    """Mark this process's unfinished runs failed and free their slots before exiting."""
    import dagster as dg

    from pipelines.lib.run_health import PID_TAG

    records = instance.get_run_records(
        dg.RunsFilter(
            tags={PID_TAG: str(os.getpid())},
            statuses=[
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
        )
    )
    for record in records:
        instance.report_run_failed(record.dagster_run, f"hub run was stopped by {why}")
        instance.event_log_storage.free_concurrency_slots_for_run(record.dagster_run.run_id)


def _run(
    settings: HubSettings, orgs: list[str] | None, verbose: bool = False, full: list[str] = ()
) -> None:
    """Refresh the members, those in ``full`` from scratch (the caller holds the home)."""
    from pipelines.lib.members import registry
    from pipelines.lib.runner import refresh

    reg = registry()
    for org_id, err in sorted(reg.errors.items()):
        console.print(f"[bold red]{org_id}: skipped, its member file is invalid[/]\n{err}")
    from connectors.members import LOADED_CONNECTOR_KINDS

    not_loaded = sorted(
        org for org, m in reg.members.items() if m.connector.kind not in LOADED_CONNECTOR_KINDS
    )
    for org_id in not_loaded:
        console.print(
            f"[yellow]{org_id}: skipped — its {reg.members[org_id].connector.kind} connector "
            f"is configured (try `hub check {org_id}`) but the hub does not load it yet[/]"
        )
    named = list(dict.fromkeys([*(orgs or []), *full]))
    wanted = named or sorted(set(reg.members) - set(not_loaded))
    unknown = [o for o in wanted if o not in reg.members or o in not_loaded]
    if unknown:
        console.print(
            f"[red]Unknown member(s): {', '.join(unknown)}. "
            f"Members: {', '.join(sorted(reg.members))}. Give a member's id (its file name "
            "in the members folder) to --org or --full.[/]"
        )
        raise typer.Exit(2)
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
    instance = _instance(home)
    _recover(instance, settings)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("starting", total=2 * len(wanted) + 2)

        def started(name: str) -> None:
            progress.update(task, description=name)

        def done(result: StageResult) -> None:
            mark = "[green]✓[/]" if result.success else "[red]✗[/]"
            progress.console.print(
                f"{mark} {result.name}" + ("" if result.success else f": {result.error}")
            )
            progress.advance(task)

        results = _supervised(
            lambda stop: refresh(
                settings,
                wanted,
                instance,
                on_stage=started,
                on_done=done,
                log_level="DEBUG" if verbose else "CRITICAL",
                stop=stop,
                full=set(full),
            ),
            instance,
        )
    _print_results(results, settings)
    from pipelines.lib.summary import exit_code

    code = exit_code(results, settings)
    if code:
        raise typer.Exit(code)


@app.command()
def demo(
    home: Annotated[Path, typer.Option(help="where the demo keeps its warehouse")] = Path(
        ".hub/demo"
    ),
    verbose: Verbose = False,
    wait: Wait = 0,
) -> None:
    """Run the hub end to end on the bundled sample members, from a clean slate."""
    from pipelines.lib.home_lock import HomeBusyError, hold_home

    home = home.resolve()
    try:
        with hold_home(home, wait_seconds=wait, command="hub demo"):
            _clear_demo_home(home)
            _demo(home, verbose)
    except HomeBusyError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(EXIT_HOME_BUSY) from err


# What a hub home holds; a folder with none of these is not one, and the demo will not empty it.
HOME_ENTRIES = {
    "warehouse.duckdb",
    "warehouse.duckdb.wal",
    "warehouse.duckdb.lock",
    "dagster",
    "dlt",
    "releases",
    "openlineage",
}


def _clear_demo_home(home: Path) -> None:
    """Empty the demo's home (keeping the lock we hold), refusing a folder that is not one."""
    from pipelines.lib.home_lock import LOCK_NAME, OWNER_NAME

    entries = [p for p in home.iterdir() if p.name not in (LOCK_NAME, OWNER_NAME)]
    foreign = sorted(p.name for p in entries if p.name not in HOME_ENTRIES)
    if foreign or (home / "secrets").exists():
        # Only a folder holding nothing but what a demo writes is emptied: anything else
        # (a project, a home directory, a real hub's secrets) is never deleted.
        console.print(
            f"[red]{home} holds {len(foreign)} thing(s) a demo does not write (such as "
            f"{', '.join(foreign[:3])}): refusing to delete it. Pass --home with a new or "
            "empty folder, or a previous demo's home.[/]"
        )
        raise typer.Exit(2)
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _demo(home: Path, verbose: bool) -> None:
    """The demo proper: its members, their local CRM sandboxes, one run (home held)."""
    os.environ["HUB_HOME"] = str(home)
    os.environ.setdefault("HUB_MEMBERS_DIR", str(REPO_ROOT / "members"))
    for var in ("HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR"):
        os.environ.pop(var, None)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    console.print(
        f"[bold]Outcomes Hub demo[/] — members from {os.environ['HUB_MEMBERS_DIR']}, "
        f"warehouse and release under {home}"
    )
    from pipelines.lib.demo import SandboxPortBusy, demo_event_secrets, demo_sandboxes
    from pipelines.lib.members import registry

    demo_event_secrets()  # the demo members' events: sections name them
    try:
        with demo_sandboxes(registry().members) as served:
            for org_id in served:
                console.print(f"{org_id}: its CRM is a local sandbox on this machine")
            _run(_settings(), None, verbose)
    except SandboxPortBusy as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(1) from err


@app.command()
def serve(
    receiver_port: Annotated[
        int, typer.Option(help="port of the webhook receiver (127.0.0.1)")
    ] = 8787,
    webserver_port: Annotated[
        int, typer.Option(help="port of the Dagster webserver (127.0.0.1)")
    ] = 3000,
    no_webserver: Annotated[
        bool, typer.Option("--no-webserver", help="run without the Dagster webserver (UI)")
    ] = False,
    salesforce_sends: Annotated[
        str,
        typer.Option(
            help="what the demo's Salesforce sandbox sends on a change: outbound_message or cdc"
        ),
    ] = "outbound_message",
) -> None:
    """Run the hub as a service: webhook receiver, Dagster daemon and webserver.

    Each is a child process this command supervises. A child that exits is reported
    (name and exit code) and restarted with a growing pause (1 s doubling to 60 s);
    one that exits 5 times in a row without staying up for a minute stops the whole
    hub (exit 1). Ctrl-C or SIGTERM stops every child (SIGTERM, up to 20 s, then
    SIGKILL) and exits 0.

    DAGSTER_HOME defaults to <HUB_HOME>/dagster and gets the project's dagster.yaml.
    Demo members whose CRM is a local sandbox get it served here, sending their
    changes to the receiver. One hub command per home: while it serves, `hub run`,
    `hub demo` and `hub publish` on the same home refuse (exit 4).
    """
    from pipelines.lib.home_lock import HomeBusyError, hold_home

    if salesforce_sends not in ("outbound_message", "cdc"):
        console.print("[red]--salesforce-sends is outbound_message or cdc[/]")
        raise typer.Exit(2)
    settings = _settings()
    try:
        with hold_home(settings.home, command="hub serve"):
            code = _serve(
                settings,
                receiver_port=receiver_port,
                webserver_port=None if no_webserver else webserver_port,
                salesforce_sends=salesforce_sends,
            )
    except HomeBusyError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(EXIT_HOME_BUSY) from err
    if code:
        raise typer.Exit(code)


def _serve(
    settings: HubSettings,
    *,
    receiver_port: int,
    webserver_port: int | None,
    salesforce_sends: str,
) -> int:
    """Prepare DAGSTER_HOME, serve the demo's sandboxes if configured, supervise (home held)."""
    import sys

    from pipelines.lib.demo import SandboxPortBusy, demo_event_secrets, demo_sandboxes
    from pipelines.lib.instance import prepare_dagster_home
    from pipelines.lib.members import registry
    from pipelines.lib.serve import Supervisor, hub_children, install_signal_handlers

    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster").resolve()
    prepare_dagster_home(home)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("HUB_HOME", str(settings.home))
    os.environ.setdefault("HUB_MEMBERS_DIR", str(settings.members_dir))
    receiver = f"http://127.0.0.1:{receiver_port}"
    say = console.print
    try:
        with demo_sandboxes(
            registry().members,
            receiver_url=receiver,
            salesforce_sends=salesforce_sends,  # type: ignore[arg-type]
        ) as served:
            if served:
                demo_event_secrets()
            for org_id in served:
                say(f"{org_id}: its CRM is a local sandbox, sending its changes to {receiver}")
            say(
                f"hub serve: home {settings.home}, members {settings.members_dir}, "
                f"DAGSTER_HOME {home}",
                soft_wrap=True,
            )
            supervisor = Supervisor(
                hub_children(receiver_port=receiver_port, webserver_port=webserver_port),
                say=lambda line: say(line, highlight=False, soft_wrap=True),
                output=sys.stdout,
            )
            install_signal_handlers(supervisor)
            return supervisor.run()
    except SandboxPortBusy as err:
        console.print(f"[red]{err}[/]")
        return 1


REVIEW_CHOICES = {
    "a": "accept",
    "accept": "accept",
    "r": "reject",
    "reject": "reject",
    "s": "skip",
    "skip": "skip",
    "q": "quit",
    "quit": "quit",
}


@app.command()
def review(
    org: Annotated[
        str | None, typer.Option(metavar="ORG", help="only pairs with a record of this member")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", metavar="NAME", help="who is deciding (default: your OS user name)"),
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="print the numbered queue and exit; decide nothing")
    ] = False,
    decide: Annotated[
        tuple[int, str] | None,
        typer.Option(
            metavar="N DECISION",
            help="decide pair N of `hub review --list` (same --org) without prompting: "
            "accept or reject. Numbers move after each decision, so list again first.",
        ),
    ] = None,
) -> None:
    """Decide the pairs of records the model is unsure are one person.

    Each pair waiting in the review queue is shown side by side, every field masked (initials,
    birth year, last digits of the phone, postcode district) next to how the two values
    compare; answer a(ccept: one person), r(eject: two people), s(kip) or q(uit). Decisions
    are recorded at once and win over the model from the next time people are linked
    (`hub run`). Examples: `hub review`, `hub review --list`, `hub review --decide 1 reject`.
    """
    from transforms.dedup.review import ReviewError, parse_decision, pending_pairs
    from transforms.warehouse import DuckDBWarehouse

    if list_only and decide:
        raise typer.BadParameter("use --list or --decide, not both", param_hint="--list")
    decision = ""
    if decide:
        try:
            decision = parse_decision(decide[1])
        except ReviewError as err:
            raise typer.BadParameter(str(err), param_hint="--decide") from err
    settings = _settings()
    if not settings.warehouse_path.exists():
        console.print(
            f"[red]No warehouse at {settings.warehouse_path}: nothing has been loaded or linked "
            "yet. Run `hub run` first (or set HUB_WAREHOUSE).[/]"
        )
        raise typer.Exit(1)
    warehouse = DuckDBWarehouse(settings.warehouse_path)
    try:
        pairs = pending_pairs(warehouse, org_id=org)
    except ReviewError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(1) from err
    if not pairs:
        scope = f" involving {org}" if org else ""
        console.print(f"No pairs{scope} are waiting for review.")
        if decide:
            raise typer.Exit(1)
        return
    if list_only:
        console.print(_review_list(pairs))
        return
    reviewer = _reviewer(by)
    if decide:
        number = decide[0]
        if not 1 <= number <= len(pairs):
            raise typer.BadParameter(
                f"there is no pair {number}: the queue has {len(pairs)} (see `hub review --list`)",
                param_hint="--decide",
            )
        _decide(warehouse, pairs[number - 1], decision, reviewer)
        return
    _review_interactively(warehouse, pairs, reviewer)


def _reviewer(by: str | None) -> str:
    """Who decides: --by, else the OS user; a decision is never recorded anonymously."""
    if by and by.strip():
        return by.strip()
    import getpass

    try:
        return getpass.getuser()
    except Exception as err:  # no user name in the environment (some containers)
        raise typer.BadParameter("say who is deciding with --by NAME", param_hint="--by") from err


def _record_label(org_id: str, source_id: str) -> str:
    """member/record id, escaped: ids come from members' systems and may hold [brackets]."""
    from rich.markup import escape

    return escape(f"{org_id}/{source_id}")


def _decide(warehouse: Warehouse, pair: ReviewPair, decision: str, reviewer: str) -> None:
    """Record one decision and say what was recorded (and what it replaced)."""
    from transforms.dedup.review import record_decision

    replaced = record_decision(warehouse, pair, decision, reviewer)
    note = f" (replacing an earlier {replaced})" if replaced and replaced != decision else ""
    from rich.markup import escape

    ids = pair.ids
    console.print(
        f"[green]✓[/] {decision} recorded for {_record_label(ids.org_id_l, ids.source_id_l)} ↔ "
        f"{_record_label(ids.org_id_r, ids.source_id_r)} by {escape(reviewer)}{note}"
    )


def _review_list(pairs: list[ReviewPair]) -> Table:
    """The queue as one numbered table of verdicts (no values, masked or not)."""
    table = Table(title=f"{len(pairs)} pair(s) waiting for review")
    table.add_column("#", justify="right")
    table.add_column("probability", justify="right")
    table.add_column("left (member/record)")
    table.add_column("right (member/record)")
    for field in pairs[0].fields:
        table.add_column(field.label)
    for number, pair in enumerate(pairs, start=1):
        table.add_row(
            str(number),
            f"{pair.match_probability:.3f}",
            _record_label(pair.ids.org_id_l, pair.ids.source_id_l),
            _record_label(pair.ids.org_id_r, pair.ids.source_id_r),
            *(field.agreement for field in pair.fields),
        )
    return table


AGREEMENT_STYLE = {"same": "green", "different": "red", "missing": "dim"}


def _show_pair(pair: ReviewPair, number: int, total: int) -> None:
    """One pair side by side: ids and consent in full, personal fields masked."""
    console.print(
        f"[bold]Pair {number} of {total}[/]: match probability {pair.match_probability:.3f} "
        f"(model {pair.model_version or 'unknown'})"
    )
    from rich.markup import escape

    table = Table()
    for column in ("field", "left", "right", "agreement"):
        table.add_column(column)
    ids = pair.ids
    table.add_row("member", escape(ids.org_id_l), escape(ids.org_id_r), "")
    table.add_row("record id", escape(ids.source_id_l), escape(ids.source_id_r), "")
    yes_no = {True: "yes", False: "no"}
    table.add_row("consent to share", yes_no[pair.consent_l], yes_no[pair.consent_r], "")
    for field in pair.fields:
        style = AGREEMENT_STYLE.get(field.agreement, "yellow")
        table.add_row(
            field.label, escape(field.left), escape(field.right), f"[{style}]{field.agreement}[/]"
        )
    console.print(table)


def _review_interactively(warehouse: Warehouse, pairs: list[ReviewPair], reviewer: str) -> None:
    """Show each pair and ask; every answer is recorded before the next pair is shown."""
    counts = {"accept": 0, "reject": 0, "skip": 0}
    from rich.markup import escape

    console.print(
        f"{len(pairs)} pair(s) to review, deciding as {escape(reviewer)}. "
        "accept = one person, reject = two people."
    )
    for number, pair in enumerate(pairs, start=1):
        _show_pair(pair, number, len(pairs))
        try:
            choice = _ask_decision()
        except typer.Abort:  # input closed or Ctrl-C: what was decided so far is kept
            console.print()
            _review_summary(counts, len(pairs))
            raise typer.Exit(1) from None
        if choice == "quit":
            break
        if choice == "skip":
            counts["skip"] += 1
            continue
        _decide(warehouse, pair, choice, reviewer)
        counts[choice] += 1
    _review_summary(counts, len(pairs))


def _ask_decision() -> str:
    """accept, reject, skip or quit, asked until the answer is one of them."""
    while True:
        answer = typer.prompt("a(ccept) / r(eject) / s(kip) / q(uit)")
        choice = REVIEW_CHOICES.get(answer.strip().lower())
        if choice:
            return choice
        console.print(
            f"{answer!r} is not one of a, r, s, q (accept, reject, skip, quit).", markup=False
        )


def _review_summary(counts: dict[str, int], total: int) -> None:
    """What this session decided, and that nothing changes until people are linked again."""
    decided = counts["accept"] + counts["reject"]
    console.print(
        f"{counts['accept']} accepted, {counts['reject']} rejected, {counts['skip']} skipped; "
        f"{total - decided} still waiting."
        + (" Decisions take effect the next time people are linked (`hub run`)." if decided else "")
    )


ById = Annotated[
    str | None,
    typer.Option("--by", metavar="NAME", help="who asked for it (default: your OS user name)"),
]
Yes = Annotated[bool, typer.Option("--yes", help="do it without asking to confirm")]


def _confirm(question: str, yes: bool) -> None:
    """Ask before an erasure that cannot be undone; --yes answers for scripts."""
    if yes:
        return
    import sys

    if not sys.stdin.isatty():
        console.print("[red]this cannot be undone: add --yes to confirm[/]")
        raise typer.Exit(2)
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


@app.command()
def forget(
    org_id: Annotated[str, typer.Argument(help="the member's id")],
    source_id: Annotated[str, typer.Argument(help="the person's id in the member's own system")],
    by: ById = None,
    yes: Yes = False,
    wait: Wait = 0,
) -> None:
    """Erase one person of a member from every layer of the hub, on their request.

    Removes their raw rows (and dlt's staging copy), every row that refers to them
    (contact details, engagements, deliveries, outcomes, case and activity links),
    their canonical and quarantine rows, review items and decisions; their link is
    replaced so the next linkage run re-links whoever they were linked to, and the next
    release (`hub run` or `hub publish`) is counted without them, published quarters that
    counted them included (revised when that is safe). Later loads erase the
    record again if the member's system still sends it: ask the member to delete it there
    too. The erasure is logged (who asked, when, rows per layer; never the id itself).

    Exit codes: 0 erased; 1 no such record (nothing changed); 2 usage error;
    4 another hub command holds this home.
    """
    from pipelines.lib.home_lock import HomeBusyError, hold_home
    from transforms.canonical import column_slots
    from transforms.erasure import ErasureError
    from transforms.erasure import forget as erase_person
    from transforms.warehouse import DuckDBWarehouse

    settings = _settings()
    requested_by = _reviewer(by)
    _confirm(f"Erase record {source_id!r} of {org_id} from the hub?", yes)
    member = _registered(settings, org_id)
    contact = column_slots(member).get("contact") if member else None
    try:
        with hold_home(settings.home, wait_seconds=wait, command="hub forget"):
            entry = erase_person(
                DuckDBWarehouse(settings.warehouse_path), org_id, source_id, requested_by, contact
            )
    except HomeBusyError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(EXIT_HOME_BUSY) from err
    except ErasureError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(1) from err
    layers = ", ".join(f"{layer} {count}" for layer, count in sorted(_layers(entry.rows).items()))
    console.print(
        f"[green]✓[/] erased one person of {org_id}: {sum(entry.rows.values())} row(s) "
        f"({layers}); logged as erasure {entry.erasure_id} by {requested_by}.\n"
        "The next `hub run` or `hub publish` re-links and counts without them. Ask the member "
        "to delete the record in their own system too; until then each load erases it again."
    )
    if entry.periods:
        console.print(
            f"Quarters whose figures counted them: {', '.join(entry.periods)}. The next "
            "release revises those already published (disclosure-controlled with their "
            "earlier versions); one that cannot be revised safely yet is repeated and tried "
            "again with each release after."
        )


@app.command("remove-member")
def remove_member(
    org_id: Annotated[str, typer.Argument(help="the departing member's id")],
    delete_files: Annotated[
        bool,
        typer.Option(help="also delete the member's data folder and secrets folder"),
    ] = False,
    by: ById = None,
    yes: Yes = False,
    wait: Wait = 0,
) -> None:
    """Purge a member that leaves the network from the hub.

    Drops its raw dataset and dlt's staging copy, deletes its dlt state and files, its
    canonical and quarantine rows, its records' links (the next linkage run re-links the
    people they touched), review items, decisions and activity rows, and logs the removal.
    Remove or rename members/<org>.yaml first, or the next run loads the member again.
    Releases already published are files funders hold: the command lists those that
    include the member; the next release revises the quarters that counted it.

    Exit codes: 0 removed; 1 nothing of that member in the hub; 2 usage error (its member
    file is still there); 4 another hub command holds this home.
    """
    from connectors.members import ORG_ID_PATTERN
    from connectors.scope import data_root, member_data_folders, secrets_dir
    from pipelines.lib.home_lock import HomeBusyError, hold_home
    from transforms.erasure import releases_holding
    from transforms.erasure import remove_member as purge
    from transforms.warehouse import DuckDBWarehouse

    settings = _settings()
    if not ORG_ID_PATTERN.match(org_id):
        console.print(f"[red]{org_id!r} is not a member id (lower-case letters, digits, _)[/]")
        raise typer.Exit(2)
    files = [f for f in settings.members_dir.glob(f"{org_id}.*") if f.suffix in (".yaml", ".yml")]
    if files:
        console.print(
            f"[red]{files[0]} is still there: the next run would load {org_id} again. "
            "Remove or rename it first (e.g. to .yaml.left), then run this again.[/]"
        )
        raise typer.Exit(2)
    requested_by = _reviewer(by)
    # The member's files are every folder named after it under the data root (where
    # connectors.scope lets it read), and its own secrets folder.
    own = [
        *member_data_folders(
            org_id,
            data_root(settings.members_dir),
            keep=(settings.members_dir, settings.home),
            other_ids=[p.stem for p in settings.members_dir.glob("*.y*ml")],
        ),
        secrets_dir(org_id),
    ]
    from connectors.spreadsheets.remote import cache_root

    # The hub's copy of files fetched from the member's bucket is the hub's to delete.
    extra = [*(own if delete_files else []), cache_root(settings.home) / org_id]
    _confirm(f"Purge everything the hub holds of {org_id}?", yes)
    warehouse = DuckDBWarehouse(settings.warehouse_path)
    try:
        with hold_home(settings.home, wait_seconds=wait, command="hub remove-member"):
            removal = purge(
                warehouse, org_id, requested_by, settings.pipelines_dir, extra_folders=extra
            )
    except HomeBusyError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(EXIT_HOME_BUSY) from err
    rows = sum(removal.entry.rows.values())
    if not rows and not removal.deleted_folders and not removal.dropped_schemas:
        console.print(f"[yellow]the hub holds nothing of {org_id}; nothing was removed[/]")
        raise typer.Exit(1)
    layers = ", ".join(
        f"{layer} {count}" for layer, count in sorted(_layers(removal.entry.rows).items())
    )
    console.print(
        f"[green]✓[/] removed {org_id}: {rows} row(s) ({layers or 'none'}); "
        f"dropped {', '.join(removal.dropped_schemas) or 'no raw dataset'}; deleted "
        f"{len(removal.deleted_folders)} folder(s); logged as erasure "
        f"{removal.entry.erasure_id} by {requested_by}."
    )
    for folder in removal.deleted_folders:
        console.print(f"  deleted {folder}")
    if not delete_files:
        for folder in own:
            if folder.exists():
                console.print(
                    f"  [yellow]kept {folder}: the member's own files (--delete-files removes "
                    "them)[/]"
                )
    held = releases_holding(settings.releases_dir, org_id)
    if held:
        console.print(
            f"Published releases that include {org_id}'s aggregates ({len(held)}): "
            + ", ".join(held)
        )
    if removal.periods:
        console.print(
            f"Quarters that counted its data: {', '.join(removal.periods)}. The next release "
            "revises those already published (disclosure-controlled with their earlier "
            "versions); one that cannot be revised safely yet is tried again with each "
            "release after."
        )


@app.command()
def erasures() -> None:
    """List every erasure done (`hub forget`, `hub remove-member`): who, what, when."""
    from transforms.erasure import erasure_log
    from transforms.warehouse import DuckDBWarehouse

    settings = _settings()
    if not settings.warehouse_path.exists():
        console.print("No warehouse yet: nothing has been loaded, so nothing erased.")
        return
    entries = erasure_log(DuckDBWarehouse(settings.warehouse_path))
    if not entries:
        console.print("No erasures recorded.")
        return
    table = Table(title=f"{len(entries)} erasure(s)")
    for column in ("id", "when (UTC)", "action", "member", "by", "rows per layer"):
        table.add_column(column)
    for e in entries:
        layers = ", ".join(f"{k} {v}" for k, v in sorted(_layers(e.rows).items()))
        table.add_row(
            e.erasure_id,
            f"{e.erased_at:%Y-%m-%d %H:%M}",
            e.action,
            e.org_id,
            e.requested_by,
            layers,
        )
    console.print(table)


@app.command()
def events(
    org_id: Annotated[
        str | None, typer.Argument(help="only this member's events (default: every member's)")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=10_000, help="newest events to show")
    ] = 50,
) -> None:
    """Show recent events per member and what became of them.

    Each line is one event or a burst of them loaded together: what changed (records
    counted, never listed), then received, coalesced into a batch, its run started,
    succeeded or failed (and why), and how the load read the records. Requests the
    receiver refused are listed apart with their status and reason; nothing of them was
    queued.
    """
    from pipelines.lib.events_report import report

    shown, _found = report(_settings().home, org_id, limit)
    console.print(shown)


def _layers(rows: dict[str, int]) -> dict[str, int]:
    from transforms.erasure import Erased

    return Erased(dict(rows)).by_layer()


def _registered(settings: HubSettings, org_id: str) -> Member | None:
    """The member's current config, if its file is there and valid."""
    from connectors.members import load_members

    return load_members(settings.members_dir).members.get(org_id)


@app.command("dagster-home")
def dagster_home(
    home: Annotated[Path | None, typer.Argument(help="default: $DAGSTER_HOME")] = None,
) -> None:
    """Create a Dagster home with the project's dagster.yaml (dagster reads it only there)."""
    from pipelines.lib.instance import prepare_dagster_home

    target = home or Path(os.environ.get("DAGSTER_HOME", ".dagster_home"))
    prepare_dagster_home(target.resolve())
    console.print(f"Dagster home ready at {target.resolve()}")


if __name__ == "__main__":
    app()
