"""Exceptions raised by connectors and member configuration.

Split by retryability so the orchestrator can decide: a transient error may succeed on a
retry, a permanent one needs a person to change something (a file, a credential, a config
key), and every message says what that change is.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class for everything ``connectors/`` raises."""


class TransientSourceError(ConnectorError):
    """The source may answer differently on retry (5xx, 429, timeout)."""


class PermanentSourceError(ConnectorError):
    """A retry will not help: a person must fix a file, a credential or the config."""


MAX_PROBLEMS_SHOWN = 25


class MemberConfigError(PermanentSourceError):
    """A member's YAML file is missing, unreadable or invalid.

    ``problems`` holds every problem found, so a member fixes them all in one pass
    instead of one per run.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        # Every problem is kept; the message shows the first ones, so a file of thousands of
        # stray keys cannot flood a log, an event or the UI.
        shown = problems[:MAX_PROBLEMS_SHOWN]
        listing = "\n".join(f"  - {p}" for p in shown)
        if len(problems) > len(shown):
            more = len(problems) - len(shown)
            listing += f"\n  - … and {more} more (fix these, then run `hub check` again)"
        super().__init__(f"{path}: {len(problems)} problem(s) in member configuration:\n{listing}")


class SpreadsheetError(PermanentSourceError):
    """A member's spreadsheet cannot be read at all (missing, locked, not a table)."""

    def __init__(self, org_id: str, path: str, problem: str, fix: str) -> None:
        self.org_id = org_id
        self.path = path
        self.problem = problem
        self.fix = fix
        super().__init__(f"member '{org_id}', file {path}: {problem}. Fix: {fix}")
