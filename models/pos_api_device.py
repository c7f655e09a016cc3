import json
import logging
import os
import time
from datetime import datetime, timezone

from odoo import SUPERUSER_ID, Command, api, fields, models, tools
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, config

from ..pos_core import keyfile, tokens
from ..pos_core import settings as settings_engine

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

MANAGER_GROUP = "point_of_sale_api.group_pos_api_manager"
# What an API request checks of its device against its token's claims.
_TOKEN_CHECK_FIELDS = ("active", "token_version", "config_id", "role", "company_id", "user_id")

# Changing any of these on a device revokes its tokens (as does archiving it).
REVOKING_FIELDS = ("config_id", "role", "user_id")

TOUCH_INTERVAL = 60.0
_LAST_TOUCH = {}

# Signing keys read from their files, per path: read once per worker.
_FILE_KEYS = {}


def jwt_key_path(dbname):
    """Where the signing key of ``dbname`` lives when none is configured: in
    Odoo's data directory, outside the database and outside the filestore
    that Odoo's backups include."""
    return keyfile.key_path(config["data_dir"], dbname, "jwt")


def _file_key(dbname):
    path = jwt_key_path(dbname)
    key = _FILE_KEYS.get(path)
    if key is None:
        key = _FILE_KEYS[path] = keyfile.read_or_create(path)
    return key


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
    # The current pair, enough to sign it again byte for byte (never the
    # tokens themselves), and the refresh token it replaced: see _api_refresh.
    refresh_jti = fields.Char(readonly=True, copy=False, groups="base.group_system")
    access_jti = fields.Char(readonly=True, copy=False, groups="base.group_system")
    tokens_issued_at = fields.Integer(readonly=True, copy=False, groups="base.group_system")
    previous_refresh_jti = fields.Char(readonly=True, copy=False, groups="base.group_system")
    last_seen = fields.Datetime(compute="_compute_last_seen")

    @api.constrains("role", "user_id")
    def _check_role_group(self):
        for device in self:
            refusal = device._user_refusal()
            if refusal:
                raise ValidationError(
                    self.env._(
                        "Device %(device)s cannot act as %(user)s: %(reason)s",
                        device=device.name,
                        user=device.user_id.display_name,
                        reason=refusal.message,
                    )
                )

    def _user_refusal(self, user_state=None):
        """Why the user behind the device may not act for it, or None.

        The user must be active, internal, not the superuser (OdooBot) and in
        the Odoo group of the device's role. Checked at save and on every API
        request, in one query, so that archiving the user or removing the
        group stops the device at once. ``user_state``: the user's
        ``(active, share, in the role's group)`` when already read.
        """
        self.ensure_one()
        user_id = self.user_id.id
        if not user_id or user_id == SUPERUSER_ID:
            return tokens.DeviceUserInactive(
                "A device never acts as the superuser.", details={"device_id": self.id}
            )
        group = ROLE_GROUPS[self.role]
        if user_state is None:
            self.env["res.users"].flush_model(["active", "share", "groups_id"])
            self.env.cr.execute(
                SQL(
                    """SELECT u.active, u.share,
                              EXISTS (SELECT 1 FROM res_groups_users_rel r
                                       WHERE r.uid = u.id AND r.gid = %s)
                         FROM res_users u WHERE u.id = %s""",
                    self.env["ir.model.data"]._xmlid_to_res_id(group),
                    user_id,
                )
            )
            user_state = self.env.cr.fetchone()
        active, share, in_group = user_state or (False, True, False)
        if not active or share:
            return tokens.DeviceUserInactive(
                "The user this device acts as is archived or not an internal user.",
                details={"device_id": self.id},
            )
        if not in_group:
            return tokens.DeviceUserForbidden(
                f"The user this device acts as is not in the group {group} of the "
                f"{self.role} role.",
                details={"device_id": self.id, "role": self.role, "group": group},
            )
        return None

    def write(self, vals):
        changed = self.filtered(lambda device: device._revoked_by(vals))
        result = super().write(vals)
        if changed:
            # Un-archiving later does not bring these tokens back: the
            # version stays bumped.
            changed.action_revoke_tokens()
        return result

    def _revoked_by(self, vals):
        """Whether writing ``vals`` moves the device (point of sale, company,
        role, user) or archives it, which revokes its tokens."""
        if "active" in vals and not vals["active"] and self.active:
            return True
        return any(
            name in vals and self._fields[name].convert_to_write(self[name], self) != vals[name]
            for name in REVOKING_FIELDS
        )

    @api.model
    def _remove_superuser_from_groups(self):
        """Called by the security data: the superuser is archived, so an
        ``unlink`` command in XML (which skips archived users) cannot do it."""
        groups = self.env.ref(MANAGER_GROUP) | self.env.ref(ROLE_GROUPS["waiter"])
        groups.with_context(active_test=False).write({"users": [Command.unlink(SUPERUSER_ID)]})

    @api.model
    def _jwt_secret(self):
        """The signing key: the configured ``jwt_secret``, else a random key in
        a file of Odoo's data directory, created on first use. Never derived
        from the database, so a dump of it cannot sign tokens."""
        secret = api_settings().jwt_secret or _file_key(self.env.cr.dbname)
        return tokens.check_secret(secret)

    @api.model
    def _jwt_audience(self):
        """Tokens name the database they were issued for."""
        return self.env["ir.config_parameter"].sudo().get_param("database.uuid")

    def _sign_pair(self, now=None, jtis=None):
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
            audience=self._jwt_audience(),
            now=now,
            jtis=jtis,
            access_ttl=settings.access_token_ttl,
            refresh_ttl=settings.refresh_token_ttl,
        )

    def _remember_pair(self, pair, issued_at, previous_refresh_jti=False):
        self.sudo().write(
            {
                "refresh_jti": pair.refresh_jti,
                "access_jti": pair.access_jti,
                "tokens_issued_at": issued_at,
                "previous_refresh_jti": previous_refresh_jti,
            }
        )

    def _issue_tokens(self):
        """Sign a fresh pair and remember its refresh token as the only valid one."""
        now = int(time.time())
        pair = self._sign_pair(now=now)
        self._remember_pair(pair, now)
        return pair

    def action_issue_tokens(self):
        """The backend's "Issue Tokens" button: revoke every token of the
        device and show a new pair, once, with a QR code for the device."""
        self.ensure_one()
        if not self.env.su and not self.env.user.has_group(MANAGER_GROUP):
            raise AccessError(self.env._("Only POS API managers can issue device tokens."))
        self.check_access("write")
        refusal = self._user_refusal()
        if refusal:
            raise UserError(refusal.message)
        self.action_revoke_tokens()
        pair = self.sudo()._issue_tokens()
        _logger.info("POS API tokens issued for device %s by user %s", self.id, self.env.uid)
        # The pair travels in the action's defaults to an unsaved wizard: it
        # is shown once and never stored.
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Tokens of %s", self.name),
            "res_model": "pos.api.device.token.wizard",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": {
                "default_device_id": self.id,
                "default_access_token": pair.access_token,
                "default_refresh_token": pair.refresh_token,
                "default_refresh_expires_at": fields.Datetime.to_string(
                    datetime.fromtimestamp(pair.refresh_expires_at, timezone.utc).replace(
                        tzinfo=None
                    )
                ),
            },
        }

    def action_revoke_tokens(self):
        """Invalidate every token of these devices, effective on the next request."""
        for device in self.sudo():
            device.write(
                {
                    "token_version": device.token_version + 1,
                    "refresh_jti": False,
                    "access_jti": False,
                    "previous_refresh_jti": False,
                }
            )
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
    def _api_device_for(self, token, token_type, now=None):
        """The device a token names, while the token holds: signed with this
        server's key for this database, of the device's current version,
        config, company and role, and for a device whose user may act."""
        claims = tokens.decode(self._jwt_secret(), token, token_type, self._jwt_audience(), now=now)
        device, user_state = self._api_device_and_user(claims.device_id)
        if (
            not device
            or not device.active
            or device.token_version != claims.version
            or device.config_id.id != claims.config_id
            or device.company_id.id != claims.company_id
            or device.role != claims.role
        ):
            raise tokens.TokenError("The token was revoked.", code="token_revoked")
        refusal = device._user_refusal(user_state)
        if refusal:
            raise refusal
        return device, claims

    @tools.ormcache()
    def _api_role_group_ids(self):
        """``{role: id of its Odoo group}`` as JSON (for SQL)."""
        xmlids = self.env["ir.model.data"]
        return json.dumps(
            {role: xmlids._xmlid_to_res_id(group) for role, group in ROLE_GROUPS.items()}
        )

    def _api_device_and_user(self, device_id):
        """The device (its fields of the token check, and its user's
        language, in the ORM cache) and its user's ``(active, share, in the
        role's group)``, in one query: every API request asks."""
        self.flush_model(_TOKEN_CHECK_FIELDS)
        self.env["res.users"].flush_model(["active", "share", "groups_id", "partner_id"])
        self.env["res.partner"].flush_model(["lang"])
        self.env.cr.execute(
            SQL(
                """SELECT %(columns)s, u.active, u.share,
                          EXISTS (SELECT 1 FROM res_groups_users_rel r
                                   WHERE r.uid = u.id
                                     AND r.gid = (%(groups)s::jsonb ->> d.role)::int),
                          u.partner_id, p.lang
                     FROM pos_api_device d
                     LEFT JOIN res_users u ON u.id = d.user_id
                     LEFT JOIN res_partner p ON p.id = u.partner_id
                    WHERE d.id = %(device_id)s""",
                columns=SQL(", ").join(SQL.identifier("d", name) for name in _TOKEN_CHECK_FIELDS),
                groups=self._api_role_group_ids(),
                device_id=device_id,
            )
        )
        row = self.env.cr.fetchone()
        if row is None:
            return self.browse(), None
        device = self.browse(device_id)
        for name, value in zip(_TOKEN_CHECK_FIELDS, row, strict=False):
            self.env.cache.insert_missing(device, self._fields[name], [value])
        *user_state, partner_id, lang = row[len(_TOKEN_CHECK_FIELDS) :]
        if device.user_id and partner_id:
            partner = self.env["res.partner"].browse(partner_id)
            self.env.cache.insert_missing(
                device.user_id, device.user_id._fields["partner_id"], [partner_id]
            )
            self.env.cache.insert_missing(partner, partner._fields["lang"], [lang])
        return device, tuple(user_state)

    @api.model
    def _api_refresh(self, refresh_token, now=None):
        """Rotate a pair. A refresh token is single-use: a reused one has
        leaked, so every token of the device is revoked. The exception is the
        token just rotated, back within the grace window (a lost response, or
        Odoo retrying the request after a serialization conflict): it gets the
        pair of that rotation again."""
        now = int(time.time()) if now is None else now
        device, claims = self._api_device_for(refresh_token, tokens.REFRESH, now=now)
        device = device.sudo()
        device.flush_recordset()  # the compare-and-set below is SQL
        outcome = tokens.refresh_outcome(
            claims.jti,
            current_jti=device.refresh_jti,
            previous_jti=device.previous_refresh_jti,
            rotated_at=device.tokens_issued_at,
            now=now,
            grace=api_settings().refresh_grace_seconds,
        )
        if outcome == tokens.REPLAY:
            pair = device._sign_pair(
                now=device.tokens_issued_at, jtis=(device.access_jti, device.refresh_jti)
            )
        elif outcome == tokens.ROTATE:
            pair = device._sign_pair(now=now)
            # Compare-and-set: of two concurrent uses of one token, one wins;
            # under REPEATABLE READ the other gets a serialization error and,
            # retried, finds the rotation and replays it.
            self.env.cr.execute(
                SQL(
                    """UPDATE pos_api_device
                          SET refresh_jti = %s, access_jti = %s, tokens_issued_at = %s,
                              previous_refresh_jti = %s
                        WHERE id = %s AND refresh_jti = %s""",
                    pair.refresh_jti,
                    pair.access_jti,
                    now,
                    claims.jti,
                    device.id,
                    claims.jti,
                )
            )
            if not self.env.cr.rowcount:
                outcome = tokens.REUSED
            device.invalidate_recordset(
                ["refresh_jti", "access_jti", "tokens_issued_at", "previous_refresh_jti"],
                flush=False,
            )
        if outcome == tokens.REUSED:
            device.action_revoke_tokens()
            raise tokens.RefreshReused(
                "This refresh token was already used: every token of the device is revoked."
            )
        return {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "token_type": "Bearer",
            "expires_at": pair.access_expires_at,
            "refresh_expires_at": pair.refresh_expires_at,
        }
