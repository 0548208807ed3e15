"""Turn connector errors into Dagster failures that say what a person must do."""

from __future__ import annotations

import dagster as dg

from connectors.errors import PermanentSourceError


def permanent_cause(err: BaseException) -> PermanentSourceError | None:
    """dlt wraps errors raised inside resources; find the member-facing one if any."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, PermanentSourceError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def as_failure(err: BaseException) -> BaseException:
    """A permanent connector error becomes a Failure that is never retried; others stay as
    they are, so a retry policy can try a transient fault again."""
    cause = permanent_cause(err)
    if cause is None:
        return err
    return dg.Failure(
        description=str(cause),
        allow_retries=False,
        metadata={"error_type": type(cause).__name__},
    )
