import hashlib
import hmac
import logging
import os

from odoo import api, fields, models
from odoo.exceptions import UserError
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
    last_seen = fields.Datetime(readonly=True, copy=False)

    @api.model
    def _jwt_secret(self):
        """The signing secret: configured, or derived from the database secret."""
        secret = api_settings().jwt_secret
        if secret:
            return secret
        db_secret = self.env["ir.config_parameter"].sudo().get_param("database.secret")
        return hmac.new(db_secret.encode(), b"point_of_sale_api/jwt", hashlib.sha256).hexdigest()

    def _issue_tokens(self):
        """Sign a fresh pair and remember the refresh token as the only valid one."""
        self.ensure_one()
        if not self.active:
            raise UserError(
                self.env._("Device %s is archived and cannot receive tokens.", self.name)
            )
        settings = api_settings()
        pair = tokens.issue_pair(
            self._jwt_secret(),
            device_id=self.id,
            config_id=self.config_id.id,
            company_id=self.company_id.id,
            role=self.role,
            version=self.token_version,
            access_ttl=settings.access_token_ttl,
            refresh_ttl=settings.refresh_token_ttl,
        )
        self.sudo().refresh_jti = pair.refresh_jti
        return pair

    def action_revoke_tokens(self):
        """Invalidate every token of these devices, effective on the next request."""
        for device in self.sudo():
            device.write({"token_version": device.token_version + 1, "refresh_jti": False})
        _logger.info("POS API tokens revoked for devices %s", self.ids)
        return True
