"""Checkout groups: the shop's rules of which product groups may share one checkout (kept in the store,
a copy in every process, which re-settles its open carts' `server.conflicts` when they change)."""
from __future__ import annotations

from typing import Any

from ..crdt.groups import CheckoutGroups, GroupError, GroupRule, rule_from_json
from .bus import Bus
from .refusals import Invalid
from .store import Store

TOPIC = "checkout-groups"


class GroupBook:
    """The rules as every process's rooms read them (`current`), reloaded when any process changes one."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store, self.bus = store, bus
        self.current = CheckoutGroups()

    async def load(self, _event: Any = None) -> CheckoutGroups:
        stored = await self.store.list_records("checkout-group")
        self.current = CheckoutGroups({group: rule_from_json(group, body) for group, body in stored.items()})
        return self.current

    def get(self) -> CheckoutGroups:
        return self.current

    def listing(self) -> dict[str, dict[str, Any]]:
        return {group: rule.to_json() for group, rule in sorted(self.current.rules.items())}

    async def put(self, group: str, body: Any) -> GroupRule:
        """Defines (or redefines) what `group` combines with; every process re-settles its carts."""
        if not isinstance(body, dict):
            raise Invalid("bad_group", "the body is an object {combinesWith?, conflictsWith?}")
        try:
            rule = rule_from_json(group, body)
        except GroupError as exc:
            raise Invalid("bad_group", str(exc)) from None
        await self.store.put_record("checkout-group", group, rule.to_json())
        self.current = CheckoutGroups({**self.current.rules, group: rule})
        self.bus.publish_event(TOPIC, {"group": group})
        return rule
