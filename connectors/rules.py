"""The stable rule code of each problem a connector finds reading a value or a row.

The readers' own ``code`` (``invalid_date``, ``missing_status``…) is a short key for its
summaries; the rule is the network-wide code stored in ``quarantine.rejected_rows.rule``
(DESIGN.md), the same for a bad date in a spreadsheet as in any other source, so reports
group and trend by rule. ``transforms/quality/rules.py`` describes every rule.
"""

from __future__ import annotations

LOAD_RULES: dict[str, str] = {
    "invalid_date": "date.invalid",
    "ambiguous_date": "date.ambiguous",
    "two_digit_year": "date.two_digit_year",
    "date_order_mismatch": "date.order_mismatch",
    "birth_date_in_future": "date.birth_in_future",
    "birth_date_too_old": "date.birth_before_1900",
    "invalid_number": "number.invalid",
    "ambiguous_number": "number.ambiguous",
    "number_separator_mismatch": "number.separator_mismatch",
    "invalid_email": "email.invalid",
    "invalid_phone": "phone.invalid",
    "phone_without_leading_zero": "phone.leading_zero_lost",
    "invalid_postcode": "postcode.invalid",
    "unrecognised_consent": "consent.unrecognised",
    "duplicate_id": "id.duplicate",
    "id_digits_lost": "id.digits_lost",
    "id_scientific_notation": "id.scientific_notation",
    "line_break": "text.line_break",
    "spreadsheet_error": "cell.spreadsheet_error",
    "unclosed_quote": "row.unclosed_quote",
    "totals_row": "row.totals",
    "repeated_header": "row.repeated_header",
}
"""Reader code → rule code. Missing required values (``missing_<field>``) are
``required.missing``; the column names which."""


def load_rule(code: str) -> str:
    """The rule code for one of the readers' problem codes (``connectors/values.py``).

    An unknown code raises: a new problem kind must get its rule (and its description in
    ``transforms/quality/rules.py``) rather than an unclassified row.
    """
    if code.startswith("missing_"):
        return "required.missing"
    try:
        return LOAD_RULES[code]
    except KeyError:
        raise KeyError(
            f"no rule code for the value problem {code!r}: add it to LOAD_RULES"
        ) from None
