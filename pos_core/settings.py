"""Infrastructure settings: an ``[point_of_sale_api]`` section of odoo.conf,
overridden by ``POS_API_*`` environment variables.

Secrets and infrastructure addresses live here, not in
``ir.config_parameter``, so that they follow the deployment and never end up
in a database dump.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from . import limits

ENV_PREFIX = "POS_API_"


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
    # WebSocket keep-alive, to fit the proxies in front: a ping after this
    # many seconds with nothing sent; a close after ws_idle_timeout seconds
    # with nothing received (0: limits.idle_timeout of the ping interval).
    ws_ping_interval: int = limits.WS_PING_INTERVAL
    ws_idle_timeout: int = 0

    @property
    def ws_idle_seconds(self) -> int:
        return self.ws_idle_timeout or limits.idle_timeout(self.ws_ping_interval)


def load_settings(section: Mapping[str, str], environ: Mapping[str, str]) -> Settings:
    """Merge the odoo.conf section and the environment (environment wins)."""
    values = {}
    for field in fields(Settings):
        raw = environ.get(ENV_PREFIX + field.name.upper(), section.get(field.name))
        if raw in (None, ""):
            continue
        values[field.name] = int(raw) if field.type in ("int", int) else str(raw)
    return Settings(**values)
