"""Great Expectations suites for the hub's own tables.

GX takes seconds to import, so it is imported inside the functions that validate, never at
module load. Contexts are ephemeral: nothing is written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SuiteOutcome:
    """A suite's verdict in plain terms, for asset-check metadata."""

    success: bool
    failed: list[str]
    details: dict[str, Any]


def _run_suite(name: str, frame: Any, expectations: list[Any]) -> SuiteOutcome:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    result = batch.validate(suite)
    failed, details = [], {}
    for item in result.results:
        label = item.expectation_config.type
        column = item.expectation_config.kwargs.get("column")
        key = f"{label}({column})" if column else label
        if not item.success:
            failed.append(key)
            details[key] = {
                k: item.result.get(k)
                for k in ("unexpected_count", "observed_value")
                if item.result.get(k) is not None
            }
    return SuiteOutcome(bool(result.success), failed, details)


def validate_person_link(frame: Any, canonical_people: int) -> SuiteOutcome:
    """Every canonical person maps to exactly one well-formed, pseudonymous person key."""
    import great_expectations.expectations as gxe

    return _run_suite(
        "person_link",
        frame,
        [
            gxe.ExpectTableRowCountToEqual(value=canonical_people),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["org_id", "source_id"]),
            gxe.ExpectColumnValuesToNotBeNull(column="person_key"),
            gxe.ExpectColumnValuesToMatchRegex(column="person_key", regex=r"^p_[0-9a-f]{16}$"),
            gxe.ExpectColumnValuesToBeInSet(
                column="method", value_set=["deterministic", "probabilistic", "manual"]
            ),
            gxe.ExpectColumnValuesToBeBetween(column="match_probability", min_value=0, max_value=1),
        ],
    )


def validate_people(frame: Any) -> SuiteOutcome:
    """Canonical people are well-formed: ids present and unique, values normalised."""
    import great_expectations.expectations as gxe

    return _run_suite(
        "person",
        frame,
        [
            gxe.ExpectColumnValuesToNotBeNull(column="source_id"),
            gxe.ExpectCompoundColumnsToBeUnique(column_list=["org_id", "source_id"]),
            gxe.ExpectColumnValuesToMatchRegex(column="phone", regex=r"^\+[1-9][0-9]{6,14}$"),
            gxe.ExpectColumnValuesToMatchRegex(column="email", regex=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
            gxe.ExpectColumnValuesToMatchRegex(
                column="postcode", regex=r"^[A-Z0-9]{2,4} [A-Z0-9]{3}$"
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="birth_date", min_value="1900-01-01", max_value="2100-01-01"
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="consent_to_share"),
        ],
    )
