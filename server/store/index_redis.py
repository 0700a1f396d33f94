"""The shop index in Redis without modules: sorted sets of orders, of search terms (by prefix), of buyers per SKU.

Every key carries the `{x}` hash tag, so each script (and each multi-key read) stays on one slot
of a Redis Cluster, as the records of one kind do. Keys (after the store's prefix):
`{x}:o` hash id -> order JSON; `{x}:o:all`, `{x}:o:c:<customer>`, `{x}:o:s:<status>` zsets of
`<createdAt:13>|<id>` (scores 0: ordered by member); `{x}:c:<id>` a customer's hash; `{x}:ids` zset
of customer ids; `{x}:terms` zset of `<term>\\0<id>` (prefix ranges by ZRANGEBYLEX); `{x}:last`
zset id -> last order ms; `{x}:sku:<sku>` and `{x}:cat:<category>` zsets id -> last bought ms;
`{x}:skuid:<sku>`, `{x}:catid:<category>` the same buyers by id (scores 0); `{x}:paid` set of counted
order ids; `{x}:cancelled` those of them taken off again.
"""
from __future__ import annotations

from typing import Any

import orjson

from .index import (
    CustomerQuery, OrderQuery, Page, Purchase, customer_json, customer_terms, order_key, since_key,
)
from .redis import RedisStore

# KEYS: order hash, all, by customer, new status, old status (may equal new). ARGV: id, json, member.
PUT_ORDER = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[3])
if KEYS[5] ~= KEYS[4] then redis.call('ZREM', KEYS[5], ARGV[3]) end
redis.call('ZADD', KEYS[4], 0, ARGV[3])
"""

# KEYS: customer hash, ids, terms, last, paid set, then per SKU and per category two zsets: buyers by
# time (score: last bought) and buyers by id (score 0: ordered by id, for paging without a date).
# ARGV: one JSON change {id, version, set, drop_terms, add_terms, order?, total?, at?}.
# Applied only if the customer is still at `version` (else 'retry': the caller re-reads), and a
# purchase only once per order ('seen').
CHANGE_CUSTOMER = """
local p = cjson.decode(ARGV[1])
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= p.version then return 'retry' end
if p.order then
  if redis.call('SADD', KEYS[5], p.order) == 0 then return 'seen' end
  redis.call('HINCRBY', KEYS[1], 'orders', 1)
  redis.call('HINCRBY', KEYS[1], 'spent', p.total)
  local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '-1')
  if p.at > last then
    redis.call('HSET', KEYS[1], 'last', p.at)
    redis.call('ZADD', KEYS[4], p.at, p.id)
  end
  for i = 6, #KEYS, 2 do
    redis.call('ZADD', KEYS[i], 'GT', p.at, p.id)
    redis.call('ZADD', KEYS[i + 1], 0, p.id)
  end
end
for _, t in ipairs(p.drop_terms) do redis.call('ZREM', KEYS[3], t .. '\\0' .. p.id) end
for _, t in ipairs(p.add_terms) do redis.call('ZADD', KEYS[3], 0, t .. '\\0' .. p.id) end
for k, value in pairs(p.set) do redis.call('HSET', KEYS[1], k, value) end
redis.call('HSET', KEYS[1], 'v', v + 1)
redis.call('ZADD', KEYS[2], 0, p.id)
return 'ok'
"""

# KEYS: customer hash, paid set, cancelled set. ARGV: order id, total. Takes a counted order off once.
CANCEL_PURCHASE = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'orders', -1)
redis.call('HINCRBY', KEYS[1], 'spent', -tonumber(ARGV[2]))
return 1
"""

RETRIES = 50  # optimistic writes of one customer racing each other: each round one of them wins


