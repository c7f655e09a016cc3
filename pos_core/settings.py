"""Infrastructure settings: an ``[point_of_sale_api]`` section of odoo.conf,
overridden by ``POS_API_*`` environment variables.

Secrets and infrastructure addresses live here, not in
``ir.config_parameter``, so that they follow the deployment and never end up
in a database dump.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TypeVar

from . import limits

ENV_PREFIX = "POS_API_"

_CAST = {"int": int, "float": float, "str": str}


@dataclass(frozen=True)
class Settings:
    redis_url: str = ""
    jwt_secret: str = ""
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600
    # Per-device request rates, "COUNT/SECONDS" (pos_core.limits.DEFAULT_RATES
    # when empty); rate_limit = 0 turns rate limiting off.
    rate_limit: int = 1
    rate_read: str = ""
    rate_write: str = ""
    rate_payment: str = ""
    rate_auth: str = ""
    rate_audit: str = ""
    # A refresh retried this many seconds after its rotation gets the same pair.
    refresh_grace_seconds: int = 30
    # The payment audit chain's HMAC key (>= 32 characters); empty: a random
    # key kept in Odoo's data directory.
    audit_key: str = ""
    # Where the audit chain heads (and an uninstall's export of the trail)
    # are written; empty: <data_dir>/point_of_sale_api/<database>.
    audit_dir: str = ""
    # WebSocket keep-alive, to fit the proxies in front: a ping every this
    # many seconds; a close after ws_idle_timeout seconds
    # with nothing received (0: limits.idle_timeout of the ping interval).
    ws_ping_interval: int = limits.WS_PING_INTERVAL
    ws_idle_timeout: int = 0

    @property
    def ws_idle_seconds(self) -> int:
        return self.ws_idle_timeout or limits.idle_timeout(self.ws_ping_interval)


@dataclass(frozen=True)
class CacheSettings:
    """The ``cache_*`` keys of the same section: the tiered cache
    (:mod:`pos_core.cache`). Each namespace's TTL is ``cache_ttl_<namespace>``."""

    cache_ttl_menu: int = 15 * 60
    cache_ttl_products: int = 15 * 60
    cache_ttl_categories: int = 60 * 60
    cache_ttl_taxes: int = 60 * 60
    cache_ttl_settings: int = 60 * 60
    cache_ttl_permissions: int = 30 * 60  # user and device permissions
    # L1, per worker process: a 5,000-product menu is a few MB of JSON.
    cache_l1_max_entries: int = 10_000
    cache_l1_max_bytes: int = 64 * 1024 * 1024
    # While Redis cannot be asked, an L1 entry is trusted this many seconds
    # after it was last confirmed: invalidations from other workers cannot
    # reach it, so this bounds how stale an answer can be.
    cache_outage_ttl: float = 5.0
    # Connect and socket timeout of every Redis call.
    cache_redis_timeout: float = 0.1
    # Circuit breaker: consecutive Redis failures that open it, and seconds
    # before one probe call is let through.
    cache_breaker_failures: int = 3
    cache_breaker_cooldown: float = 5.0

    def namespace_ttls(self) -> dict[str, float]:
        prefix = "cache_ttl_"
        return {
            field.name[len(prefix) :]: getattr(self, field.name)
            for field in fields(self)
            if field.name.startswith(prefix)
        }


_SettingsT = TypeVar("_SettingsT", Settings, CacheSettings)


def load_settings(
    section: Mapping[str, str],
    environ: Mapping[str, str],
    kind: type[_SettingsT] = Settings,
) -> _SettingsT:
    """Merge the odoo.conf section and the environment (environment wins)
    into ``kind`` (:class:`Settings` or :class:`CacheSettings`)."""
    values = {}
    for field in fields(kind):
        raw = environ.get(ENV_PREFIX + field.name.upper(), section.get(field.name))
        if raw in (None, ""):
            continue
        values[field.name] = _CAST[str(field.type)](raw)
    return kind(**values)
