"""The demo's sign-in over HTTP: who one may be, and their token. Mounted by a demo app only (`add_demo_routes`),
so neither route nor its entry in the OpenAPI document exists under `livecart serve`."""
from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from .. import auth
from ..demo_people import DEMO_PEOPLE, demo_session
from ..errors import json_body
from ..openapi import STRING, ApiRoutes, obj
from ..services import SERVICES

demo_api = ApiRoutes()  # not the shop's `api`: only a demo app registers these
PERSON = obj(("id", "sub", "role", "name", "about"), id=STRING, sub=STRING, role={"enum": list(auth.ROLES)},
             name=STRING, about=STRING)


@demo_api.add("GET", "/api/demo/people", "The demo people one may sign in as (demo only)", auth=None,
              result=obj(("people",), people={"type": "array", "items": PERSON}))
async def demo_people(request: web.Request) -> web.Response:
    return web.json_response({"people": [asdict(p) for p in DEMO_PEOPLE]})


@demo_api.add("POST", "/api/demo/sessions", "Sign in as a demo person: a token for them (demo only)", auth=None,
              ok=201, body=obj(("person",), person={"enum": [p.id for p in DEMO_PEOPLE]}),
              result=obj(("token", "person", "sub", "role"), token=STRING, person=STRING, sub=STRING, role=STRING))
async def demo_sign_in(request: web.Request) -> web.Response:
    person = (await json_body(request)).get("person")
    return web.json_response(demo_session(request.app[SERVICES].config.jwt_secret, person), status=201)


def add_demo_routes(app: web.Application) -> None:
    app.add_routes(demo_api.routes)
