"""The shared outcomes taxonomy: outcome areas, outcome codes and normalised statuses.

Member configs map local labels onto these values; the canonical model and the published
dataset only ever contain values from here, so funders can compare members.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.yaml")


@dataclass(frozen=True)
class Taxonomy:
    """Outcome areas (code -> label), outcome codes (code -> area) and status vocabularies."""

    areas: dict[str, str]
    outcomes: dict[str, str]
    outcome_labels: dict[str, str]
    engagement_statuses: tuple[str, ...]
    outcome_statuses: tuple[str, ...]

    def area_of(self, outcome_code: str) -> str:
        """Return the outcome area an outcome code belongs to."""
        return self.outcomes[outcome_code]


def _merge(base: dict, extra: dict) -> dict:
    for area, spec in (extra.get("outcome_areas") or {}).items():
        target = base["outcome_areas"].setdefault(area, {"label": spec.get("label", area)})
        target.setdefault("outcomes", {}).update(spec.get("outcomes") or {})
    return base


@cache
def load_taxonomy(extra_path: str | None = None) -> Taxonomy:
    """Load the shipped taxonomy, extended by ``extra_path`` (or ``HUB_TAXONOMY_EXTRA``)."""
    data = yaml.safe_load(DEFAULT_TAXONOMY.read_text(encoding="utf-8"))
    extra_path = extra_path or os.environ.get("HUB_TAXONOMY_EXTRA")
    if extra_path:
        data = _merge(data, yaml.safe_load(Path(extra_path).read_text(encoding="utf-8")) or {})
    areas: dict[str, str] = {}
    outcomes: dict[str, str] = {}
    labels: dict[str, str] = {}
    for area, spec in data["outcome_areas"].items():
        areas[area] = spec.get("label", area)
        for code, label in (spec.get("outcomes") or {}).items():
            if code in outcomes:
                raise ValueError(
                    f"taxonomy: outcome code '{code}' is in both {outcomes[code]} and {area}"
                )
            outcomes[code] = area
            labels[code] = label
    return Taxonomy(
        areas=areas,
        outcomes=outcomes,
        outcome_labels=labels,
        engagement_statuses=tuple(data["engagement_statuses"]),
        outcome_statuses=tuple(data["outcome_statuses"]),
    )
