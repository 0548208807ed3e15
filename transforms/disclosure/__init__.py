"""Disclosure control of the published count tables, and the audit that attacks it.

- ``cells``: a release's counts as one numbered list (shown, withheld, true).
- ``relations``: every relation a reader can use to narrow a withheld count, written once.
- ``audit``: the integer-program attack (HiGHS) that bounds every withheld cell.
- ``control``: suppression that withholds as little as possible and passes the audit.
"""

from transforms.disclosure.audit import AuditError, AuditResult, audit, fails
from transforms.disclosure.cells import CONTROLLED_TABLES, CellRef, Cells, read_release_csvs
from transforms.disclosure.control import (
    DEFAULT_THRESHOLD,
    ControlResult,
    DisclosureError,
    EarlierRelease,
    ReleaseFindings,
    TableLoss,
    audit_release,
    control_release,
    reader_attack,
)
from transforms.disclosure.relations import RULES, Constraint, check_truth, reader_relations

__all__ = [
    "CONTROLLED_TABLES",
    "DEFAULT_THRESHOLD",
    "RULES",
    "AuditError",
    "AuditResult",
    "CellRef",
    "Cells",
    "Constraint",
    "ControlResult",
    "DisclosureError",
    "EarlierRelease",
    "ReleaseFindings",
    "TableLoss",
    "audit",
    "audit_release",
    "check_truth",
    "control_release",
    "fails",
    "read_release_csvs",
    "reader_attack",
    "reader_relations",
]
