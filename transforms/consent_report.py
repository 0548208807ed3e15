"""What a CRM member's sharing policy does to its people's consent answers, in numbers.

Why: ``sharing.consent: all`` used to turn explicit "No" answers into consent silently. It
now fills in only a missing answer, and ``hub check`` must say how many records each
policy changes so a member sees the effect before it publishes anything. Spreadsheet
members are counted while their files are read (``connectors.spreadsheets.check``); a CRM
member's answers are in the hub's raw layer after its last load, so they are counted
there, with the same rules as the canonical SQL (``transforms/sql/canonical/*_person.sql``):
a blank answer is "no answer", an answer among ``sharing.consent_yes`` is yes, anything
else is no. Deleted and trashed contacts are left out (they never consent). Only counts
leave this module, never an answer.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from connectors.members import normalise_label

if TYPE_CHECKING:
    from connectors.members import Member
    from transforms.warehouse import Session

# connector kind -> (raw table, consent column, columns that mark a record deleted)
CONSENT_SOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "civicrm": ("civicrm__contact", "consent_to_share", ("is_deleted", "deleted_in_source")),
    "salesforce_npsp": ("npsp__contact", "cfg__consent", ("is_deleted",)),
}


def crm_consent_counts(session: Session, member: Member) -> dict[str, int] | None:
    """Counts keyed like the spreadsheet reader's (``blank_taken_as_yes``, ``yes``, ``no``,
    ``no_kept``, ``yes_not_shared``), or None when the member has no loaded contacts yet
    or no consent field."""
    source = CONSENT_SOURCES.get(member.connector.kind)
    if source is None:
        return None
    table, column, deleted = source
    schema = f"raw_{member.org_id}"
    if not session.table_exists(schema, table):
        return None
    present = set(session.columns(schema, table))
    if column not in present:
        return None
    alive = " AND ".join(f"NOT COALESCE({c}, FALSE)" for c in deleted if c in present) or "TRUE"
    rows = session.fetchall(
        f'SELECT LOWER(TRIM(CAST("{column}" AS TEXT))) AS answer, COUNT(*) '
        f'FROM "{schema}"."{table}" WHERE {alive} GROUP BY 1'
    )
    yes_words = {normalise_label(v) for v in member.sharing.consent_yes}
    answers: Counter[str] = Counter()
    for answer, count in rows:
        if answer is None or answer == "":
            answers["blank"] += count
        elif normalise_label(answer) in yes_words:
            answers["yes"] += count
        else:
            answers["no"] += count
    policy = member.sharing.consent
    if policy == "all":
        return {
            "blank_taken_as_yes": answers["blank"],
            "yes": answers["yes"],
            "no_kept": answers["no"],
        }
    if policy == "none":
        return {"yes_not_shared": answers["yes"], "no": answers["no"] + answers["blank"]}
    return {"yes": answers["yes"], "no": answers["no"] + answers["blank"]}
