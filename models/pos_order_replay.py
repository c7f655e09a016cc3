import contextlib
import json

from psycopg2 import IntegrityError

from odoo import api, models
from odoo.exceptions import UserError, ValidationError
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY

from ..pos_core import schemas
from ..pos_core.billing import BillingError
from ..pos_core.exceptions import Conflict, NotFound, PosApiError
from .pos_api_idempotency import body_digest


class PosOrder(models.Model):
    """Creation by uuid through the API: create once, replay the first
    answer to every retry of the device that made it, sequential or
    concurrent, in a single call or a batch."""

    _inherit = "pos.order"

    @api.model
    def _api_create_or_replay(self, payloads, device, on_error=None):
        """Create the ``OrderCreate`` payloads or replay their first answers;
        returns one ``(status, response)`` per payload.

        ``on_error`` (an exception to ``(status, response)``) makes each
        order's failure its own result (a batch); without it the first
        failure is raised. A replay passes the same checks as a first call:
        the order must be this device's, still visible at its point of sale,
        and asked for with the same content.

        Orders are created in one ORM call under a savepoint; should that
        fail, each is tried alone under its own, so that one bad order cannot
        sink the others. A uuid that a concurrent request committed after
        this transaction's snapshot was taken fails on the unique index (or
        on a check that no longer holds) and is then replayed from a fresh
        snapshot.
        """
        digests = [body_digest(payload.model_dump(mode="json")) for payload in payloads]
        uuids = [str(payload.uuid) for payload in payloads]
        results = [None] * len(payloads)
        existing = {order.uuid: order for order in self.sudo().search([("uuid", "in", uuids)])}
        menu = session_id = None
        todo, first_index = [], {}

        def attempt(index, func, *args):
            try:
                result = func(*args)
                if result is not None:
                    results[index] = result
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                raise  # Odoo retries the whole request on fresh data
            except Exception as exc:
                if on_error is None:
                    raise
                self.env.invalidate_all(flush=False)
                results[index] = on_error(exc)

        def prepare(index):
            nonlocal menu, session_id
            try:
                menu = menu or device.config_id._api_menu()
                session_id = session_id or self._api_open_session_id(device, menu)
                todo.append((index, self._api_prepare(payloads[index], device, menu, session_id)))
            except (PosApiError, BillingError, UserError, ValidationError):
                replay = self._api_replay_committed(payloads[index], device, digests[index])
                if replay is None:
                    raise
                return replay
            return None

        for index, order_uuid in enumerate(uuids):
            if order_uuid in existing:
                attempt(index, self._api_replay, existing[order_uuid], device, digests[index])
            elif order_uuid not in first_index:  # a repeat inside the call is answered below
                first_index[order_uuid] = index
                attempt(index, prepare, index)
        if len(todo) > 1:
            try:
                with self.env.cr.savepoint():
                    created = self._api_create_prepared([vals for _index, vals in todo], device)
                    for (index, _vals), order in zip(todo, created):
                        results[index] = (201, order._api_store_response(digests[index]))
                todo = []
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                raise
            except Exception:  # noqa: BLE001 - each order is tried alone below
                self.env.invalidate_all(flush=False)
        alone = len(todo) == 1  # its prepared values are still untouched
        for index, vals in todo:
            attempt(
                index,
                self._api_create_one,
                payloads[index],
                device,
                digests[index],
                vals if alone else None,
                alone and on_error is None and len(payloads) == 1,
            )
        for index, order_uuid in enumerate(uuids):
            if results[index] is None:  # a uuid repeated inside the call
                first = first_index[order_uuid]
                if digests[index] == digests[first]:
                    results[index] = results[first]
                else:
                    attempt(index, _raise, _mismatch(order_uuid))
        return results

    @api.model
    def _api_create_one(self, payload, device, digest, prepared=None, whole=False):
        """Create one order, or replay it if a concurrent request committed
        it. ``whole``: the order is all the transaction writes (a single
        creation), so a failure rolls the whole transaction back and the
        replay reads a fresh snapshot of its own, as Odoo's retry would;
        otherwise a savepoint keeps the rest of the transaction."""
        try:
            with contextlib.nullcontext() if whole else self.env.cr.savepoint():
                if prepared is None:
                    order = self._api_create(payload, device)
                else:
                    order = self._api_create_prepared([prepared], device)
                return 201, order._api_store_response(digest)
        except (IntegrityError, PosApiError, BillingError, UserError, ValidationError):
            # The unique index (or a check that no longer holds for a retry,
            # e.g. a product withdrawn since): a concurrent request may have
            # committed the order after this transaction's snapshot.
            if whole:
                self.env.cr.rollback()
            self.env.invalidate_all(flush=False)
            replay = self._api_replay_committed(payload, device, digest)
            if replay is None:
                raise
            return replay

    @api.model
    def _api_replay_committed(self, payload, device, digest):
        """The replay of an order committed after this transaction's
        snapshot, read from a fresh one with the same checks; None if none."""
        with self.env.registry.cursor() as cr:
            env = api.Environment(cr, self.env.uid, self.env.context)
            order = env["pos.order"].sudo().search([("uuid", "=", str(payload.uuid))])
            if not order:
                return None
            return self.with_env(env)._api_replay(order, device.with_env(env(su=True)), digest)

    def _api_store_response(self, digest):
        """The first answer to a creation, kept for its replays."""
        self.ensure_one()
        response = schemas.OrderEnvelope.model_validate(
            {"order": self._api_to_dict(with_history=True, fresh=True)}
        ).model_dump(mode="json")
        self.sudo().write({"api_request_hash": digest, "api_response": json.dumps(response)})
        return response

    @api.model
    def _api_replay(self, order, device, digest):
        """The first answer for ``order``, to ``device`` retrying its creation."""
        order = order.sudo()
        if order.api_device_id.id != device.id or not order.api_response:
            raise Conflict(
                "An order with this uuid exists already.",
                code="uuid_conflict",
                details={"uuid": order.uuid},
            )
        # As the device's user: its point of sale and the record rules.
        if not self.search_count(
            [("id", "=", order.id), ("config_id", "=", device.config_id.id)], limit=1
        ):
            raise NotFound("No such order at this point of sale.", details={"uuid": order.uuid})
        if order.api_request_hash != digest:
            raise _mismatch(order.uuid)
        return 201, json.loads(order.api_response)


def _mismatch(order_uuid):
    return Conflict(
        "This uuid was used for a different order.",
        code="idempotency_mismatch",
        details={"uuid": order_uuid},
    )


def _raise(exc):
    raise exc
