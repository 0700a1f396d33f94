"""Checkout groups: which groups of products may share one checkout, and the conflicts a cart's lines
have (DESIGN.md, "What may be bought together"). Pure: the server keeps the rules and the catalog."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .schema import Catalog

DEFAULT_GROUP = "general"
GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
Conflict = dict[str, Any]  # {lineIds, groups, message}, as `server.conflicts` shows it


class GroupError(ValueError):
    """A group rule that makes no sense (nothing is written)."""


@dataclass(frozen=True)
class GroupRule:
    """What one group says of the others: only `combines_with` (None: any group), never `conflicts_with`."""

    combines_with: frozenset[str] | None = None
    conflicts_with: frozenset[str] = frozenset()

    def allows(self, other: str) -> bool:
        return other not in self.conflicts_with and (self.combines_with is None or other in self.combines_with)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"conflictsWith": sorted(self.conflicts_with)}
        if self.combines_with is not None:
            out["combinesWith"] = sorted(self.combines_with)
        return out


def group_name(value: Any, what: str = "group") -> str:
    if not isinstance(value, str) or not GROUP_NAME.match(value):
        raise GroupError(f"{what} must be 1..64 of a-z, 0-9, '_' and '-' (starting with a letter or digit)")
    return value


def rule_from_json(group: str, body: Mapping[str, Any]) -> GroupRule:
    """`{combinesWith?: [group…], conflictsWith?: [group…]}` for `group`; a group always combines with itself."""
    group_name(group)
    unknown = set(body) - {"combinesWith", "conflictsWith"}
    if unknown:
        raise GroupError(f"unknown field(s): {', '.join(sorted(unknown))}")

    def groups(name: str) -> frozenset[str] | None:
        value = body.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > 100:
            raise GroupError(f"{name} is a list of at most 100 groups")
        return frozenset(group_name(v, f"each of {name}") for v in value)
    combines, conflicts = groups("combinesWith"), groups("conflictsWith") or frozenset()
    if group in conflicts:
        raise GroupError(f"group {group!r} names itself as a conflict: a group always combines with itself")
    if combines is not None and combines & conflicts:
        raise GroupError(f"{', '.join(sorted(combines & conflicts))}: both combines with and conflicts with {group!r}")
    return GroupRule(None if combines is None else combines - {group}, conflicts)


@dataclass(frozen=True)
class CheckoutGroups:
    """The shop's group rules. Two groups share a checkout when neither rule forbids it (symmetric);
    a group without a rule combines with any group."""

    rules: Mapping[str, GroupRule] = field(default_factory=dict)

    def combines(self, a: str, b: str) -> bool:
        if a == b:
            return True
        rule_a, rule_b = self.rules.get(a), self.rules.get(b)
        return (rule_a is None or rule_a.allows(b)) and (rule_b is None or rule_b.allows(a))

    def conflicts(self, line_skus: Iterable[tuple[str, Any]], catalog: Catalog) -> list[Conflict]:
        """Which lines cannot be checked out together and why: one entry per pair of groups that do
        not combine, naming every line of both (sorted, so the same cart always gives the same list)."""
        if not self.rules:
            return []
        lines: dict[str, list[str]] = {}
        names: dict[str, list[str]] = {}
        for line_id, sku in sorted(line_skus):
            product = catalog(sku) if isinstance(sku, str) else None
            group = product.checkout_group if product else DEFAULT_GROUP
            lines.setdefault(group, []).append(line_id)
            name = product.name if product and product.name else str(sku)
            if name not in names.setdefault(group, []):
                names[group].append(name)
        found: list[Conflict] = []
        groups = sorted(lines)
        for i, a in enumerate(groups):
            for b in groups[i + 1:]:
                if not self.combines(a, b):
                    found.append({
                        "lineIds": sorted(lines[a] + lines[b]), "groups": [a, b],
                        "message": f"{', '.join(names[a])} ({a}) cannot be checked out together with "
                                   f"{', '.join(names[b])} ({b}): check them out separately"})
        return found


NO_GROUPS = CheckoutGroups()
