"""Nudge rules over HTTP: an admin defines, lists and deletes them (`server/nudges.py` runs them)."""
from __future__ import annotations

from aiohttp import web

from ..errors import json_body
from ..guard import ADMINS_ONLY
from ..nudges import ACTIONS, EVENTS, MAX_MINUTES
from ..openapi import AMOUNT, STRING, api, integer, obj, string
from ..services import SERVICES

WHEN = obj(("event", "minutes"), event={"enum": list(EVENTS)},
           minutes={"type": "number", "exclusiveMinimum": 0, "maximum": MAX_MINUTES})
THEN = obj(("action",), action={"enum": list(ACTIONS)}, code=string(1, 64, pattern=r"\S"),
           percentOff=integer(1, 100), amountOff=AMOUNT)
RULE = obj(("when", "then"), when=WHEN, then=THEN)
RULE_ID = string(1, 64)


@api.add("PUT", "/api/rules/{ruleId}", "Define a nudge rule (fires at most once per cart)", auth=ADMINS_ONLY,
         params={"ruleId": RULE_ID}, body=RULE, result=obj(("id", "when", "then"), id=STRING, when=WHEN, then=THEN))
async def put_rule(request: web.Request) -> web.Response:
    rule = await request.app[SERVICES].nudges.put(request.match_info["ruleId"], await json_body(request))
    return web.json_response(rule.to_json())


@api.add("GET", "/api/rules", "The nudge rules", auth=ADMINS_ONLY,
         result=obj(("rules",), rules={"type": "array", "items": obj(("id", "when", "then"), id=STRING, when=WHEN,
                                                                      then=THEN)}))
async def list_rules(request: web.Request) -> web.Response:
    return web.json_response({"rules": request.app[SERVICES].nudges.listing()})


@api.add("DELETE", "/api/rules/{ruleId}", "Delete a nudge rule", auth=ADMINS_ONLY, params={"ruleId": RULE_ID},
         errors=(404,), result=obj(("id", "deleted"), id=STRING, deleted={"type": "boolean"}))
async def delete_rule(request: web.Request) -> web.Response:
    rule_id = request.match_info["ruleId"]
    await request.app[SERVICES].nudges.delete(rule_id)
    return web.json_response({"id": rule_id, "deleted": True})
