"""Which tokens the server believes: its own HS256 tokens, and an identity provider's (PEM key or JWKS)."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .auth import ALGORITHM, ROLES, TIME_CLAIMS, Identity, TokenError

log = logging.getLogger("livecart.tokens")

# The asymmetric algorithms accepted from an identity provider, each tied to its key type, so a
# key is only ever used with the one algorithm it was made for (no algorithm confusion).
PROVIDER_ALGORITHMS = ("RS256", "ES256", "EdDSA")


def algorithm_for(key: Any) -> str:
    """The one algorithm a public key verifies; anything else is refused when the key is loaded."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise ValueError(f"unsupported public key {type(key).__name__} (RSA, EC P-256 or Ed25519)")


@dataclass(frozen=True)
class PublicKey:
    key: Any
    algorithm: str


def load_pem(pem: str | bytes) -> PublicKey:
    """A PEM public key (`--jwt-public-key`), or a ValueError saying why not."""
    data = pem.encode() if isinstance(pem, str) else pem
    key = load_pem_public_key(data)
    return PublicKey(key, algorithm_for(key))


def parse_jwks(document: Any) -> dict[str, PublicKey]:
    """The usable signing keys of a JWKS document by kid; a ValueError if it is not a JWKS at all."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: dict[str, PublicKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid"), str):
            continue
        try:
            key = jwt.PyJWK(entry).key
            public = PublicKey(key, algorithm_for(key))
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            log.warning("JWKS key %r skipped: %s", entry.get("kid"), exc)
            continue
        if entry.get("alg") not in (None, public.algorithm):  # a key announced for another algorithm
            log.warning("JWKS key %r skipped: alg %r does not fit its key type", entry["kid"], entry.get("alg"))
            continue
        keys[entry["kid"]] = public
    return keys


@dataclass
class JwksCache:
    """An identity provider's keys, fetched from its JWKS URL and kept; fetched again when a token
    names a kid not in the cache, at most once per `min_interval` seconds, one fetch at a time,
    each bounded by `timeout`. A provider that is down, slow or answers garbage leaves the keys
    already cached in use."""

    url: str
    min_interval: float = 30.0
    timeout: float = 5.0
    keys: dict[str, PublicKey] = field(default_factory=dict)
    fetches: int = 0
    _last_try: float = float("-inf")
    _inflight: asyncio.Future[None] | None = None

    async def refresh(self) -> None:
        """Fetches the keys unless a fetch ran less than `min_interval` ago (then waits for it, if running)."""
        if self._inflight is not None and not self._inflight.done():
            await asyncio.shield(self._inflight)
            return
        if time.monotonic() - self._last_try < self.min_interval:
            return
        self._last_try = time.monotonic()
        self._inflight = asyncio.ensure_future(self._fetch())
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        import aiohttp

        self.fetches += 1
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(self.url, headers={"Accept": "application/json"}) as response:
                    response.raise_for_status()
                    body = await response.read()
            keys = parse_jwks(json.loads(body))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, UnicodeDecodeError) as exc:
            log.warning("JWKS %s: fetch failed (%s); keeping %d cached key(s)", self.url,
                        str(exc) or type(exc).__name__, len(self.keys))
            return
        finally:
            self._last_try = time.monotonic()  # the bound runs from the end of a slow fetch too
        log.info("JWKS %s: %d key(s)", self.url, len(keys))
        self.keys = keys


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (Keycloak's `realm_access.roles`)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _role(value: Any) -> str | None:
    """The livecart role a claim names: a role string, or the first livecart role in a list of them."""
    if isinstance(value, str):
        return value if value in ROLES else None
    if isinstance(value, list):
        return next((v for v in value if isinstance(v, str) and v in ROLES), None)
    return None


@dataclass
class TokenVerifier:
    """Turns a token into an Identity or a TokenError. HS256 tokens are the server's own (signed with
    `secret`: anonymous sessions, `livecart token`); RS256/ES256/EdDSA tokens are an identity
    provider's, checked against `public_key` or the JWKS, with its issuer, audience and role claim."""

    secret: str
    public_key: PublicKey | None = None
    jwks: JwksCache | None = None
    issuer: str = ""
    audience: str = ""
    role_claim: str = "role"
    clock: Callable[[], float] = time.time

    @property
    def has_provider(self) -> bool:
        return self.public_key is not None or self.jwks is not None

    async def prepare(self, token: str | None) -> None:
        """Makes sure the key a provider's token names is known: fetches the JWKS on an unknown kid
        (bounded). Call before `verify` wherever a token arrives; `verify` itself never waits."""
        if self.jwks is None or not token:
            return
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            return
        kid = header.get("kid")
        if header.get("alg") in PROVIDER_ALGORITHMS and isinstance(kid, str) and kid not in self.jwks.keys:
            await self.jwks.refresh()

    def verify(self, token: str | None) -> Identity:
        if not token:
            raise TokenError("no token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        alg = header.get("alg")
        if alg == ALGORITHM:
            claims = self._decode(token, self.secret, ALGORITHM, provider=False)
            return self._identity(claims, "role")
        if alg in PROVIDER_ALGORITHMS and self.has_provider:
            key = self._key_for(header)
            if key.algorithm != alg:  # e.g. an RS256 header over an EC key: never let the header choose
                raise TokenError(f"invalid token: algorithm {alg} does not fit the key")
            claims = self._decode(token, key.key, key.algorithm, provider=True)
            return self._identity(claims, self.role_claim)
        raise TokenError(f"invalid token: algorithm {alg!r} is not accepted")

    def _key_for(self, header: dict[str, Any]) -> PublicKey:
        kid = header.get("kid")
        if self.jwks is not None:
            if not isinstance(kid, str):
                raise TokenError("invalid token: no kid")
            key = self.jwks.keys.get(kid)
            if key is not None:
                return key
            if self.public_key is None:
                raise TokenError(f"invalid token: unknown kid {kid!r}")
        assert self.public_key is not None
        return self.public_key

    def _decode(self, token: str, key: Any, algorithm: str, provider: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"require": ["sub", "exp"] + (["role"] if not provider else [])}
        kwargs: dict[str, Any] = {}
        if provider and self.issuer:
            options["require"].append("iss")
            kwargs["issuer"] = self.issuer
        if provider and self.audience:
            options["require"].append("aud")
            kwargs["audience"] = self.audience
        else:
            options["verify_aud"] = False  # the server's own tokens carry no audience
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], options=options, **kwargs)
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        # PyJWT reads times with int(), so "exp": "1893456000" would pass; RFC 7519 says a NumericDate is a JSON number.
        for name in TIME_CLAIMS:
            if name in claims and type(claims[name]) not in (int, float):  # bool is no number here
                raise TokenError(f"invalid token: {name} must be a number (RFC 7519 NumericDate)")
        return claims

    def _identity(self, claims: dict[str, Any], role_claim: str) -> Identity:
        role = _role(_claim(claims, role_claim))
        if role is None:
            raise TokenError(f"invalid token: no livecart role in claim {role_claim!r}")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise TokenError("invalid token: bad sub")
        return Identity(claims["sub"], role, float(claims["exp"]))

    async def start(self) -> None:
        """Fetches the JWKS once at start-up (a provider that is down then is tried again on use)."""
        if self.jwks is not None:
            await self.jwks.refresh()


def from_config(config: Any) -> TokenVerifier:
    """The verifier the server's settings describe."""
    public_key = load_pem(config.jwt_public_key) if config.jwt_public_key else None
    jwks = JwksCache(config.jwt_jwks_url, min_interval=config.jwks_min_interval,
                     timeout=config.jwks_timeout) if config.jwt_jwks_url else None
    return TokenVerifier(config.jwt_secret, public_key, jwks, config.jwt_issuer, config.jwt_audience,
                         config.jwt_role_claim)