def _s(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


class RedisIndex:
    def __init__(self, store: RedisStore) -> None:
        self.r, self.prefix = store.r, store.keys.prefix
        self._put_order = self.r.register_script(PUT_ORDER)
        self._change = self.r.register_script(CHANGE_CUSTOMER)
        self._cancel = self.r.register_script(CANCEL_PURCHASE)
        from .redis_cluster import RedisClusterStore, ReplicatedScript

        # On a cluster every write is acknowledged only once a replica has it (so no bulk pipelines).
        self._replicated = isinstance(store, RedisClusterStore)
        if self._replicated:
            self._put_order = ReplicatedScript(self.r, self._put_order, store.replicas)  # type: ignore[assignment]
            self._change = ReplicatedScript(self.r, self._change, store.replicas)  # type: ignore[assignment]
            self._cancel = ReplicatedScript(self.r, self._cancel, store.replicas)  # type: ignore[assignment]

    def k(self, name: str) -> str:
        return f"{self.prefix}{{x}}:{name}"

    async def open(self) -> None:
        if not self._replicated:  # the bulk writes call it by its sha
            await self.r.script_load(CHANGE_CUSTOMER)

    # -- orders -----------------------------------------------------------------

    async def put_order(self, order: dict[str, Any]) -> None:
        status = order.get("status") or order["state"]
        old = await self.r.hget(self.k("o"), order["id"])
        old_status = (orjson.loads(old).get("status") or orjson.loads(old)["state"]) if old else status
        await self._put_order([self.k("o"), self.k("o:all"), self.k(f"o:c:{order['customerId']}"),
                               self.k(f"o:s:{status}"), self.k(f"o:s:{old_status}")],
                              [order["id"], orjson.dumps(order), order_key(order)])

    async def list_orders(self, query: OrderQuery) -> Page:
        index = (self.k(f"o:c:{query.customer}") if query.customer is not None
                 else self.k(f"o:s:{query.status}") if query.status is not None else self.k("o:all"))
        low = b"[" + since_key(query.since).encode() if query.since is not None else b"-"
        high = b"(" + query.cursor.encode() if query.cursor else b"+"
        page, want, batch = Page(), query.limit + 1, max(query.limit + 1, 32)
        found: list[tuple[str, dict[str, Any]]] = []
        while len(found) < want:
            members = await self.r.zrevrangebylex(index, high, low, start=0, num=batch)
            if not members:
                break
            values = await self.r.hmget(self.k("o"), [m.split(b"|", 1)[1] for m in members])
            for member, value in zip(members, values):
                order = orjson.loads(value) if value is not None else None
                if order is not None and (query.status is None or (order.get("status") or order["state"]) == query.status):
                    found.append((member.decode(), order))
            high = b"(" + members[-1]
            if len(members) < batch:
                break
        page.items = [order for _, order in found[:query.limit]]
        if len(found) > query.limit:
            page.next = found[query.limit - 1][0]
        return page

    # -- customers --------------------------------------------------------------

    async def _read(self, customer_id: str) -> dict[bytes, bytes]:
        return await self.r.hgetall(self.k(f"c:{customer_id}"))

    @staticmethod
    def _json(customer_id: str, row: dict[bytes, bytes]) -> dict[str, Any]:
        return customer_json({"id": customer_id, "name": _s(row.get(b"name")), "email": _s(row.get(b"email")),
                              "phone": _s(row.get(b"phone")), "marketingConsent": row.get(b"consent") == b"1",
                              "orders": row.get(b"orders"), "spent": row.get(b"spent"),
                              "lastOrderAt": row.get(b"last")})

    async def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        row = await self._read(customer_id)
        return self._json(customer_id, row) if row else None

    def _plan(self, customer_id: str, row: dict[bytes, bytes], fill: dict[str, str], purchase: Purchase | None,
              overwrite: bool) -> tuple[list[str], list[bytes]]:
        """The CHANGE_CUSTOMER call that writes a profile change (and a purchase) on top of `row`."""
        current = {k: _s(row.get(k.encode())) for k in ("name", "email", "phone")}
        changes = {k: v for k, v in fill.items() if overwrite or not current.get(k)}
        merged = {**current, **{k: v for k, v in changes.items() if k in current}}
        old_terms = orjson.loads(row[b"terms"]) if b"terms" in row else []
        terms = sorted(customer_terms(merged["name"], merged["email"], merged["phone"]))
        change: dict[str, Any] = {
            "id": customer_id, "version": int(row.get(b"v") or 0), "set": {**changes, "terms": orjson.dumps(terms).decode()},
            "drop_terms": [t for t in old_terms if t not in terms], "add_terms": terms}
        keys = [self.k(f"c:{customer_id}"), self.k("ids"), self.k("terms"), self.k("last"), self.k("paid")]
        if purchase is not None:
            change.update(order=purchase.order_id, total=purchase.total, at=purchase.at)
            for sku in sorted(set(purchase.skus)):
                keys += [self.k(f"sku:{sku}"), self.k(f"skuid:{sku}")]
            for category in sorted(set(purchase.categories)):
                keys += [self.k(f"cat:{category}"), self.k(f"catid:{category}")]
        return keys, [orjson.dumps(change)]

    async def _apply(self, customer_id: str, fill: dict[str, str], purchase: Purchase | None,
                     overwrite: bool) -> str:
        """Writes a profile change (and a purchase) with the terms it implies, retrying races."""
        for _ in range(RETRIES):
            keys, args = self._plan(customer_id, await self._read(customer_id), fill, purchase, overwrite)
            outcome = (await self._change(keys, args)).decode()
            if outcome != "retry":
                return outcome
        raise RuntimeError(f"customer {customer_id} changed {RETRIES} times while being written")

    async def _apply_many(self, items: list[tuple[str, dict[str, str], Purchase | None, bool]]) -> list[str]:
        """`_apply` for many: one round trip reads them all, one writes them all; whatever raced (the
        same customer twice in the batch, another writer) or met an empty script cache goes one by one."""
        if self._replicated or not items:
            return [await self._apply(*item) for item in items]
        async with self.r.pipeline(transaction=False) as pipe:
            for customer_id, *_ in items:
                pipe.hgetall(self.k(f"c:{customer_id}"))
            rows = await pipe.execute()
        async with self.r.pipeline(transaction=False) as pipe:
            for (customer_id, fill, purchase, overwrite), row in zip(items, rows):
                keys, args = self._plan(customer_id, row, fill, purchase, overwrite)
                pipe.evalsha(self._change.sha, len(keys), *keys, *args)
            replies = await pipe.execute(raise_on_error=False)
        out = []
        for item, reply in zip(items, replies):
            done = not isinstance(reply, BaseException) and reply != b"retry"
            out.append(reply.decode() if done else await self._apply(*item))
        return out

    async def put_customers(self, profiles: dict[str, dict[str, Any]]) -> None:
        await self._apply_many([(c, self._fill(p), None, True) for c, p in profiles.items()])

    async def add_purchases(self, purchases: list[Purchase]) -> int:
        outcomes = await self._apply_many([(p.customer, self._purchase_fill(p), p, False) for p in purchases])
        return outcomes.count("ok")

    @staticmethod
    def _fill(profile: dict[str, Any]) -> dict[str, str]:
        fill = {k: profile[k] or "" for k in ("name", "email", "phone") if k in profile}
        if "marketingConsent" in profile:
            fill["consent"] = "1" if profile["marketingConsent"] else "0"
        return fill

    @staticmethod
    def _purchase_fill(purchase: Purchase) -> dict[str, str]:
        return {k: v for k, v in (("name", purchase.name), ("email", purchase.email)) if v}

    async def put_customer(self, customer_id: str, profile: dict[str, Any]) -> dict[str, Any]:
        await self._apply(customer_id, self._fill(profile), None, overwrite=True)
        return self._json(customer_id, await self._read(customer_id))

    async def add_purchase(self, purchase: Purchase) -> bool:
        return await self._apply(purchase.customer, self._purchase_fill(purchase), purchase, overwrite=False) == "ok"

    async def cancel_purchase(self, purchase: Purchase) -> bool:
        keys = [self.k(f"c:{purchase.customer}"), self.k("paid"), self.k("cancelled")]
        return bool(await self._cancel(keys, [purchase.order_id, purchase.total]))

    async def _by_score(self, key: str, since: int | None) -> set[bytes]:
        return set(await self.r.zrangebyscore(key, since if since is not None else "-inf", "+inf"))

    async def _bought_by_id(self, query: CustomerQuery) -> list[bytes]:
        """Buyers of some SKUs (or of a category) alone, no date: each value's buyers by id, the first
        page of each, merged (a best seller with 60,000 buyers costs what a rare one does)."""
        keys = ([self.k(f"skuid:{s}") for s in query.bought] if query.bought
                else [self.k(f"catid:{query.category}")])
        low = b"(" + query.cursor.encode() if query.cursor else b"-"
        async with self.r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrangebylex(key, low, b"+", start=0, num=query.limit + 1)
            pages = await pipe.execute()
        return sorted({i for page in pages for i in page})[:query.limit + 1]

    async def search_customers(self, query: CustomerQuery) -> Page:
        if not query.tokens and query.since is None and bool(query.bought) != (query.category is not None):
            return await self._page(query, await self._bought_by_id(query))
        sets: list[set[bytes]] = []
        for token in query.tokens:
            t = token.encode()
            members = await self.r.zrangebylex(self.k("terms"), b"[" + t, b"(" + t + b"\xff")
            sets.append({m.rsplit(b"\0", 1)[1] for m in members})
        if query.bought:
            found: set[bytes] = set()
            for sku in query.bought:
                found |= await self._by_score(self.k(f"sku:{sku}"), query.since)
            sets.append(found)
        if query.category is not None:
            sets.append(await self._by_score(self.k(f"cat:{query.category}"), query.since))
        if query.since is not None and not query.bought and query.category is None:
            sets.append(await self._by_score(self.k("last"), query.since))
        after = (query.cursor or "").encode()
        if sets:
            ids = sorted(i for i in set.intersection(*sets) if i > after)[:query.limit + 1]
        else:
            ids = await self.r.zrangebylex(self.k("ids"), b"(" + after if after else b"-", b"+",
                                           start=0, num=query.limit + 1)
        return await self._page(query, ids)

    async def _page(self, query: CustomerQuery, ids: list[bytes]) -> Page:
        async with self.r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(self.k(f"c:{i.decode()}"))
            rows = await pipe.execute()
        page = Page([self._json(i.decode(), row) for i, row in zip(ids, rows) if row][:query.limit])
        if len(ids) > query.limit:
            page.next = page.items[-1]["id"]
        return page
