from datetime import timedelta

from odoo import api, fields, models

# How long a key is remembered (Stripe keeps 24 hours; restaurants replay
# offline queues after a day off the network, so keep a week).
KEY_RETENTION_DAYS = 7


class PosApiIdempotency(models.Model):
    """The first response of every call made with an ``Idempotency-Key``.

    The unique key row is inserted before the call does anything: of two
    concurrent calls with one key, the second waits on the unique index
    until the first commits, then replays what it stored. Device and request
    are kept as plain values (no foreign key that a concurrent write to the
    device row could make fail under REPEATABLE READ).
    """

    _name = "pos.api.idempotency"
    _description = "POS API Idempotency Key"
    _log_access = False
    _order = "id desc"

    company_id = fields.Many2one("res.company", required=True, index=True)
    key = fields.Char(required=True)
    scope = fields.Char(required=True, help="Route and path parameters the key was used on.")
    request_hash = fields.Char(required=True)
    device_ref = fields.Integer(string="Device ID")
    status = fields.Integer()
    response = fields.Text()
    created_at = fields.Datetime(required=True, default=fields.Datetime.now, index=True)

    _sql_constraints = [
        ("key_unique", "UNIQUE(company_id, key)", "This idempotency key was used already."),
    ]

    @api.autovacuum
    def _gc_expired_keys(self):
        limit = fields.Datetime.now() - timedelta(days=KEY_RETENTION_DAYS)
        self.search([("created_at", "<", limit)]).unlink()
