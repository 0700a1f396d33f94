"""The demo's sign-in: a few demo people, each with a token minted by a demo-only endpoint.

Only `livecart demo` mounts these routes (`add_demo_routes`); `livecart serve` has no way to mint
a token without the secret, as the host platform owns identity there.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from aiohttp import web

from . import auth
from .appkeys import CONFIG
from .errors import ApiError, json_body
from .openapi import ApiRoutes, STRING, obj

DEMO_TOKEN_TTL = 8 * 3600


@dataclass(frozen=True)
class DemoPerson:
    id: str
    sub: str
    role: str
    name: str
    about: str


DEMO_PEOPLE = (
    DemoPerson("customer", "ada", "customer", "Ada", "a customer with her own cart and orders"),
    DemoPerson("assistant", "sam", "assistant", "Sam", "a shop assistant on the store tablet"),
    DemoPerson("operator", "olivia", "operator", "Olivia", "a call-centre operator"),
    DemoPerson("admin", "root", "admin", "Root", "the shop admin on the shop floor"),
    DemoPerson("kiosk", "front-door", "kiosk", "Front-door kiosk", "the kiosk by the front door"),
)


def demo_session(secret: str, person_id: str) -> dict[str, str]:
    """A token for one demo person; ValueError for anyone else."""
    person = next((p for p in DEMO_PEOPLE if p.id == person_id), None)
    if person is None:
        raise ValueError(f"no demo person {person_id!r} (one of {', '.join(p.id for p in DEMO_PEOPLE)})")
    token = auth.mint(secret, person.sub, person.role, ttl_seconds=DEMO_TOKEN_TTL)
    return {"token": token, "person": person.id, "sub": person.sub, "role": person.role}


demo_api = ApiRoutes()  # only a demo app registers these
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
    try:
        session = demo_session(request.app[CONFIG].jwt_secret, str(person))
    except ValueError as exc:
        raise ApiError(400, "unknown_person", str(exc)) from None
    return web.json_response(session, status=201)


def add_demo_routes(app: web.Application) -> None:
    app.add_routes(demo_api.routes)
