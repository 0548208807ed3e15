"""CiviCRM child tables (roles, e-mails ...): their own keyset pager, and changes that do not
touch the parent (issue #19 items 5 and 6).

A contact merge in CiviCRM moves activity and case roles, e-mails, phones and addresses to
the kept contact by UPDATE, without touching the activities or cases: following the parents'
``modified_date`` never sees it. The sandbox's ``merge_contacts`` does the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.civicrm import civicrm_source, source
from sandboxes.civicrm import ApiError, CiviCRMSandbox
from tests.connectors.test_civicrm_source import (
    RAW,
    _extracted_rows,
    _ids,
    _pipeline,
    _query,
    _settings,
)

CHILDREN = {
    "activity_contact": ("ActivityContact", "activity_id"),
    "case_contact": ("CaseContact", "case_id"),
    "email": ("Email", "contact_id"),
    "phone": ("Phone", "contact_id"),
    "address": ("Address", "contact_id"),
}


@pytest.fixture
def civi() -> Iterator[CiviCRMSandbox]:
    with CiviCRMSandbox(contacts=20, activities_per_contact=3, cases_per_contact=1, seed=5) as sb:
        yield sb


def _run(
    civi: CiviCRMSandbox,
    tmp_path: Path,
    *,
    reconcile: bool | None = False,
    full_reload: bool = False,
    **overrides: Any,
) -> str:
    source = civicrm_source(
        _settings(civi, **overrides), civi.api_key, reconcile=reconcile, full_reload=full_reload
    )
    return _pipeline(tmp_path).run(source).loads_ids[0]


def _owners(tmp_path: Path, table: str) -> dict[int, int]:
    """Loaded live rows of a child table: id -> contact_id."""
    rows = _query(
        tmp_path, f"SELECT id, contact_id FROM {RAW}.civicrm__{table} WHERE NOT is_deleted"
    )
    return dict(rows)


def _source_owners(civi: CiviCRMSandbox, entity: str) -> dict[int, int]:
    return {i: r["contact_id"] for i, r in civi.data.tables[entity].items()}


def _merge_pair(civi: CiviCRMSandbox) -> tuple[int, int]:
    """Two contacts that both have a case and activities (the other one's move)."""
    with_case = sorted({r["contact_id"] for r in civi.data.tables["CaseContact"].values()})
    return with_case[0], with_case[1]


def _requests(civi: CiviCRMSandbox, entity: str, since: int = 0) -> list[dict[str, Any]]:
    return [p for e, a, p in civi.requests[since:] if e == entity and a == "get"]


def test_a_merge_moves_roles_to_the_kept_contact_at_the_next_audit(
    civi: CiviCRMSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of 4 ids instead of 1,000: this site's 60 roles would otherwise be one block.
    monkeypatch.setattr(source, "DIGEST_BLOCK", 4)
    _run(civi, tmp_path)
    keep, other = _merge_pair(civi)
    moved = {
        table: {i for i, c in _source_owners(civi, entity).items() if c == other}
        for table, (entity, _) in CHILDREN.items()
    }
    assert moved["activity_contact"] and moved["case_contact"] and moved["email"]
    civi.merge_contacts(keep, other)

    _run(civi, tmp_path)  # an ordinary run: the activities and cases did not change
    assert {i for i, c in _owners(tmp_path, "activity_contact").items() if c == other} == moved[
        "activity_contact"
    ]

    _run(civi, tmp_path, reconcile=True)  # the periodic audit
    for table, (entity, _) in CHILDREN.items():
        assert _owners(tmp_path, table) == _source_owners(civi, entity), table
        # The first load appends (a new table), every later one merges: no id twice.
        [(rows, ids)] = _query(
            tmp_path, f"SELECT count(*), count(DISTINCT id) FROM {RAW}.civicrm__{table}"
        )
        assert rows == ids, table
        assert all(_owners(tmp_path, table)[i] == keep for i in moved[table]), table
    # Only the children of the parents whose rows moved were loaded again, not every role.
    reloaded = _extracted_rows(tmp_path, "activity_contact")
    moved_activities = {
        civi.data.tables["ActivityContact"][i]["activity_id"] for i in moved["activity_contact"]
    }
    roles_of_moved = sum(
        1
        for r in civi.data.tables["ActivityContact"].values()
        if r["activity_id"] in moved_activities
    )
    assert roles_of_moved <= reloaded <= 2 * 4  # the two blocks the moved roles sit in
    # The kept contact's case roles are both there once, each on its own id.
    assert _query(
        tmp_path,
        f"SELECT count(*) FROM {RAW}.civicrm__case_contact WHERE contact_id = ? AND NOT is_deleted",
        keep,
    ) == [(sum(1 for c in _source_owners(civi, "CaseContact").values() if c == keep),)]


def test_an_audit_with_nothing_changed_reloads_nothing(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    for _ in range(3):  # (a first full read sets each child's cursor from its own rows)
        _run(civi, tmp_path)
    plain = {table: _extracted_rows(tmp_path, table) for table in CHILDREN}  # on the cursor
    assert all(n <= 2 for n in plain.values())
    _run(civi, tmp_path, reconcile=True)
    assert {table: _extracted_rows(tmp_path, table) for table in CHILDREN} == plain


def test_full_reload_rereads_every_table_and_still_guards_deletions(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """``hub run --full``'s source: the cursor goes, the ids held stay."""
    _run(civi, tmp_path)
    keep, other = _merge_pair(civi)
    civi.merge_contacts(keep, other)
    deleted = 3
    civi.hard_delete("Activity", deleted)
    _run(civi, tmp_path, full_reload=True)
    for table, (entity, _) in CHILDREN.items():
        assert _owners(tmp_path, table) == _source_owners(civi, entity), table
    assert _extracted_rows(tmp_path, "activity") == len(civi.data.tables["Activity"]) + 1  # marker
    assert _ids(tmp_path, "activity", "deleted_in_source") == [deleted]
    # A full read that suddenly sees few contacts (a lost permission) deletes nobody.
    civi.hide("Contact", range(1, 16))
    _run(civi, tmp_path, full_reload=True)
    assert _ids(tmp_path, "contact", "deleted_in_source") == []
    assert len(_owners(tmp_path, "email")) == len(civi.data.tables["Email"])
    # The next ordinary run is incremental again: it reads next to nothing.
    civi.unhide("Contact")
    _run(civi, tmp_path)
    assert _extracted_rows(tmp_path, "activity_contact") <= 3


def test_children_are_paged_by_their_own_id_not_by_lists_of_parents(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """A full read pages ActivityContact by id alone; an incremental one adds the parent's
    cursor window through the join. Neither sends lists of parent ids."""
    page_size = 4
    _run(civi, tmp_path, page_size=page_size)
    full = _requests(civi, "ActivityContact")
    roles = len(civi.data.tables["ActivityContact"])
    assert len(full) == roles // page_size + 1
    assert not any(c[1] == "IN" for p in full for c in p["where"])
    assert all(p["orderBy"] == {"id": "ASC"} for p in full)

    mark = len(civi.requests)
    civi.edit("Activity", 2, duration=5)
    _run(civi, tmp_path, page_size=page_size)
    changed = _requests(civi, "ActivityContact", mark)
    assert len(changed) == 1
    assert [c[0] for c in changed[0]["where"]] == ["activity_id.modified_date", "id"]
    loaded = _query(
        tmp_path,
        f"SELECT activity_id, activity_modified_date FROM {RAW}.civicrm__activity_contact "
        "WHERE activity_id = 2",
    )
    version = civi.data.tables["Activity"][2]["modified_date"]
    assert [(a, str(m)) for a, m in loaded] == [(2, version)]


def test_the_sandbox_joins_only_through_reference_fields(civi: CiviCRMSandbox) -> None:
    """As APIv4: ``fk.field`` works where the field references an entity, in select and
    where; elsewhere it is an invalid field."""
    answer = civi.handle(
        "Email",
        "get",
        {
            "select": ["id", "contact_id.modified_date"],
            "where": [["contact_id.contact_type", "=", "Individual"], ["id", "=", 1]],
        },
    )
    contact = civi.data.tables["Email"][1]["contact_id"]
    assert answer["values"] == [
        {"id": 1, "contact_id.modified_date": civi.data.tables["Contact"][contact]["modified_date"]}
    ]
    for entity, name in [("ActivityContact", "record_type_id.name"), ("Email", "email.id")]:
        with pytest.raises(ApiError, match="Invalid field"):
            civi.handle(entity, "get", {"select": [name]})
