"""Which quarters a release publishes, repeats unchanged (frozen) or revises."""

from __future__ import annotations

from datetime import date

import pytest

from transforms.release_plan import PlanError, plan_release, quarter_state

QUARTERS = ["2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"]


def test_quarter_state() -> None:
    assert quarter_state("2025-Q2", date(2025, 7, 1)) == "closed"
    assert quarter_state("2025-Q2", date(2025, 6, 30)) == "open"
    assert quarter_state("2025-Q2", date(2025, 4, 1)) == "open"
    assert quarter_state("2025-Q3", date(2025, 6, 30)) == "future"


def test_only_ended_quarters_are_published_and_then_frozen() -> None:
    plan = plan_release(QUARTERS, set(), today=date(2025, 8, 15))
    assert plan.new == ("2025-Q1", "2025-Q2")
    assert plan.held == ("2025-Q3", "2025-Q4")  # open, and dated in the future
    later = plan_release(QUARTERS, {"2025-Q1", "2025-Q2"}, today=date(2025, 10, 2))
    assert later.new == ("2025-Q3",) and later.carried == ("2025-Q1", "2025-Q2")
    assert later.counted_now == ("2025-Q3",)
    assert later.status("2025-Q1") == "carried" and later.status("2025-Q3") == "new"


def test_provisional_figures_for_the_open_quarter_are_frozen_too() -> None:
    plan = plan_release(QUARTERS[:3], {"2025-Q1"}, today=date(2025, 8, 15), provisional=True)
    assert plan.new == ("2025-Q2", "2025-Q3") and plan.provisional == ("2025-Q3",)
    closed = plan_release(QUARTERS[:3], {"2025-Q1", "2025-Q2", "2025-Q3"}, today=date(2025, 10, 2))
    assert closed.carried == ("2025-Q1", "2025-Q2", "2025-Q3") and not closed.new


def test_revisions_recount_only_published_quarters() -> None:
    plan = plan_release(
        QUARTERS[:2], {"2025-Q1", "2025-Q2"}, today=date(2025, 8, 1), revise=["2025-Q1"]
    )
    assert plan.revised == ("2025-Q1",) and plan.carried == ("2025-Q2",)
    assert plan.counted_now == ("2025-Q1",) and plan.status("2025-Q1") == "revised"
    with pytest.raises(PlanError, match="2025-Q3: it has not been published"):
        plan_release(QUARTERS, {"2025-Q1"}, today=date(2025, 8, 1), revise=["2025-Q3"])
    with pytest.raises(PlanError, match="no counts for it now"):
        plan_release(
            ["2025-Q2"], {"2025-Q1", "2025-Q2"}, today=date(2025, 8, 1), revise=["2025-Q1"]
        )
