"""Checkout groups over HTTP: an admin says which product groups may share one checkout."""
from __future__ import annotations

from aiohttp import web

from ...crdt.groups import GROUP_NAME
from ..errors import json_body
from ..guard import ADMINS_ONLY
from ..openapi import api, obj, string
from ..services import SERVICES

GROUP = string(1, 64, pattern=GROUP_NAME.pattern)
GROUPS = {"type": "array", "maxItems": 100, "items": GROUP}
NULLABLE_GROUPS = {"anyOf": [GROUPS, {"type": "null"}]}  # null: as if left out
RULE = obj(conflictsWith=NULLABLE_GROUPS, combinesWith=NULLABLE_GROUPS)


@api.add("PUT", "/api/checkout-groups/{group}", "Say which groups this group may (not) share a checkout with",
         auth=ADMINS_ONLY, params={"group": GROUP}, body=RULE, result=obj(("group", "conflictsWith"), group=GROUP,
                                                                           conflictsWith=GROUPS, combinesWith=GROUPS))
async def put_group(request: web.Request) -> web.Response:
    group = request.match_info["group"]
    rule = await request.app[SERVICES].groups.put(group, await json_body(request))
    return web.json_response({"group": group, **rule.to_json()})


@api.add("GET", "/api/checkout-groups", "The checkout-group rules", auth=ADMINS_ONLY,
         result=obj(("groups",), groups={"type": "object", "additionalProperties": RULE}))
async def list_groups(request: web.Request) -> web.Response:
    return web.json_response({"groups": request.app[SERVICES].groups.listing()})
