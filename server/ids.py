"""The ids and short codes the server makes: unguessable ids, and codes a person types at a till."""
from __future__ import annotations

import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread at a till
CODE_LENGTH = 6


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(12)


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
