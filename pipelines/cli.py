"""The ``hub`` command: list and check members, run the hub, run the demo.

Heavy imports (Dagster, dlt) happen inside commands so ``hub --help`` and ``hub members``
answer at once.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

    from pipelines.lib.runner import StageResult
    from pipelines.settings import HubSettings

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
        tables = getattr(member.connector, "tables", {})
        table.add_row(
            org_id, member.name, member.connector.kind, ", ".join(tables), member.sharing.consent
        )
    console.print(table)
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
    if member.connector.kind == "spreadsheet":
        from connectors.spreadsheets import check_member

        report = check_member(member)
        console.print(report.render())
        if not report.ok:
            raise typer.Exit(1)


def _print_results(results: list[StageResult], settings: HubSettings) -> None:
    from pipelines.lib.summary import render_summary

    console.print(render_summary(results, settings))


def _instance(home: Path) -> dg.DagsterInstance:
    import dagster as dg

    from pipelines.lib.instance import prepare_dagster_home

    prepare_dagster_home(home)
    return dg.DagsterInstance.from_config(str(home))


Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="also print Dagster's own step log")]


@app.command()
def run(
    org: Annotated[list[str] | None, typer.Option(help="only these members (repeatable)")] = None,
    verbose: Verbose = False,
) -> None:
    """Load every member (or those named), then link people and publish a release."""
    settings = _settings()
    _run(settings, org, verbose)


def _run(settings: HubSettings, orgs: list[str] | None, verbose: bool = False) -> None:
    from pipelines.lib.members import registry
    from pipelines.lib.runner import refresh

    reg = registry()
    for org_id, err in sorted(reg.errors.items()):
        console.print(f"[bold red]{org_id}: skipped, its member file is invalid[/]\n{err}")
    wanted = orgs or sorted(reg.members)
    unknown = [o for o in wanted if o not in reg.members]
    if unknown:
        console.print(
            f"[red]Unknown member(s): {', '.join(unknown)}. "
            f"Members: {', '.join(sorted(reg.members))}[/]"
        )
        raise typer.Exit(2)
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
    instance = _instance(home)
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

        results = refresh(
            settings,
            wanted,
            instance,
            on_stage=started,
            on_done=done,
            log_level="DEBUG" if verbose else "CRITICAL",
        )
    _print_results(results, settings)
    if not all(r.success for r in results):
        raise typer.Exit(1)


@app.command()
def demo(
    home: Annotated[Path, typer.Option(help="where the demo keeps its warehouse")] = Path(
        ".hub/demo"
    ),
    verbose: Verbose = False,
) -> None:
    """Run the hub end to end on the bundled sample members, from a clean slate."""
    home = home.resolve()
    if home.exists():
        shutil.rmtree(home)
    os.environ["HUB_HOME"] = str(home)
    os.environ.setdefault("HUB_MEMBERS_DIR", str(REPO_ROOT / "members"))
    for var in ("HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR"):
        os.environ.pop(var, None)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    console.print(
        f"[bold]Outcomes Hub demo[/] — members from {os.environ['HUB_MEMBERS_DIR']}, "
        f"warehouse and release under {home}"
    )
    _run(_settings(), None, verbose)


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
