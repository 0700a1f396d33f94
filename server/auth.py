"""Tokens (JWT HS256 via PyJWT) and the identity they carry."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import jwt

ROLES = ("customer", "assistant", "operator", "kiosk", "admin")
ALGORITHM = "HS256"
TIME_CLAIMS = ("exp", "iat", "nbf")


@dataclass(frozen=True)
class Identity:
    sub: str
    role: str
    exp: float | None = field(default=None, compare=False)  # when the token runs out (Unix seconds)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class TokenError(Exception):
    """No token, or one that is malformed, forged, of another algorithm or expired."""


def load_or_create_secret(data_dir: Path) -> str:
    """The secret kept in the data dir, created on first use so `token` and `serve` agree."""
    path = data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret


def mint(secret: str, sub: str, role: str, ttl_seconds: int = 3600, **claims: object) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    now = int(time.time())
    payload = {"sub": sub, "role": role, "iat": now, "exp": now + ttl_seconds, **claims}
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str | None) -> Identity:
    if not token:
        raise TokenError("no token")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["sub", "role", "exp"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token: {exc}") from None
    # PyJWT reads times with int(), so "exp": "1893456000" would pass; RFC 7519 says a NumericDate is a JSON number.
    for name in TIME_CLAIMS:
        if name in claims and type(claims[name]) not in (int, float):  # bool is no number here
            raise TokenError(f"invalid token: {name} must be a number (RFC 7519 NumericDate)")
    role = claims["role"]
    if role not in ROLES or not isinstance(claims["sub"], str) or not claims["sub"]:
        raise TokenError("invalid token: bad sub or role")
    return Identity(claims["sub"], role, float(claims["exp"]))
