"""The device JSON API under /pos_api/v1: parse, authenticate, call a model
method, serialise. Business rules live in the models and engines."""

import functools
import json
import logging

from psycopg2 import DataError, IntegrityError
from pydantic import ValidationError as SchemaError

from odoo import SUPERUSER_ID, http
from odoo.exceptions import AccessError, MissingError, UserError, ValidationError
from odoo.http import Response, request
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY

from ..models import pos_menu_document, pos_menu_warming
from ..models.pos_api_cache_version import tiered_cache
from ..models.pos_api_device import api_settings
from ..models.pos_payment_audit import REQUEST_DEVICE_ATTRIBUTE
from ..pos_core import api_spec, billing, limits, ratelimit, tokens
from ..pos_core import cache as cache_engine
from ..pos_core import schemas as s
from ..pos_core.exceptions import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PosApiError,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)

_logger = logging.getLogger(__name__)

# One limiter per worker process (and Redis URL); see _rate_limit.
_LIMITERS = {}

# What the gzip representation of a document adds to its ETag.
GZIP_ETAG_SUFFIX = "-gzip"


def endpoint(name):
    """Register the Odoo route declared as ``name`` in :mod:`api_spec`."""
    route = api_spec.ROUTES_BY_NAME[name]

    def decorator(func):
        @functools.wraps(func)
        def handler(self, **kwargs):
            return self._dispatch(route, func, kwargs)

        return http.route(
            route.odoo_path,
            type="http",
            auth="none",
            methods=[route.method],
            csrf=False,
            save_session=False,
            # Unauthenticated reads may run on a read-only cursor (a replica
            # when configured); device calls record the device's last visit.
            readonly=route.roles is None and route.method == "GET",
            **({"websocket": True} if route.websocket else {}),
        )(handler)

    return decorator


def _dump(model, payload):
    return model.model_validate(payload).model_dump(mode="json")


