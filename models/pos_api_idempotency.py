import hashlib
import json
from datetime import timedelta

from psycopg2 import IntegrityError

from odoo import api, fields, models

from ..pos_core import limits
from ..pos_core.exceptions import Conflict, PosApiError

# How long a key is remembered (Stripe keeps 24 hours; restaurants replay
# offline queues after a day off the network, so keep a week).
KEY_RETENTION_DAYS = 7


def _canonical(body):
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def body_digest(body):
    """The fingerprint of a request body (an order's, kept on the order)."""
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def request_digest(scope, body):
    """The fingerprint of a call: where it was made and its body."""
    return hashlib.sha256(f"{scope}\n{_canonical(body)}".encode()).hexdigest()


class PosApiIdempotency(models.Model):
    """The first response of every call made with an ``Idempotency-Key``.

    Keys belong to their device: UNIQUE(company, device, key), so a device
    can neither replay another device's response nor take its key. The key
    row is inserted before the call does anything: of two concurrent calls
    with one key, the second waits on the unique index until the first
    commits, then replays what it stored. Device and request are kept as
    plain values (no foreign key that a concurrent write to the device row
    could make fail under REPEATABLE READ).
    """

    _name = "pos.api.idempotency"
    _description = "POS API Idempotency Key"
    _log_access = False
    _order = "id desc"

    company_id = fields.Many2one("res.company", required=True, index=True)
    key = fields.Char(required=True)
    scope = fields.Char(required=True, help="Route and path parameters the key was used on.")
    request_hash = fields.Char(required=True)
    device_ref = fields.Integer(string="Device ID", required=True)
    status = fields.Integer()
    response = fields.Text()
    created_at = fields.Datetime(required=True, default=fields.Datetime.now, index=True)

    _sql_constraints = [
        (
            "key_unique",
            "UNIQUE(company_id, device_ref, key)",
            "This device used this idempotency key already.",
        ),
    ]

    @api.model
    def _api_run(self, device, key, scope, body, call):
        """Stripe's semantics for an ``Idempotency-Key``, per device: the
        first call runs ``call()`` (returning ``(status, payload)``) and
        stores its answer; a replay, sequential or concurrent, returns the
        stored answer; the same key with other parameters is 409.

        The caller has run the route's authorization checks already, for
        the first call and for a replay alike.
        """
        key = (key or "").strip()
        if not key or len(key) > limits.IDEMPOTENCY_KEY_MAX_LENGTH:
            raise PosApiError(
                f"An Idempotency-Key header (1-{limits.IDEMPOTENCY_KEY_MAX_LENGTH} characters) "
                "is required.",
                code="idempotency_key_required",
            )
        digest = request_digest(scope, body)
        keys = self.sudo()
        domain = [
            ("company_id", "=", device.company_id.id),
            ("device_ref", "=", device.id),
            ("key", "=", key),
        ]
        stored = keys.search(domain, limit=1)
        if stored:
            return stored._api_replay(digest)
        try:
            with self.env.cr.savepoint():
                record = keys.create(
                    {
                        "company_id": device.company_id.id,
                        "key": key,
                        "scope": scope,
                        "request_hash": digest,
                        "device_ref": device.id,
                    }
                )
        except IntegrityError:
            # A concurrent call with the key committed after this
            # transaction began: read its answer from a fresh snapshot.
            self.env.invalidate_all(flush=False)
            with self.env.registry.cursor() as cr:
                fresh = api.Environment(cr, self.env.uid, self.env.context, su=True)
                return keys.with_env(fresh).search(domain, limit=1)._api_replay(digest)
        try:
            status, payload = call()
        except PosApiError as exc:
            if exc.keep_writes:  # an outcome that stands (a declined card): replay it too
                record.write({"status": exc.status, "response": json.dumps(exc.to_dict())})
            raise
        record.write({"status": status, "response": json.dumps(payload)})
        return status, payload

    def _api_replay(self, digest):
        if not self or not self.response:
            raise Conflict("A call with this key is still in progress.", code="idempotency_busy")
        if self.request_hash != digest:
            raise Conflict(
                "This Idempotency-Key was used with other parameters.",
                code="idempotency_mismatch",
            )
        return self.status, json.loads(self.response)

    @api.autovacuum
    def _gc_expired_keys(self):
        limit = fields.Datetime.now() - timedelta(days=KEY_RETENTION_DAYS)
        self.search([("created_at", "<", limit)]).unlink()
