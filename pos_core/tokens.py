"""Per-device JWT access and refresh tokens.

A device (waiter app, kiosk, kitchen display) holds a short-lived access token
and a longer-lived refresh token. Both carry the device's ``version``: the
database bumps it to revoke every token of the device at once, on every
worker, without a shared deny-list. A refresh token is single-use: its ``jti``
is remembered by the device record and replaced at each rotation. Both name
the database they were issued for in their audience (``aud``) claim.

HS256 is deterministic: the same claims, ``iat`` and ``jti`` signed with the
same key give the same token, byte for byte. A rotation retried within the
grace window is answered by signing the remembered claims again, so the pair
itself is never stored.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from .exceptions import Forbidden, Unauthorized

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


class DeviceUserInactive(Unauthorized):
    """The user a device acts as is archived, not an internal user, or the
    superuser: the device stops at once, whatever its tokens."""

    code = "device_user_inactive"


class DeviceUserForbidden(Forbidden):
    """The user a device acts as lost the Odoo group of the device's role."""

    code = "device_user_group_missing"


class InsecureSecret(ValueError):
    """A signing key shorter than :data:`MIN_SECRET_LENGTH`: a deployment
    error, refused both when signing and when verifying."""


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
    access_jti: str


# What a refresh token's ``jti`` means to the device that holds it.
ROTATE = "rotate"  # the current refresh token: sign a new pair
REPLAY = "replay"  # the one just rotated, back within the grace window: same pair again
REUSED = "reused"  # anything else: the token leaked


def refresh_outcome(
    jti: str,
    *,
    current_jti: str | None,
    previous_jti: str | None,
    rotated_at: int | None,
    now: int,
    grace: int,
) -> str:
    """Classify a refresh. A client whose response was lost, or a request
    Odoo retried after a serialization conflict, presents the token it just
    rotated away; within ``grace`` seconds of that rotation it is answered with
    the pair the rotation issued instead of revoking the device."""
    if current_jti and jti == current_jti:
        return ROTATE
    if (
        previous_jti
        and jti == previous_jti
        and rotated_at is not None
        and 0 <= now - rotated_at <= grace
    ):
        return REPLAY
    return REUSED


def check_secret(secret: str | None) -> str:
    """Return ``secret``, or raise :class:`InsecureSecret` when it is too short."""
    if len(secret or "") < MIN_SECRET_LENGTH:
        raise InsecureSecret(
            f"the signing secret must have at least {MIN_SECRET_LENGTH} characters"
        )
    return secret


def new_jtis() -> tuple[str, str]:
    """Fresh ``(access_jti, refresh_jti)`` for a pair."""
    return secrets.token_hex(8), secrets.token_hex(16)


def _encode(secret: str, claims: DeviceClaims, issued_at: int, audience: str) -> str:
    payload = {
        "iss": ISSUER,
        "aud": audience,
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
    audience: str,
    now: int | None = None,
    access_ttl: int = ACCESS_TTL,
    refresh_ttl: int = REFRESH_TTL,
    jtis: tuple[str, str] | None = None,
) -> TokenPair:
    """Sign an access/refresh pair for a device, for the database ``audience``.

    With the ``now`` and ``jtis`` of an earlier call (and the same claims),
    the very same pair is signed again.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    check_secret(secret)
    if not audience:
        raise ValueError("tokens need an audience (the database they are issued for)")
    now = int(time.time()) if now is None else now
    access_jti, refresh_jti = jtis or new_jtis()
    common = dict(
        device_id=device_id, config_id=config_id, company_id=company_id, role=role, version=version
    )
    access = DeviceClaims(**common, jti=access_jti, token_type=ACCESS, expires_at=now + access_ttl)
    refresh = DeviceClaims(
        **common, jti=refresh_jti, token_type=REFRESH, expires_at=now + refresh_ttl
    )
    return TokenPair(
        access_token=_encode(secret, access, now, audience),
        refresh_token=_encode(secret, refresh, now, audience),
        access_expires_at=access.expires_at,
        refresh_expires_at=refresh.expires_at,
        refresh_jti=refresh.jti,
        access_jti=access.jti,
    )


def decode(
    secret: str, token: str, expected_type: str, audience: str, now: int | None = None
) -> DeviceClaims:
    """Verify signature, issuer, audience, expiry and type; return the claims.

    Revocation (``version``) and refresh single-use (``jti``) are checked by
    the caller against the device record, which is the source of truth.
    """
    check_secret(secret)
    if not audience:
        raise ValueError("tokens are verified against an audience (this database)")
    now = int(time.time()) if now is None else now
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            audience=audience,
            options={"require": ["exp", "iat", "sub", "jti", "aud"], "verify_exp": False},
        )
    except jwt.InvalidAudienceError as exc:
        raise TokenError(
            "the token was issued for another database", code="wrong_audience"
        ) from exc
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
