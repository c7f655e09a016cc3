"""Per-device JWT access and refresh tokens.

A device (waiter app, kiosk, kitchen display) holds a short-lived access token
and a longer-lived refresh token. Both carry the device's ``version``: the
database bumps it to revoke every token of the device at once, on every
worker, without a shared deny-list. A refresh token is single-use: its ``jti``
is remembered by the device record and replaced at each rotation.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from .exceptions import Unauthorized

ALGORITHM = "HS256"
ISSUER = "point_of_sale_api"
ACCESS_TTL = 15 * 60
REFRESH_TTL = 30 * 24 * 3600

MIN_SECRET_LENGTH = 32

ROLES = ("cashier", "waiter", "kitchen", "manager")
ACCESS = "access"
REFRESH = "refresh"


class TokenError(Unauthorized):
    """A token that cannot be accepted; ``code`` is machine-readable."""

    code = "invalid_token"


class TokenExpired(TokenError):
    code = "token_expired"


class RefreshReused(TokenError):
    """A rotated refresh token came back: it leaked. The revocation this
    triggers is kept although the request fails."""

    code = "refresh_reused"
    keep_writes = True


@dataclass(frozen=True)
class DeviceClaims:
    device_id: int
    config_id: int
    company_id: int
    role: str
    version: int
    jti: str
    token_type: str
    expires_at: int


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires_at: int
    refresh_expires_at: int
    refresh_jti: str


def _encode(secret: str, claims: DeviceClaims, issued_at: int) -> str:
    payload = {
        "iss": ISSUER,
        "sub": str(claims.device_id),
        "cfg": claims.config_id,
        "cmp": claims.company_id,
        "role": claims.role,
        "ver": claims.version,
        "jti": claims.jti,
        "typ": claims.token_type,
        "iat": issued_at,
        "exp": claims.expires_at,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def issue_pair(
    secret: str,
    *,
    device_id: int,
    config_id: int,
    company_id: int,
    role: str,
    version: int,
    now: int | None = None,
    access_ttl: int = ACCESS_TTL,
    refresh_ttl: int = REFRESH_TTL,
) -> TokenPair:
    """Sign a fresh access/refresh pair for a device."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if len(secret or "") < MIN_SECRET_LENGTH:
        raise ValueError(f"the signing secret must have at least {MIN_SECRET_LENGTH} characters")
    now = int(time.time()) if now is None else now
    common = dict(
        device_id=device_id, config_id=config_id, company_id=company_id, role=role, version=version
    )
    access = DeviceClaims(
        **common, jti=secrets.token_hex(8), token_type=ACCESS, expires_at=now + access_ttl
    )
    refresh = DeviceClaims(
        **common, jti=secrets.token_hex(16), token_type=REFRESH, expires_at=now + refresh_ttl
    )
    return TokenPair(
        access_token=_encode(secret, access, now),
        refresh_token=_encode(secret, refresh, now),
        access_expires_at=access.expires_at,
        refresh_expires_at=refresh.expires_at,
        refresh_jti=refresh.jti,
    )


def decode(secret: str, token: str, expected_type: str, now: int | None = None) -> DeviceClaims:
    """Verify signature, issuer, expiry and type; return the claims.

    Revocation (``version``) and refresh single-use (``jti``) are checked by
    the caller against the device record, which is the source of truth.
    """
    now = int(time.time()) if now is None else now
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "jti"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenError("the token is not valid") from exc
    if not isinstance(payload["exp"], int) or payload["exp"] <= now:
        raise TokenExpired("the token has expired")
    if payload.get("typ") != expected_type:
        raise TokenError(f"a {expected_type} token is required")
    try:
        claims = DeviceClaims(
            device_id=int(payload["sub"]),
            config_id=int(payload["cfg"]),
            company_id=int(payload["cmp"]),
            role=str(payload["role"]),
            version=int(payload["ver"]),
            jti=str(payload["jti"]),
            token_type=str(payload["typ"]),
            expires_at=int(payload["exp"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenError("the token misses device claims") from exc
    if claims.role not in ROLES:
        raise TokenError("the token names an unknown role")
    return claims