class PosApiController(http.Controller):
    # ------------------------------------------------------------------
    # plumbing
    # ------------------------------------------------------------------
    def _dispatch(self, route, func, kwargs):
        try:
            pos_menu_warming.warm_once(request.registry)
            raw = self._read_body()
            for name, value in kwargs.items():
                if isinstance(value, int):
                    limits.check_id(name, value)
            request.update_env(user=SUPERUSER_ID)
            device = self._authenticate(route) if route.roles is not None else None
            self._rate_limit(route, device)
            body = self._parse(route, raw) if route.request else None
            if route.idempotent:
                status, payload = self._idempotent(
                    route,
                    device,
                    body,
                    kwargs,
                    lambda: func(self, device=device, body=body, **kwargs),
                )
            else:
                result = func(self, device=device, body=body, **kwargs)
                if isinstance(result, Response):
                    return result  # streamed or upgraded: the route built it
                status, payload = result
            return request.make_json_response(payload, status=status)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise  # Odoo retries the whole request on a serialization conflict
        except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON error
            if not getattr(exc, "keep_writes", False):
                request.env.cr.rollback()
            status, payload = self._error_payload(exc)
            response = request.make_json_response(payload, status=status)
            if isinstance(exc, TooManyRequests):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response

    @staticmethod
    def _read_body():
        """The body, of at most ``MAX_BODY_BYTES``, read from the stream:
        a chunked body has no Content-Length to check, and no more than one
        byte past the limit is ever read, on every route."""
        limit = limits.MAX_BODY_BYTES
        too_large = PayloadTooLarge(f"The body exceeds {limit} bytes.", details={"limit": limit})
        if (request.httprequest.content_length or 0) > limit:
            raise too_large
        # Odoo's wrapper does not expose werkzeug's stream.
        wrapped = request.httprequest._HTTPRequest__wrapped
        raw = getattr(wrapped, "_cached_data", None)
        if raw is None:
            chunks, size = [], 0
            while size <= limit:
                chunk = wrapped.stream.read(limit + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            raw = b"".join(chunks)
            # Kept: when Odoo retries the request after a serialization
            # conflict, the body must still be there (werkzeug's own cache).
            wrapped._cached_data = raw
        if len(raw) > limit:
            raise too_large
        return raw

    @staticmethod
    def _rate_limit(route, device):
        """Take a token from the bucket of the device (of the client address
        for unauthenticated routes) and the route's class; 429 when empty."""
        settings = api_settings()
        if not settings.rate_limit:
            return
        limiter = _LIMITERS.get(settings.redis_url)
        if limiter is None:
            limiter = _LIMITERS[settings.redis_url] = ratelimit.RateLimiter(settings.redis_url)
        rate_class = route.rate_class
        rate = limits.rates(
            {name: getattr(settings, f"rate_{name}") for name in limits.RATE_CLASSES}
        )[rate_class]
        subject = f"device:{device.id}" if device else f"addr:{request.httprequest.remote_addr}"
        decision = limiter.hit(f"{request.db}:{subject}:{rate_class}", rate)
        if not decision.allowed:
            raise TooManyRequests(
                f"Too many {rate_class} requests: retry in {decision.retry_after_header} s.",
                retry_after=decision.retry_after_header,
                details={"class": rate_class, "retry_after": decision.retry_after_header},
            )

    def _authenticate(self, route):
        header = request.httprequest.headers.get("Authorization", "")
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("A device bearer token is required.", code="missing_token")
        device, claims = request.env["pos.api.device"]._api_device_for(token.strip(), tokens.ACCESS)
        if claims.role not in route.roles:
            raise Forbidden(
                f"A {claims.role} device may not call {route.name}.",
                code="role_forbidden",
                details={"role": claims.role, "allowed": sorted(route.roles)},
            )
        device._api_touch()
        # In its company and its user's language (not the client's
        # Accept-Language): what the device shows is what its user reads.
        context = dict(request.env.context, allowed_company_ids=[device.company_id.id])
        context["lang"] = device.user_id.lang or context.get("lang")
        request.update_env(user=device.user_id.id, context=context)
        return device.with_env(request.env(su=True))

    def _parse(self, route, raw):
        if request.httprequest.mimetype != "application/json":
            raise UnsupportedMediaType(
                "Send the body as application/json.",
                details={"content_type": request.httprequest.mimetype},
            )
        return route.request.model_validate(limits.decode_json(raw))

    def _idempotent(self, route, device, body, path_params, call):
        """The call under its ``Idempotency-Key`` (``pos.api.idempotency``);
        the route's own checks on its path come first, so that a replay
        answers nobody the first call would have refused."""
        self._authorize_path(device, path_params)
        return request.env["pos.api.idempotency"]._api_run(
            device,
            request.httprequest.headers.get("Idempotency-Key"),
            f"{route.name}:{json.dumps(path_params, sort_keys=True)}",
            body.model_dump(mode="json"),
            call,
        )

    def _authorize_path(self, device, path_params):
        """What the routes check first on their path parameters."""
        if "authorization_id" in path_params:
            self._authorization(device, path_params["order_id"], path_params["authorization_id"])
        elif "order_id" in path_params:
            self._order(device, path_params["order_id"])

    @staticmethod
    def _error_payload(exc):
        if isinstance(exc, PosApiError):
            return exc.status, exc.to_dict()
        if isinstance(exc, SchemaError):
            errors = [
                {"loc": list(error["loc"]), "message": error["msg"], "type": error["type"]}
                for error in exc.errors(include_url=False, include_input=False)
            ]
            error = InvalidInput(
                "The request does not match the schema.", details={"errors": errors}
            )
            return error.status, error.to_dict()
        if isinstance(exc, billing.BillingError):
            error = InvalidInput(exc.message, code=exc.code, details=exc.details)
            return error.status, error.to_dict()
        # Odoo's access and missing-record texts name users, models, ids and
        # record rules: the device gets a plain message, the log the details.
        if isinstance(exc, AccessError):
            _logger.info("POS API: access denied: %s", exc)
            error = Forbidden("The device's user may not access this record.", code="access_denied")
            return error.status, error.to_dict()
        if isinstance(exc, MissingError):
            _logger.info("POS API: missing record: %s", exc)
            error = NotFound("The record does not exist or was deleted.", code="missing_record")
            return error.status, error.to_dict()
        if isinstance(exc, (UserError, ValidationError)):
            return 422, InvalidInput(str(exc), code="rejected").to_dict()
        if isinstance(exc, IntegrityError):
            _logger.info("POS API: constraint violation: %s", exc)
            error = Conflict(
                "The change conflicts with existing data.", code="constraint_violation"
            )
            return error.status, error.to_dict()
        if isinstance(exc, DataError):
            _logger.info("POS API: value refused by the database: %s", exc)
            error = InvalidInput("A value is out of range.", code="value_out_of_range")
            return error.status, error.to_dict()
        _logger.exception("POS API: unexpected error")
        return 500, {
            "error": {"code": "internal_error", "message": "Internal error.", "details": {}}
        }

    @staticmethod
    def _order(device, order_id):
        order = request.env["pos.order"].search(
            [("id", "=", order_id), ("config_id", "=", device.config_id.id)]
        )
        if not order:
            raise NotFound("No such order at this point of sale.", details={"order_id": order_id})
        return order

    @staticmethod
    def _order_payload(order, with_history=True):
        return _dump(s.OrderEnvelope, {"order": order._api_to_dict(with_history=with_history)})

    # ------------------------------------------------------------------
    # meta and auth
    # ------------------------------------------------------------------
    @endpoint("health")
    def health(self, device, body):
        """Liveness probe for devices and load balancers."""
        return 200, {"status": "ok", "api": "v1"}

    @endpoint("openapi")
    def openapi(self, device, body):
        # Built once per worker; only the server URL depends on the request
        # (its Host header: not a cache key a client could grow).
        return 200, {
            **api_spec.openapi_document(),
            "servers": [{"url": request.httprequest.host_url.rstrip("/")}],
        }

    @endpoint("refresh")
    def refresh(self, device, body):
        return 200, request.env["pos.api.device"]._api_refresh(body.refresh_token)

    # ------------------------------------------------------------------
    # products
    # ------------------------------------------------------------------
    @endpoint("product_search")
    def product_search(self, device, body, **_query):
        query = s.ProductSearchQuery.model_validate(request.httprequest.args.to_dict())
        config = request.env["pos.config"].browse(device.config_id.id)
        return 200, _dump(s.ProductSearchOut, config._api_search_products(query))

    # ------------------------------------------------------------------
    # orders
    # ------------------------------------------------------------------
    @endpoint("order_create")
    def order_create(self, device, body):
        return request.env["pos.order"]._api_create_or_replay([body], device)[0]

    @endpoint("order_batch")
    def order_batch(self, device, body):
        """Each order gets its own result: created, replayed or refused."""
        results = request.env["pos.order"]._api_create_or_replay(
            body.orders, device, on_error=self._error_payload
        )
        return 200, _dump(
            s.BatchOut,
            {
                "results": [
                    {"uuid": str(payload.uuid), "status": status, **response}
                    for payload, (status, response) in zip(body.orders, results)
                ]
            },
        )

    @endpoint("order_list")
    def order_list(self, device, body, **_query):
        orders, cursor = request.env["pos.order"]._api_list(device, request.httprequest.args)
        return 200, _dump(
            s.OrderList,
            {
                "orders": [order._api_to_dict() for order in orders],
                "next_cursor": cursor,
            },
        )

    @endpoint("order_get")
    def order_get(self, device, body, order_id):
        return 200, self._order_payload(self._order(device, order_id))

    @endpoint("lines_add")
    def lines_add(self, device, body, order_id):
        order = self._order(device, order_id)
        order._api_add_lines(body.lines, device)
        return 200, self._order_payload(order)

    @endpoint("line_update")
    def line_update(self, device, body, order_id, line_uuid):
        order = self._order(device, order_id)
        order._api_update_line(line_uuid, body, device)
        return 200, self._order_payload(order)

    @endpoint("line_delete")
    def line_delete(self, device, body, order_id, line_uuid):
        order = self._order(device, order_id)
        order._api_remove_line(line_uuid)
        return 200, self._order_payload(order)

    @endpoint("audit_verify")
    def audit_verify(self, device, body):
        result = request.env["pos.payment.audit"]._verify_incremental(device.company_id)
        return 200, _dump(s.AuditVerifyOut, result)

    @staticmethod
    def _audited(records, device):
        """Records whose payments the audit trail attributes to the device
        and to the call's Idempotency-Key. The request names the device too:
        the audit believes a context's device only when the request agrees."""
        setattr(request, REQUEST_DEVICE_ATTRIBUTE, device.id)
        return records.with_context(
            pos_api_device_id=device.id,
            pos_api_idempotency_key=request.httprequest.headers.get("Idempotency-Key"),
        )

    @endpoint("order_payments")
    def order_payments(self, device, body, order_id):
        order = self._order(device, order_id)
        self._audited(order, device)._api_pay(body.payments, body.tip, device)
        return 200, self._order_payload(order)

    def _authorization(self, device, order_id, authorization_id):
        order = self._order(device, order_id)
        authorization = request.env["pos.api.authorization"].search(
            [("id", "=", authorization_id), ("order_id", "=", order.id)]
        )
        if not authorization:
            raise NotFound(
                "No such authorization on this order.",
                details={"authorization_id": authorization_id},
            )
        return order, self._audited(authorization, device)

    @endpoint("authorization_capture")
    def authorization_capture(self, device, body, order_id, authorization_id):
        order, authorization = self._authorization(device, order_id, authorization_id)
        authorization._capture(device)
        return 200, self._order_payload(order)

    @endpoint("authorization_void")
    def authorization_void(self, device, body, order_id, authorization_id):
        order, authorization = self._authorization(device, order_id, authorization_id)
        authorization._void()
        return 200, self._order_payload(order)

    @endpoint("order_tip")
    def order_tip(self, device, body, order_id):
        order = self._order(device, order_id)
        self._audited(order, device)._api_tip(body.amount, body.payment_method_id, device)
        return 200, self._order_payload(order)

    @endpoint("order_refund")
    def order_refund(self, device, body, order_id):
        order = self._order(device, order_id)
        refund = self._audited(order, device)._api_refund(
            body.lines, body.payment_method_id, body.reason, device
        )
        return 200, _dump(
            s.RefundOut,
            {
                "order": order._api_to_dict(with_history=True),
                "refund": refund._api_to_dict(with_history=True),
            },
        )

    @endpoint("order_bill")
    def order_bill(self, device, body, order_id):
        order = self._order(device, order_id)
        return 200, _dump(s.BillOut, order._api_bill(body.model_dump()))

    def _transition(self, device, body, order_id, target):
        order = self._order(device, order_id)
        state = api_spec.TRANSITION_STATES[target]
        order._api_transition(state, reason=body.reason, device=device)
        return 200, self._order_payload(order)

    @endpoint("order_recall")
    def order_recall(self, device, body, order_id):
        order = self._order(device, order_id)
        order._api_recall(reason=body.reason, device=device)
        return 200, self._order_payload(order)

    @endpoint("order_validate")
    def order_validate(self, device, body, order_id):
        return self._transition(device, body, order_id, "validate")

    @endpoint("order_pay")
    def order_pay(self, device, body, order_id):
        return self._transition(device, body, order_id, "pay")

    @endpoint("order_prepare")
    def order_prepare(self, device, body, order_id):
        return self._transition(device, body, order_id, "prepare")

    @endpoint("order_ready")
    def order_ready(self, device, body, order_id):
        return self._transition(device, body, order_id, "ready")

    @endpoint("order_serve")
    def order_serve(self, device, body, order_id):
        return self._transition(device, body, order_id, "serve")

    @endpoint("order_done")
    def order_done(self, device, body, order_id):
        return self._transition(device, body, order_id, "done")

    @endpoint("order_cancel")
    def order_cancel(self, device, body, order_id):
        return self._transition(device, body, order_id, "cancel")

    @endpoint("order_invoice")
    def order_invoice(self, device, body, order_id):
        return self._transition(device, body, order_id, "invoice")

    # ------------------------------------------------------------------
    # catalog: menu, availability, floors, settings
    # ------------------------------------------------------------------
    @staticmethod
    def _not_modified(etag):
        """Whether the request's If-None-Match names ``etag``, in any of its
        representations (weak, gzip)."""
        header = request.httprequest.headers.get("If-None-Match")
        if not etag or not header:
            return False
        tags = {
            tag.strip().removeprefix("W/").strip('"').removesuffix(GZIP_ETAG_SUFFIX)
            for tag in header.split(",")
        }
        return etag in tags or "*" in tags

    def _document(self, etag, data, compressed=False, weak=False):
        """A pre-serialised JSON document with its ETag; 304 when the device
        holds it already. The gzip representation has an ETag of its own, as
        a strong ETag names one byte sequence; ``weak`` marks a document that
        is not the whole resource (a menu's changes)."""
        tag = f'"{etag}{GZIP_ETAG_SUFFIX}"' if compressed else f'"{etag}"'
        headers = {
            "ETag": f"W/{tag}" if weak else tag,
            "Cache-Control": "no-cache",
            "Vary": "Accept-Encoding",
        }
        if self._not_modified(etag):
            return Response(status=304, headers=headers)
        headers["Content-Type"] = "application/json; charset=utf-8"
        if compressed:
            headers["Content-Encoding"] = "gzip"
        return Response(data, status=200, headers=headers)

    @endpoint("menu")
    def menu(self, device, body, **_query):
        """The menu, with an ``X-Cache`` header saying where it came from:
        ``hit-l1`` (this process), ``hit-l2`` (Redis) or ``miss`` (built
        from the database)."""
        with tiered_cache().tracking() as tiers:
            response = self._menu(device)
        if not tiers or cache_engine.L3 in tiers:
            response.headers["X-Cache"] = "miss"
        else:
            response.headers["X-Cache"] = "hit-l2" if cache_engine.L2 in tiers else "hit-l1"
        return response

    def _menu(self, device):
        query = s.MenuQuery.model_validate(dict(request.httprequest.args))
        config = device.config_id.with_env(request.env)
        wrapped = request.httprequest._HTTPRequest__wrapped
        gzip_ok = wrapped.accept_encodings["gzip"] > 0
        etag = config._api_menu_etag()
        if self._not_modified(etag):
            return self._document(etag, b"", compressed=gzip_ok)
        if query.since and etag:
            changes = config._api_menu_changes(query.since, etag)
            if changes is not None:
                data = pos_menu_document.dumps(_dump(s.MenuOut, changes))
                return self._document(changes["version"], data, weak=True)
        etag, data = config._api_menu_bytes(etag, compressed=gzip_ok)
        return self._document(etag, data, compressed=gzip_ok)

    @endpoint("product_availability")
    def product_availability(self, device, body, product_id):
        menu = device.config_id._api_menu()
        if product_id not in menu["products"]:
            raise NotFound(
                "No such product on this point of sale's menu.",
                details={"product_id": product_id},
            )
        template_id = menu["products"][product_id]["template_id"]
        templates = request.env["product.template"].with_company(device.config_id.company_id)
        templates.browse(template_id)._api_set_availability(body.available)
        return 200, _dump(
            s.AvailabilityOut,
            {"product_id": product_id, "template_id": template_id, "available": body.available},
        )

    @endpoint("floors")
    def floors(self, device, body):
        document = device.config_id.with_env(request.env)._api_floors_document()
        data = pos_menu_document.dumps(_dump(s.FloorsOut, document))
        return self._document("f" + pos_menu_document.etag_of(data), data)

    @endpoint("pos_config")
    def pos_config(self, device, body):
        document = device.config_id.with_env(request.env)._api_config_document(device)
        data = pos_menu_document.dumps(_dump(s.PosConfigOut, document))
        return self._document("c" + pos_menu_document.etag_of(data), data)

    @endpoint("station_tickets")
    def station_tickets(self, device, body, station_id):
        config = device.config_id.with_env(request.env)
        station = config._api_station(station_id)
        return 200, _dump(s.StationTicketsOut, station._api_kds_document(config))

    @http.route(
        ["/pos_api/v1/<path:unknown>"], type="http", auth="none", csrf=False, save_session=False
    )
    def not_found(self, unknown):
        """Unknown API paths answer in the API's error shape, not Odoo's HTML."""
        error = NotFound(f"No API route /pos_api/v1/{unknown}.", code="unknown_route")
        return request.make_json_response(error.to_dict(), status=404)
