"""Which quarters a release publishes, repeats unchanged, or revises.

Why: a reader holds every earlier release. If a later release recounted a quarter already
published, the difference between the two would show exactly what changed: add one person to
a member's file, publish again, and their district, quarter and outcome appear. So:

- a quarter is published once it has ended (the open quarter only when an operator asks for
  provisional figures);
- once published (provisional or not) it is **frozen**: later releases repeat its published
  values unchanged, whatever late or corrected data arrives;
- late or corrected data for a frozen quarter is published only in an explicit **revision**
  (``hub publish --revise 2025-Q2``, or the ``revise`` config of ``published_tables``), which
  is disclosure-controlled together with every earlier version of that quarter
  (``transforms.disclosure.control.EarlierRelease``), so that the change cannot single
  anyone out; a revision that cannot be made safe is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from transforms.periods import quarter_bounds


class PlanError(ValueError):
    """A release cannot be planned as asked (the message says what to do instead)."""


@dataclass(frozen=True)
class ReleasePlan:
    """The quarters of one release, by what happens to them."""

    new: tuple[str, ...]  # published for the first time (counted now)
    revised: tuple[str, ...]  # published before, recounted now, audited with earlier versions
    carried: tuple[str, ...]  # published before, repeated unchanged
    provisional: tuple[str, ...]  # new or revised quarters that have not ended yet
    held: tuple[str, ...] = field(default=())  # counted but not published (still open)

    @property
    def counted_now(self) -> tuple[str, ...]:
        """Quarters whose values come from the current data."""
        return tuple(sorted((*self.new, *self.revised)))

    @property
    def published(self) -> tuple[str, ...]:
        return tuple(sorted((*self.new, *self.revised, *self.carried)))

    def status(self, period: str) -> str:
        if period in self.revised:
            return "revised"
        if period in self.new:
            return "new"
        return "carried"


def quarter_state(period: str, today: date) -> str:
    """``closed`` (ended before ``today``), ``open`` (``today`` is in it) or ``future``."""
    year, quarter = int(period[:4]), int(period[-1])
    start, end = quarter_bounds(year, quarter)
    if end < today:
        return "closed"
    return "open" if start <= today else "future"


def plan_release(
    counted: list[str],
    published_before: set[str],
    *,
    today: date,
    revise: list[str] | tuple[str, ...] = (),
    provisional: bool = False,
) -> ReleasePlan:
    """Plan a release from the quarters ``counted`` now and those ``published_before``.

    Raises ``PlanError`` for a revision of a quarter never published (publish it first)
    or of a quarter with no counts now.
    """
    counted_set = set(counted)
    revise_set = set(revise)
    for period in sorted(revise_set):
        if period not in published_before:
            raise PlanError(
                f"cannot revise {period}: it has not been published yet (a quarter is "
                "published in the first release after it ends; revise only published ones)"
            )
        if period not in counted_set:
            raise PlanError(
                f"cannot revise {period}: there are no counts for it now (did its members' "
                "data go away? publish without --revise to keep the published figures)"
            )
    new: list[str] = []
    held: list[str] = []
    provisional_periods: list[str] = []
    for period in sorted(counted_set - published_before):
        state = quarter_state(period, today)
        if state == "closed":
            new.append(period)
        elif state == "open" and provisional:
            new.append(period)
            provisional_periods.append(period)
        else:
            held.append(period)
    for period in sorted(revise_set):
        if quarter_state(period, today) != "closed":
            provisional_periods.append(period)
    carried = sorted(published_before - revise_set)
    return ReleasePlan(
        new=tuple(new),
        revised=tuple(sorted(revise_set)),
        carried=tuple(carried),
        provisional=tuple(sorted(provisional_periods)),
        held=tuple(held),
    )
