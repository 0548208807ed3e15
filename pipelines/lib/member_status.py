"""Record, from the assets, whether a member's data is current or held back.

Raw-load assets are decorated with ``records_load_failures``; the canonical asset wraps its
body in ``held_back_on_failure(..., "mapping")`` and calls ``record_current`` after a
successful mapping. Recording never masks the asset's own error: if it fails too, that is
logged and the original error is raised.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from pipelines.lib.hub import HubResource


def _error_text(err: BaseException) -> str:
    if isinstance(err, dg.Failure) and err.description:
        return err.description
    return str(err) or type(err).__name__


@contextmanager
def held_back_on_failure(
    context: dg.AssetExecutionContext, hub: HubResource, stage: str
) -> Iterator[None]:
    """Mark the partition's member held back at ``stage`` if the block raises."""
    try:
        yield
    except Exception as err:
        from transforms.member_status import mark_held_back

        try:
            mark_held_back(hub.warehouse(), context.partition_key, stage, _error_text(err))
        except Exception as record_err:  # never hide why the step failed
            context.log.warning(
                f"{context.partition_key}: could not record that its {stage} failed: {record_err}"
            )
        raise


def refuse_held_load(context: dg.AssetExecutionContext, hub: HubResource) -> None:
    """Fail, keeping the member held back at its load, while its source holds its last load.

    The raw load records the hold and fails; this guards every later step that would take
    the held load's rows (a mapping requested by automation because raw was materialised).
    """
    from connectors.holds import held_message, member_holds

    member = hub.member(context.partition_key)
    # Every connector's dlt source is named after its kind (connectors/raw_pipeline.py).
    holds = member_holds(hub.settings().pipelines_dir, member.org_id, [member.connector.kind])
    if not holds:
        return
    from transforms.member_status import mark_held_back

    message = held_message(member.org_id, holds)
    mark_held_back(hub.warehouse(), member.org_id, "load", message)
    raise dg.Failure(description=message, allow_retries=False)


def record_current(context: dg.AssetExecutionContext, hub: HubResource) -> None:
    """Mark the partition's member current: its data was just loaded and mapped."""
    from transforms.member_status import mark_current

    mark_current(hub.warehouse(), context.partition_key)


def lift_load_hold(context: dg.AssetExecutionContext, hub: HubResource) -> None:
    """The member's source read fine but brought nothing new, so no mapping follows: a hold
    from an earlier failed load ends here."""
    from transforms.member_status import clear_load_hold

    if clear_load_hold(hub.warehouse(), context.partition_key):
        context.log.info(f"{context.partition_key}: its source reads again; no longer held back")


def records_load_failures(
    compute: Callable[..., Iterator[Any]],
) -> Callable[..., Iterator[Any]]:
    """Decorate a raw-load asset's function (under ``@dg.multi_asset``): whatever makes it
    fail (the member's file, credentials, the source, the load) marks the member held back.
    """

    @functools.wraps(compute)  # Dagster reads the wrapped signature for resources
    def load(context: dg.AssetExecutionContext, **resources: Any) -> Iterator[Any]:
        with held_back_on_failure(context, resources["hub"], "load"):
            yield from compute(context, **resources)

    return load
