"""Holds in a member's pipeline state: what the load asset, `hub check` and the summary read."""

from __future__ import annotations

import json
from pathlib import Path

from connectors.holds import held_message, hold, holds_in_state, is_held, lift, member_holds
from connectors.members import CONNECTOR_KINDS


def test_a_hold_keeps_when_it_began_and_lifts_cleanly() -> None:
    state: dict = {}
    hold(state, "held_deletions", "20 of 20 records no longer listed", "Check the permission.")
    since = state["holds"]["held_deletions"]["since"]
    hold(state, "held_deletions", "19 of 20 records no longer listed", "Check the permission.")
    assert state["holds"]["held_deletions"]["since"] == since  # how long it has lasted
    assert state["holds"]["held_deletions"]["reason"].startswith("19 of 20")
    assert is_held(state)
    assert lift(state, "held_deletions") and not lift(state, "held_deletions")
    assert state == {} and not is_held(state)


def test_member_holds_reads_the_committed_state_of_the_members_own_pipeline(
    tmp_path: Path,
) -> None:
    table = {"holds": {"stopped_early": {"reason": "API limit", "fix": "Wait.", "since": None}}}
    state = {"sources": {"src": {"resources": {"contact": table, "other": {"cursor": "x"}}}}}
    (tmp_path / "hub_a_civicrm").mkdir()
    (tmp_path / "hub_a_civicrm" / "state.json").write_text(json.dumps(state), encoding="utf-8")
    (tmp_path / "hub_a_b_civicrm").mkdir()  # another member whose id starts the same
    (tmp_path / "hub_a_b_civicrm" / "state.json").write_text("{not json", encoding="utf-8")
    assert [h.table for h in member_holds(tmp_path, "a", ["civicrm"])] == ["contact"]
    assert member_holds(tmp_path, "a_b", ["civicrm"]) == []  # unreadable: not a hold
    assert member_holds(tmp_path, "a", ["spreadsheet"]) == []
    assert holds_in_state({"sources": {"s": {"resources": {"t": {"holds": "junk"}}}}}) == []


def test_the_message_puts_the_fix_first_and_points_to_hub_check() -> None:
    state: dict = {"sources": {"s": {"resources": {"b": {}, "a": {}}}}}
    for table in ("b", "a"):
        hold(state["sources"]["s"]["resources"][table], "n", f"{table} short", "Grant it.")
    text = held_message("org1", holds_in_state(state))
    assert text.index("Fix: Grant it.") < text.index("Held: a: a short")
    assert "1 more table(s): `hub check org1` lists them" in text


def test_every_connector_names_its_pipeline_after_its_kind() -> None:
    """`member_holds(..., [member.connector.kind])` relies on it."""
    from connectors.civicrm.source import SOURCE_NAME as CIVICRM
    from connectors.salesforce_npsp.source import SOURCE_NAME as SALESFORCE
    from connectors.spreadsheets.fingerprints import SOURCE_NAME as SPREADSHEET

    assert {CIVICRM, SALESFORCE, SPREADSHEET} == set(CONNECTOR_KINDS)
