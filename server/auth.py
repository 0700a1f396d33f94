"""Tokens (JWT HS256 via PyJWT), the caller's identity, and who may open which cart."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import jwt
from aiohttp import web

from .appkeys import TOKENS
from .errors import ApiError

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


def bearer(request: web.Request) -> Identity:
    """The identity behind `Authorization: Bearer …`, or a 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        token = ""
    try:
        return request.app[TOKENS].verify(token.strip())
    except TokenError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None


def verify_for(app: web.Application, token: str | None) -> Identity:
    """The identity behind a token from elsewhere than the header (`?token=`, a request body)."""
    return app[TOKENS].verify(token)


def token_of(request: web.Request) -> str:
    """The token a request carries: `Authorization: Bearer …`, else `?token=`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else request.query.get("token", "")


@web.middleware
async def provider_keys(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Before a handler reads a token, the identity provider's key it names is fetched if unknown
    (bounded; see tokens.JwksCache), so the handlers' checks stay synchronous."""
    await request.app[TOKENS].prepare(token_of(request))
    return await handler(request)
