"""The demo's sign-in: a few demo people, and a token minted for one of them (`livecart demo` only).

Only a demo app mounts its route (`server/routes/demo.py`); `livecart serve` has no way to mint a
token without the secret, as the host platform owns identity there.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import auth
from .refusals import Invalid

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


def demo_session(secret: str, person_id: object) -> dict[str, str]:
    """A token for one demo person; Invalid (`unknown_person`) for anyone else."""
    person = next((p for p in DEMO_PEOPLE if p.id == person_id), None)
    if person is None:
        raise Invalid("unknown_person",
                      f"no demo person {person_id!r} (one of {', '.join(p.id for p in DEMO_PEOPLE)})")
    token = auth.mint(secret, person.sub, person.role, ttl_seconds=DEMO_TOKEN_TTL)
    return {"token": token, "person": person.id, "sub": person.sub, "role": person.role}
