"""OpenLineage events for every asset run, so lineage tools see what the hub read and wrote.

Events go to the OpenLineage backend named by the usual ``OPENLINEAGE_URL`` /
``OPENLINEAGE_CONFIG`` settings when one is configured, else to a JSON-lines file under the
hub's home (``$HUB_HOME/openlineage/events.jsonl``) so nothing is lost and no network is
needed. (OpenLineage's own Dagster integration was removed upstream, hence this module.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

PRODUCER = "https://github.com/outcomes-hub/outcomes-hub/pipelines"
NAMESPACE = "outcomes-hub"


class LineageRun:
    """Lets an asset add the datasets it found it read or wrote while it ran."""

    def __init__(self) -> None:
        self.inputs: list[str] = []
        self.outputs: list[str] = []


def _client(home: Path) -> Any:
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    if os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"):
        return OpenLineageClient()
    folder = home / "openlineage"
    folder.mkdir(parents=True, exist_ok=True)
    config = FileConfig(log_file_path=str(folder / "events.jsonl"), append=True)
    return OpenLineageClient(transport=FileTransport(config))


def _dataset(name: str, warehouse: str, kind: type) -> Any:
    """Warehouse tables are ``schema.table`` in the warehouse namespace; paths are files;
    ``scheme://host/path`` is an API (namespace ``scheme://host``, name the path)."""
    if name.startswith("/"):
        return kind(namespace="file", name=name)
    if "://" in name:
        scheme, rest = name.split("://", 1)
        host, _, path = rest.partition("/")
        return kind(namespace=f"{scheme}://{host}", name=f"/{path}")
    return kind(namespace=warehouse, name=name)


def _datasets(names: Sequence[str], warehouse: str, kind: type) -> list[Any]:
    return [_dataset(n, warehouse, kind) for n in names]


@contextmanager
def lineage_run(
    context: dg.AssetExecutionContext,
    *,
    home: Path,
    warehouse: str,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
) -> Iterator[LineageRun]:
    """Emit START, then COMPLETE or FAIL, for one asset step with its input/output tables.

    Dataset names are ``schema.table`` in the warehouse namespace (``duckdb://<file>`` or
    ``postgres://…``); files are their own namespace (``file``).
    """
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )

    client = _client(home)
    partition = context.partition_key if context.has_partition_key else None
    run_id = str(uuid.uuid5(uuid.UUID(context.run.run_id), f"{context.op_def.name}:{partition}"))
    job = Job(namespace=NAMESPACE, name=context.op_def.name)
    extra = LineageRun()

    def event(state: Any) -> Any:
        ins = [*inputs, *extra.inputs]
        outs = [*outputs, *extra.outputs]
        return RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=run_id),
            job=job,
            producer=PRODUCER,
            inputs=_datasets(ins, warehouse, InputDataset),
            outputs=_datasets(outs, warehouse, OutputDataset),
        )

    client.emit(event(RunState.START))
    try:
        yield extra
    except BaseException:
        client.emit(event(RunState.FAIL))
        raise
    client.emit(event(RunState.COMPLETE))
