"""Records and scored pairs -> people: constrained clustering and stable person keys.

Plain connected components at a threshold let one weak chain glue two people together: twin A
matches a record with no birth date, which matches twin B. So links are added strongest
first (a person's decision, then deterministic rules, then the model's probability) and a
link is refused when the two groups it would join hold a *cannot-link* pair (two records the
guards or a reviewer say are different people), or when the join would put a record without
consent to share in a group spanning members. This is greedy single-linkage with
constraints: deterministic for the same input, linear in the number of links.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

METHOD_RANK = {"manual": 0, "deterministic": 1, "probabilistic": 2}


@dataclass(frozen=True)
class Link:
    """An accepted link between record indexes ``left`` and ``right``."""

    left: int
    right: int
    probability: float
    method: str  # manual | deterministic | probabilistic


@dataclass
class Clusters:
    """The outcome: a group per record, and how each record was attached."""

    group: list[int]  # record index -> representative record index
    probability: list[float]  # the strongest accepted link the record has (1.0 alone)
    method: list[str]  # how that link was made ("deterministic" when alone)
    refused: list[tuple[Link, str]] = field(default_factory=list)  # links not taken, why


def cluster(
    orgs: Sequence[str],
    consent: Sequence[bool],
    links: Iterable[Link],
    cannot_link: Iterable[tuple[int, int]],
) -> Clusters:
    """Group records by links, strongest first, honouring cannot-link pairs and consent."""
    n = len(orgs)
    parent = list(range(n))
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    member_orgs: dict[int, set[str]] = {i: {orgs[i]} for i in range(n)}
    private: dict[int, bool] = {i: not consent[i] for i in range(n)}
    apart: dict[int, set[int]] = {}
    for a, b in cannot_link:
        apart.setdefault(a, set()).add(b)
        apart.setdefault(b, set()).add(a)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    best_p = [1.0] * n
    best_m = ["deterministic"] * n
    attached = [False] * n
    refused: list[tuple[Link, str]] = []
    ordered = sorted(links, key=lambda k: (METHOD_RANK[k.method], -k.probability, k.left, k.right))
    for link in ordered:
        ra, rb = find(link.left), find(link.right)
        if ra != rb:
            small, big = (ra, rb) if len(members[ra]) <= len(members[rb]) else (rb, ra)
            conflict = False
            for record in members[small]:
                partners = apart.get(record)
                if partners and any(find(p) == big for p in partners):
                    conflict = True
                    break
            if conflict:
                refused.append((link, "cannot_link"))
                continue
            orgs_after = member_orgs[small] | member_orgs[big]
            if len(orgs_after) > 1 and (private[small] or private[big]):
                refused.append((link, "consent"))
                continue
            parent[small] = big
            members[big].extend(members.pop(small))
            member_orgs[big] = orgs_after
            private[big] = private[big] or private.pop(small)
            member_orgs.pop(small)
        for record in (link.left, link.right):
            if not attached[record] or (
                METHOD_RANK[link.method],
                -link.probability,
            ) < (METHOD_RANK[best_m[record]], -best_p[record]):
                best_p[record], best_m[record] = link.probability, link.method
                attached[record] = True
    return Clusters([find(i) for i in range(n)], best_p, best_m, refused)


@dataclass(frozen=True)
class KeyChange:
    """One line of ``hub.person_key_history``: why a person key appeared, grew or went."""

    person_key: str
    change: str  # created | merged | split | retired
    other_key: str | None
    records: int


def new_person_key() -> str:
    """A fresh pseudonymous key: random, so it says nothing about the person or the record."""
    return "p_" + secrets.token_hex(8)


def assign_keys(
    group: Sequence[int], previous: Sequence[str | None], known_keys: Iterable[str] = ()
) -> tuple[list[str], list[KeyChange]]:
    """Give each group a person key, keeping the keys records already had.

    A group keeps the previous key most of its records carried (ties: the smaller key). When
    several groups claim one key (a person split), the group with most of its records keeps it
    and the others get new keys (``split`` from it); keys a group absorbs are ``merged`` into
    the one it keeps; keys nobody keeps any more (``known_keys`` adds those whose records
    were all deleted) are ``retired``.
    """
    by_group: dict[int, list[int]] = {}
    for i, g in enumerate(group):
        by_group.setdefault(g, []).append(i)
    claims: dict[int, dict[str, int]] = {}
    for g, records in by_group.items():
        counts: dict[str, int] = {}
        for i in records:
            key = previous[i]
            if key:
                counts[key] = counts.get(key, 0) + 1
        claims[g] = counts
    # Each previous key goes to the group holding most of its records (ties: smallest group id).
    holder: dict[str, tuple[int, int]] = {}
    for g, counts in claims.items():
        for key, count in counts.items():
            best = holder.get(key)
            if best is None or (count, -g) > (best[1], -best[0]):
                holder[key] = (g, count)
    group_key: dict[int, str] = {}
    changes: list[KeyChange] = []
    for g in sorted(by_group):
        counts = claims[g]
        mine = sorted((k for k in counts if holder[k][0] == g), key=lambda k: (-counts[k], k))
        if mine:
            key = mine[0]
            for absorbed in mine[1:]:
                changes.append(KeyChange(absorbed, "merged", key, counts[absorbed]))
        else:
            key = new_person_key()
            origin = sorted(counts, key=lambda k: (-counts[k], k))
            if origin:
                changes.append(KeyChange(key, "split", origin[0], len(by_group[g])))
            else:
                changes.append(KeyChange(key, "created", None, len(by_group[g])))
        group_key[g] = key
    kept = set(group_key.values()) | {c.person_key for c in changes if c.change == "merged"}
    for key in sorted(({k for k in previous if k} | set(known_keys)) - kept):
        changes.append(KeyChange(key, "retired", None, 0))
    return [group_key[g] for g in group], changes
