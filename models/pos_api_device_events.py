from odoo import SUPERUSER_ID, models
from odoo.tools import SQL

from ..pos_core import events, limits
from ..pos_core.exceptions import TooManyRequests
from .pos_api_device import ROLE_GROUPS


class PosApiDevice(models.Model):
    """What a device may follow on the event channel."""

    _inherit = "pos.api.device"

    def _api_event_scope(self):
        """The device's :class:`events.Scope`, read now: its config, the
        config's open session, the tables of the config's floors and the
        kitchen stations printing for the config."""
        self.ensure_one()
        config = self.sudo().config_id
        session = config.current_session_id
        stations = self.env["pos.api.printer"].sudo().search([("config_ids", "in", config.ids)])
        return events.Scope(
            config_id=config.id,
            session_id=session.id or None,
            table_ids=frozenset(config.floor_ids.table_ids.ids),
            station_ids=frozenset(stations.ids),
        )

    def _api_event_rooms(self, rooms):
        """The rooms the device asks to follow, checked: at most
        ``MAX_ROOMS_PER_DEVICE`` (429), well-formed (422), each in its scope
        (403). No rooms means its config's room."""
        self.ensure_one()
        rooms = list(rooms or ())
        if len(rooms) > limits.MAX_ROOMS_PER_DEVICE:
            raise TooManyRequests(
                f"A connection follows at most {limits.MAX_ROOMS_PER_DEVICE} rooms.",
                code="too_many_rooms",
                retry_after=1,
                details={"limit": limits.MAX_ROOMS_PER_DEVICE, "rooms": len(rooms)},
            )
        return events.authorize_rooms(self.role, rooms, self._api_event_scope())

    def _api_revoked_claims(self, claims):
        """Of ``claims`` (the tokens of the connections open in a process),
        those that no longer hold: revoked (version), device archived or
        moved (config, company, role), or its user may no longer act. One
        query for all of them: a process re-checks thousands of connections
        in one read."""
        claims = set(claims)
        if not claims:
            return set()
        role_groups = SQL(", ").join(
            SQL("(%s, %s, %s)", role, *xmlid.split(".", 1)) for role, xmlid in ROLE_GROUPS.items()
        )
        self.env.cr.execute(
            SQL(
                """SELECT d.id, d.active, d.token_version, d.config_id, d.company_id, d.role,
                          u.active AND NOT u.share AND u.id != %s
                          AND EXISTS (SELECT 1 FROM res_groups_users_rel r
                                       WHERE r.uid = u.id AND r.gid = g.res_id)
                     FROM pos_api_device d
                     JOIN res_users u ON u.id = d.user_id
                     JOIN (VALUES %s) AS rg(role, module, name) ON rg.role = d.role
                LEFT JOIN ir_model_data g
                       ON g.model = 'res.groups' AND g.module = rg.module AND g.name = rg.name
                    WHERE d.id = ANY(%s)""",
                SUPERUSER_ID,
                role_groups,
                sorted({claim.device_id for claim in claims}),
            )
        )
        current = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        return {
            claim
            for claim in claims
            if current.get(claim.device_id)
            != (True, claim.version, claim.config_id, claim.company_id, claim.role, True)
        }
