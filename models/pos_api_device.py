import hashlib
import hmac
import logging
import os
import time

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import config

from ..pos_core import settings as settings_engine
from ..pos_core import tokens

_logger = logging.getLogger(__name__)

ROLE_SELECTION = [
    ("cashier", "Cashier"),
    ("waiter", "Waiter"),
    ("kitchen", "Kitchen"),
    ("manager", "Manager"),
]


def api_settings():
    """The ``[point_of_sale_api]`` odoo.conf section with POS_API_* overrides."""
    return settings_engine.load_settings(config.misc.get("point_of_sale_api", {}), os.environ)


# The Odoo group the user behind a device must have for each role: the API
# checks the role per route, Odoo's access rules check the user.
ROLE_GROUPS = {
    "cashier": "point_of_sale.group_pos_user",
    "waiter": "point_of_sale_api.group_pos_api_user",
    "kitchen": "point_of_sale_api.group_pos_api_user",
    "manager": "point_of_sale.group_pos_manager",
}

TOUCH_INTERVAL = 60.0
_LAST_TOUCH = {}


class PosApiDevicePresence(models.Model):
    """When each device was last seen: kept apart from the device row, which
    orders reference (see ``PosApiDevice._api_touch``)."""

    _name = "pos.api.device.presence"
    _description = "POS API Device Presence"
    _log_access = False

    device_id = fields.Many2one("pos.api.device", required=True, ondelete="cascade")
    last_seen = fields.Datetime(required=True)

    _sql_constraints = [("device_unique", "UNIQUE(device_id)", "One presence row per device.")]


class PosApiDevice(models.Model):
    """A device that talks to the JSON API: waiter app, kiosk, kitchen display.

    Each device is bound to one point of sale and one role, and acts as an
    Odoo user. Its tokens carry ``token_version``; bumping it revokes them all
    at once on every worker, because every request checks it against the
    database.
    """

    _name = "pos.api.device"
    _description = "POS API Device"
    _order = "name, id"

    name = fields.Char(required=True)
    active = fields.Boolean(default=True)
    config_id = fields.Many2one("pos.config", string="Point of Sale", required=True, index=True)
    company_id = fields.Many2one(
        "res.company", related="config_id.company_id", store=True, index=True, readonly=True
    )
    role = fields.Selection(ROLE_SELECTION, required=True, default="waiter")
    user_id = fields.Many2one(
        "res.users",
        string="Acts as User",
        required=True,
        default=lambda self: self.env.user,
        help="Orders and payments made by the device are recorded under this user.",
    )
    token_version = fields.Integer(default=0, readonly=True, copy=False)
    refresh_jti = fields.Char(readonly=True, copy=False)
    last_seen = fields.Datetime(compute="_compute_last_seen")

    @api.constrains("role", "user_id")
    def _check_role_group(self):
        for device in self:
            group = ROLE_GROUPS[device.role]
            if not device.user_id.has_group(group):
                raise ValidationError(
                    self.env._(
                        "A %(role)s device must act as a user of the group %(group)s.",
                        role=device.role,
                        group=self.env.ref(group).full_name,
                    )
                )

    @api.model
    def _jwt_secret(self):
        """The signing secret: configured, or derived from the database secret."""
        secret = api_settings().jwt_secret
        if secret:
            return secret
        db_secret = self.env["ir.config_parameter"].sudo().get_param("database.secret")
        return hmac.new(db_secret.encode(), b"point_of_sale_api/jwt", hashlib.sha256).hexdigest()

    def _sign_pair(self):
        self.ensure_one()
        if not self.active:
            raise UserError(
                self.env._("Device %s is archived and cannot receive tokens.", self.name)
            )
        settings = api_settings()
        return tokens.issue_pair(
            self._jwt_secret(),
            device_id=self.id,
            config_id=self.config_id.id,
            company_id=self.company_id.id,
            role=self.role,
            version=self.token_version,
            access_ttl=settings.access_token_ttl,
            refresh_ttl=settings.refresh_token_ttl,
        )

    def _issue_tokens(self):
        """Sign a fresh pair and remember its refresh token as the only valid one."""
        pair = self._sign_pair()
        self.sudo().refresh_jti = pair.refresh_jti
        return pair

    def action_revoke_tokens(self):
        """Invalidate every token of these devices, effective on the next request."""
        for device in self.sudo():
            device.write({"token_version": device.token_version + 1, "refresh_jti": False})
        _logger.info("POS API tokens revoked for devices %s", self.ids)
        return True

    def _compute_last_seen(self):
        presence = dict(
            self.env["pos.api.device.presence"]
            .sudo()
            ._read_group([("device_id", "in", self.ids)], ["device_id"], ["last_seen:max"])
        )
        for device in self:
            device.last_seen = presence.get(device)

    def _api_touch(self):
        """Record that the device was seen, at most once a minute per worker.

        In its own short transaction and in its own table: a write to the
        device row itself would make every order the request then creates
        (which references the device) fail its foreign-key check with a
        serialization error under REPEATABLE READ.
        """
        now = time.monotonic()
        key = (self.env.cr.dbname, self.id)
        if now - _LAST_TOUCH.get(key, -TOUCH_INTERVAL) < TOUCH_INTERVAL:
            return
        _LAST_TOUCH[key] = now
        with self.env.registry.cursor() as cr:
            cr.execute(
                """INSERT INTO pos_api_device_presence (device_id, last_seen)
                   VALUES (%s, now() AT TIME ZONE 'UTC')
                   ON CONFLICT (device_id) DO UPDATE SET last_seen = EXCLUDED.last_seen""",
                (self.id,),
            )

    @api.model
    def _api_refresh(self, refresh_token):
        """Rotate a pair. A refresh token is single-use: a reused one has
        leaked, so every token of the device is revoked."""
        claims = tokens.decode(self._jwt_secret(), refresh_token, tokens.REFRESH)
        device = self.browse(claims.device_id).exists()
        if not device or not device.active or device.token_version != claims.version:
            raise tokens.TokenError("The token was revoked.", code="token_revoked")
        pair = device._sign_pair()
        # Compare-and-set: of two concurrent uses of one token, one wins.
        self.env.cr.execute(
            "UPDATE pos_api_device SET refresh_jti = %s WHERE id = %s AND refresh_jti = %s",
            (pair.refresh_jti, device.id, claims.jti),
        )
        if not self.env.cr.rowcount:
            device.action_revoke_tokens()
            raise tokens.RefreshReused(
                "This refresh token was already used: every token of the device is revoked."
            )
        device.invalidate_recordset(["refresh_jti"])
        return {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "token_type": "Bearer",
            "expires_at": pair.access_expires_at,
            "refresh_expires_at": pair.refresh_expires_at,
        }
