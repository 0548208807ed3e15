"""Every rule a row can break, by stable code, with what it means and what fixes it.

``quarantine.rejected_rows.rule`` holds one of these codes beside the readable reason, so
reports group, count and trend problems by rule across loads and members (DESIGN.md). A code
is ``<area>.<problem>``; once published in a report it is never renamed, only added to.
The SQL quarantine models write the mapping-stage codes as literals, the spreadsheet reader
maps its own problem codes onto the load-stage ones (``connectors/rules.py``);
tests check that every code written anywhere is described here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One rule: its code, a short title for reports, and the usual fix."""

    code: str
    title: str
    fix: str


_RULES = [
    # Reading values (load stage)
    Rule("required.missing", "required value missing", "fill the value in the source"),
    Rule("date.invalid", "not a date", "write the date as YYYY-MM-DD or DD/MM/YYYY"),
    Rule("date.ambiguous", "date could be read two ways", "write the date as YYYY-MM-DD"),
    Rule("date.two_digit_year", "two-digit year", "write the year with four digits"),
    Rule(
        "date.order_mismatch",
        "date order differs from the file's",
        "write every date of the file in one order",
    ),
    Rule("date.birth_in_future", "birth date in the future", "correct the birth date"),
    Rule("date.birth_before_1900", "birth date before 1900", "correct the birth date"),
    Rule("number.invalid", "not a number", "write a plain number"),
    Rule(
        "number.ambiguous",
        "number could be read two ways",
        "set decimal_separator for the table, or write the number without grouping",
    ),
    Rule(
        "number.separator_mismatch",
        "number uses another decimal separator",
        "use the table's decimal separator",
    ),
    Rule("email.invalid", "not an e-mail address", "correct or clear the e-mail address"),
    Rule("phone.invalid", "not a phone number", "correct or clear the phone number"),
    Rule(
        "phone.leading_zero_lost",
        "phone number lost its leading 0",
        "format the column as text and restore the 0",
    ),
    Rule("postcode.invalid", "not a postcode", "correct or clear the postcode"),
    Rule("consent.unrecognised", "consent value not recognised", "write yes or no"),
    Rule("id.duplicate", "id used twice", "give each row its own id"),
    Rule(
        "id.digits_lost",
        "id rounded by a spreadsheet",
        "format the id column as text and re-enter the ids",
    ),
    Rule(
        "id.scientific_notation",
        "id turned into scientific notation",
        "format the id column as text and re-enter the ids",
    ),
    Rule("text.line_break", "line break inside a value", "remove the line break"),
    Rule("cell.spreadsheet_error", "spreadsheet error cell", "fix the formula"),
    Rule("row.unclosed_quote", "unclosed quote swallowed rows", "close the quote"),
    Rule("row.totals", "totals row (skipped)", "nothing; or remove the row"),
    Rule("row.repeated_header", "header row repeated (skipped)", "nothing; or remove the row"),
    Rule(
        "value.unreadable",
        "value the source sent in an unreadable form",
        "correct the value in the source",
    ),
    # Mapping records onto the canonical model (mapping stage)
    Rule("ref.person_missing", "person not loaded", "fix the record's person, or the person"),
    Rule("ref.person_unset", "no person on the record", "set the record's person"),
    Rule(
        "ref.programme_missing",
        "programme not found",
        "set the record's programme (or file it on a case)",
    ),
    Rule("ref.case_deleted", "filed on a deleted case", "file it on the current case"),
    Rule("map.programme_unmapped", "programme not mapped", "add it under mappings.programmes"),
    Rule(
        "map.engagement_status_unmapped",
        "engagement status not mapped",
        "add it under mappings.engagement_status",
    ),
    Rule("map.outcome_unmapped", "outcome not mapped", "add it under mappings.outcomes"),
    Rule(
        "map.outcome_status_unmapped",
        "outcome status not mapped",
        "add it under mappings.outcome_status",
    ),
    Rule("date.missing", "date missing", "fill the date in the source"),
    Rule("delivery.absent", "absence, not a delivery (skipped)", "nothing"),
    Rule(
        "unclassified",
        "loaded before rule codes existed",
        "load the member again to classify it",
    ),
]

RULES: dict[str, Rule] = {rule.code: rule for rule in _RULES}
assert len(RULES) == len(_RULES), "rule codes must be unique"

REJECTED_COLUMNS = (
    "org_id, source_system, entity, source_file, source_row, source_id, column_name, "
    "raw_value, reason, rule, severity, stage, _load_id"
)
"""``quarantine.rejected_rows``'s columns, named in every INSERT: a warehouse made before
``rule`` existed has it last, a new one beside ``reason``."""
