"""Every field a CiviCRM load selects must come back, or the load writes nothing.

APIv4 does not refuse a field the API user may not see: a custom group that neither
'access all custom data' nor an ACL grants, or a core field whose spec names a permission
the user lacks, is left out of ``getFields`` and dropped from ``select`` without a word
(civicrm-core Api4SelectQuery). Read that way, every person would load with a blank consent
and every outcome with a blank status: the hub would withdraw consent it was given and
quarantine outcomes with the wrong fix, and, with the cursor moved on, keep them wrong after
the permission came back (issue #19).

So a load checks twice, and fails with the field, the permission to grant and the fix:
- before anything is read, one batched ``getFields`` for every entity the load reads must
  list every field it selects (the first resource to start asks, the others share the
  answer; all of them fail, so nothing of the run is extracted);
- every page read must carry every selected field, for a permission lost mid-run.
Every field a load filters on (``where``) is one it selects too, so this also covers
APIv4's other silent answer: a ``where`` on a field the user may not see is ignored.
Failing raises: dlt then commits neither rows nor cursors, so the run after the fix reads
again from where the last good load stopped, and what was read meanwhile is read again.
Errors name entities, fields and permissions only, never a value.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.civicrm.client import CiviCRMClient, CiviCRMError, field_grant


@dataclass(frozen=True)
class HiddenField:
    """One selected field CiviCRM did not return."""

    entity: str
    field: str  # as APIv4 spells it, option suffix removed


class HiddenFieldsError(CiviCRMError):
    """Selected fields CiviCRM left out: the load fails before anything is written."""

    def __init__(self, hidden: Iterable[HiddenField], when: str) -> None:
        self.hidden = sorted(set(hidden), key=lambda h: (h.entity, h.field))
        listing = "; ".join(_grouped(self.hidden))
        super().__init__(
            None,
            f"{len(self.hidden)} field(s) the load selects {when}, "
            "which is how CiviCRM answers for a field the API user may not see (their "
            f"values would load blank): {listing}",
            "grant the CiviCRM user's role what is named for each field, then run again: "
            "nothing of this load was written, and the next run reads everything since the "
            "last good load. If a field was renamed or removed, correct connector."
            "consent_field or connector.outcome_fields instead. `hub check` lists the "
            "fields the API user cannot see",
        )


def _grouped(hidden: list[HiddenField]) -> list[str]:
    """One line per entity and grant: a custom group's fields share one ACL."""
    groups: dict[tuple[str, str], list[str]] = {}
    for h in hidden:
        groups.setdefault((h.entity, field_grant(h.field)), []).append(f"'{h.field}'")
    return [
        f"{entity} field{'s' if len(names) > 1 else ''} {', '.join(names)} (grant {grant})"
        for (entity, grant), names in groups.items()
    ]


def _base(name: str) -> str:
    return name.partition(":")[0]


def missing_fields(client: CiviCRMClient, wanted: Mapping[str, Iterable[str]]) -> list[HiddenField]:
    """The fields in ``wanted`` (entity -> APIv4 names) that ``getFields`` does not list to
    the API user, asked in one batched request."""
    entities = [e for e in wanted if wanted[e]]
    calls = [(e, "getFields", {"select": ["name"], "loadOptions": False}) for e in entities]
    missing: list[HiddenField] = []
    for entity, result in zip(entities, client.batch(calls), strict=True):
        listed = {str(v.get("name")) for v in result.values}
        seen: set[str] = set()
        for name in wanted[entity]:
            base = _base(name)
            if base not in listed and base not in seen:
                seen.add(base)
                missing.append(HiddenField(entity, base))
    return missing


def require_fields(entity: str, rows: list[dict[str, Any]], selected: Iterable[str]) -> None:
    """Fail when a page lacks a selected field (every row of an APIv4 answer carries the
    same keys, nulls included, so the first row tells)."""
    if not rows:
        return
    first = rows[0]
    missing = [HiddenField(entity, _base(name)) for name in selected if name not in first]
    if missing:
        raise HiddenFieldsError(missing, "were missing from a page CiviCRM returned mid-load")


class FieldCheck:
    """The up-front check, made once per source run and shared by its resources."""

    def __init__(self, wanted: Mapping[str, list[str]]) -> None:
        self.wanted = {e: list(dict.fromkeys(names)) for e, names in wanted.items()}
        self._lock = threading.Lock()
        self._answer: list[HiddenField] | None = None

    def ensure(self, connect: Callable[[], CiviCRMClient]) -> None:
        """Raise ``HiddenFieldsError`` when a selected field is not listed to the API user."""
        with self._lock:
            if self._answer is None:
                with connect() as client:
                    self._answer = missing_fields(client, self.wanted)
        if self._answer:
            raise HiddenFieldsError(self._answer, "are not in CiviCRM's field list (getFields)")

    def guard(self, rows: Iterator[Any], connect: Callable[[], CiviCRMClient]) -> Iterator[Any]:
        """``rows`` (a resource's generator), started only after the check passed."""
        self.ensure(connect)
        yield from rows
