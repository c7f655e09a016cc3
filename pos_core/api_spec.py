"""The JSON API's routes, declared once.

The controllers register an Odoo route for each entry and parse its body with
the entry's request model; :func:`openapi` builds the OpenAPI 3 document from
the same entries and models, so the document cannot drift from the code.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from . import limits
from . import schemas as s

PREFIX = "/pos_api/v1"

ALL_ROLES = frozenset({"cashier", "waiter", "kitchen", "manager"})
ORDER_WRITERS = frozenset({"cashier", "waiter", "manager"})
PAYERS = frozenset({"cashier", "waiter", "manager"})  # a kitchen device never takes money
CATALOG_EDITORS = frozenset({"manager", "kitchen"})  # who 86es a product


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str  # OpenAPI style: /orders/{order_id}
    summary: str
    response: type[BaseModel]
    status: int = 200
    request: type[BaseModel] | None = None
    roles: frozenset[str] | None = ALL_ROLES  # None: no device token needed
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    idempotent: bool = False  # needs an Idempotency-Key header (Stripe's semantics)
    websocket: bool = False  # a WebSocket upgrade (werkzeug's websocket rule)
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def rate_class(self) -> str:
        """Which of the device's rate limits (:data:`limits.DEFAULT_RATES`) a call takes from."""
        if self.name == "refresh":
            return limits.AUTH
        if self.name == "audit_verify":
            return limits.AUDIT
        if self.idempotent or self.name == "order_pay":
            return limits.PAYMENT
        return limits.READ if self.method == "GET" else limits.WRITE

    @property
    def odoo_path(self) -> str:
        """The werkzeug rule Odoo registers: {order_id} → <int:order_id>."""
        return PREFIX + re.sub(r"\{(\w+)\}", lambda m: _converter(m.group(1)), self.path)


def _converter(name: str) -> str:
    return f"<int:{name}>" if name.endswith("_id") else f"<string:{name}>"


# The page size query parameter of the routes that paginate.
PAGE_LIMIT_QUERY = (
    "limit",
    "integer",
    f"Page size, 1-{limits.MAX_PAGE_SIZE} ({limits.DEFAULT_PAGE_SIZE})",
)

TRANSITION_TARGETS = ("validate", "pay", "prepare", "ready", "serve", "done", "cancel", "invoice")

ROUTES: tuple[Route, ...] = (
    Route("health", "GET", "/health", "Liveness probe", s.HealthOut, roles=None, tags=("meta",)),
    Route(
        "openapi", "GET", "/openapi.json", "This document", s.OpenApiOut, roles=None, tags=("meta",)
    ),
    Route(
        "refresh",
        "POST",
        "/auth/refresh",
        "Rotate a device's token pair",
        s.TokenOut,
        request=s.RefreshIn,
        roles=None,
        tags=("auth",),
    ),
    Route(
        "product_search",
        "GET",
        "/products",
        "Search the point of sale's sellable products by name, internal reference or "
        "barcode, typos tolerated (q); or an exact barcode scan (barcode)",
        s.ProductSearchOut,
        query=(
            (
                "q",
                "string",
                f"Search text, 1-{limits.SEARCH_QUERY_MAX_CHARS} characters; `%` and `_` "
                "are plain characters",
            ),
            ("barcode", "string", "Exact barcode (instead of q); answered from the cache"),
            PAGE_LIMIT_QUERY,
            ("cursor", "string", "next_cursor of the previous page of the same q"),
        ),
        tags=("products",),
    ),
    Route(
        "audit_verify",
        "GET",
        "/audit/verify",
        "Verify the payment audit chain of the device's company (managers only)",
        s.AuditVerifyOut,
        roles=frozenset({"manager"}),
        tags=("audit",),
    ),
    Route(
        "order_create",
        "POST",
        "/orders",
        "Create an order (idempotent by uuid)",
        s.OrderEnvelope,
        status=201,
        request=s.OrderCreate,
        roles=ORDER_WRITERS,
        tags=("orders",),
    ),
    Route(
        "order_batch",
        "POST",
        "/orders/batch",
        "Create many orders, one result each",
        s.BatchOut,
        request=s.BatchCreate,
        roles=ORDER_WRITERS,
        tags=("orders",),
    ),
    Route(
        "order_list",
        "GET",
        "/orders",
        "List orders, newest change last",
        s.OrderList,
        query=(
            ("state", "string", "Restaurant state to filter on"),
            ("table_id", "integer", "Table to filter on"),
            ("updated_since", "string", "ISO datetime: orders changed after it"),
            PAGE_LIMIT_QUERY,
            ("cursor", "string", "next_cursor of the previous page"),
        ),
        tags=("orders",),
    ),
    Route(
        "order_get",
        "GET",
        "/orders/{order_id}",
        "Fetch one order",
        s.OrderEnvelope,
        tags=("orders",),
    ),
    Route(
        "lines_add",
        "POST",
        "/orders/{order_id}/lines",
        "Add lines to a draft order",
        s.OrderEnvelope,
        request=s.LinesAdd,
        roles=ORDER_WRITERS,
        tags=("orders",),
    ),
    Route(
        "line_update",
        "PATCH",
        "/orders/{order_id}/lines/{line_uuid}",
        "Change a line of a draft order",
        s.OrderEnvelope,
        request=s.LinePatch,
        roles=ORDER_WRITERS,
        tags=("orders",),
    ),
    Route(
        "line_delete",
        "DELETE",
        "/orders/{order_id}/lines/{line_uuid}",
        "Remove a line of a draft order",
        s.OrderEnvelope,
        roles=ORDER_WRITERS,
        tags=("orders",),
    ),
    Route(
        "order_payments",
        "POST",
        "/orders/{order_id}/payments",
        "Pay (multi-tender, cash change, card reference); Idempotency-Key required",
        s.OrderEnvelope,
        request=s.PaymentsIn,
        roles=PAYERS,
        idempotent=True,
        tags=("payments",),
    ),
    *(
        Route(
            f"authorization_{action}",
            "POST",
            f"/orders/{{order_id}}/authorizations/{{authorization_id}}/{action}",
            f"{action.capitalize()} a card pre-authorization; Idempotency-Key required",
            s.OrderEnvelope,
            request=s.TransitionIn,
            roles=PAYERS,
            idempotent=True,
            tags=("payments",),
        )
        for action in ("capture", "void")
    ),
    Route(
        "order_tip",
        "POST",
        "/orders/{order_id}/tip",
        "Add a tip, before or after payment; Idempotency-Key required",
        s.OrderEnvelope,
        request=s.TipIn,
        roles=PAYERS,
        idempotent=True,
        tags=("payments",),
    ),
    Route(
        "order_refund",
        "POST",
        "/orders/{order_id}/refund",
        "Refund a paid order, fully or some lines; Idempotency-Key required",
        s.RefundOut,
        request=s.RefundIn,
        roles=frozenset({"cashier", "manager"}),
        idempotent=True,
        tags=("payments",),
    ),
    Route(
        "order_bill",
        "POST",
        "/orders/{order_id}/bill",
        "Compute the bill (discounts, service, tip, splits) without writing anything",
        s.BillOut,
        request=s.BillRequest,
        tags=("orders",),
    ),
    Route(
        "events",
        "GET",
        "/events",
        "Long-poll the events of rooms after a seq; waits only on the gevent port",
        s.EventsOut,
        query=(
            ("after", "integer", "last_seq of the previous answer; none: from now"),
            (
                "rooms",
                "string",
                "Comma-separated rooms (config:<id>, session:<id>, table:<id>, "
                f"station:<id>), at most {limits.MAX_ROOMS_PER_DEVICE}; none: the config's room",
            ),
            ("timeout", "number", f"Seconds to wait for an event, 0-{limits.LONGPOLL_MAX_TIMEOUT}"),
        ),
        tags=("events",),
    ),
    Route(
        "events_ws",
        "GET",
        "/ws",
        "WebSocket on the gevent port: authenticate (Authorization header or first message "
        '{"type": "auth", "token"}), then {"type": "subscribe", "rooms", "after"}; every '
        "event is pushed as this envelope",
        s.EventOut,
        status=101,
        websocket=True,
        tags=("events",),
    ),
    Route(
        "menu",
        "GET",
        "/menu",
        "The point of sale's menu (ETag, gzip; since=<version> for its changes)",
        s.MenuOut,
        query=(("since", "string", "A version (ETag) the device holds: only what changed"),),
        tags=("catalog",),
    ),
    Route(
        "product_availability",
        "POST",
        "/products/{product_id}/availability",
        "86 a product, or bring it back (managers and the kitchen)",
        s.AvailabilityOut,
        request=s.AvailabilityIn,
        roles=CATALOG_EDITORS,
        tags=("catalog",),
    ),
    Route(
        "floors",
        "GET",
        "/floors",
        "The floor plan with each table's live state (ETag)",
        s.FloorsOut,
        tags=("catalog",),
    ),
    Route(
        "pos_config",
        "GET",
        "/config",
        "The device's point of sale: currency, payment methods, rules, stations (ETag)",
        s.PosConfigOut,
        tags=("catalog",),
    ),
    Route(
        "order_recall",
        "POST",
        "/orders/{order_id}/recall",
        "The kitchen takes back an order it bumped: ready returns to preparing",
        s.OrderEnvelope,
        request=s.TransitionIn,
        roles=ALL_ROLES,
        tags=("lifecycle", "kitchen"),
    ),
    Route(
        "station_tickets",
        "GET",
        "/stations/{station_id}/tickets",
        "A kitchen station's open orders and their tickets, with all-day counts",
        s.StationTicketsOut,
        tags=("kitchen",),
    ),
    *(
        Route(
            f"order_{target}",
            "POST",
            f"/orders/{{order_id}}/{target}",
            f"Lifecycle transition: {target}",
            s.OrderEnvelope,
            request=s.TransitionIn,
            roles=(
                PAYERS
                if target == "pay"
                else frozenset({"manager", "cashier"})
                if target in ("cancel", "invoice")
                else ALL_ROLES
                if target in ("prepare", "ready", "serve")
                else ORDER_WRITERS
            ),
            tags=("lifecycle",),
        )
        for target in TRANSITION_TARGETS
    ),
)

ROUTES_BY_NAME = {route.name: route for route in ROUTES}

# Transition endpoint → lifecycle state.
TRANSITION_STATES = {
    "validate": "validated",
    "pay": "paid",
    "prepare": "preparing",
    "ready": "ready",
    "serve": "served",
    "done": "done",
    "cancel": "cancel",
    "invoice": "invoiced",
}


def openapi(server_url: str = "") -> dict:
    """The OpenAPI 3.1 document of every route in :data:`ROUTES`."""
    models = {route.response for route in ROUTES} | {s.ErrorOut}
    models |= {route.request for route in ROUTES if route.request}
    _, defs = models_json_schema(
        [(model, "validation" if model in _inputs() else "serialization") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict] = {}
    for route in ROUTES:
        operation: dict = {
            "operationId": route.name,
            "summary": route.summary,
            "tags": list(route.tags),
            "responses": {
                str(route.status): _json_ref(route.response, "Success"),
                "4XX": _json_ref(s.ErrorOut, "Error: {error: {code, message, details}}"),
            },
        }
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": (
                    {"type": "integer", "minimum": 1, "maximum": limits.MAX_INT}
                    if name.endswith("_id")
                    else {"type": "string"}
                ),
            }
            for name in re.findall(r"\{(\w+)\}", route.path)
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": desc,
                "schema": {"type": kind},
            }
            for name, kind, desc in route.query
        ]
        if route.name == "order_create":
            operation["responses"][str(route.status)]["links"] = _order_links()
        if route.idempotent:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "description": "A replay returns the saved response; the same key with "
                    "other parameters is 409; concurrent calls have one effect.",
                    "schema": {"type": "string", "maxLength": limits.IDEMPOTENCY_KEY_MAX_LENGTH},
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if route.request:
            operation["requestBody"] = {"required": True, **_json_ref(route.request, "")}
            operation["requestBody"].pop("description")
        if route.roles is not None:
            operation["security"] = [{"deviceToken": []}]
            operation["x-roles"] = sorted(route.roles)
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = operation
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "point_of_sale_api",
            "version": "1.0.0",
            "description": "Restaurant device API for Odoo 18.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "deviceToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def _order_links() -> dict:
    """OpenAPI links from a created order to every route taking its id, so
    that a client generator (or a stateful fuzzer) can follow them."""
    return {
        route.name: {
            "operationId": route.name,
            "parameters": {"order_id": "$response.body#/order/id"},
        }
        for route in ROUTES
        if "{order_id}" in route.path
    }


@functools.cache
def openapi_document() -> dict:
    """:func:`openapi` without servers, built once per process. Callers
    must not change it."""
    return openapi()


def _inputs() -> set[type[BaseModel]]:
    return {route.request for route in ROUTES if route.request}


def _json_ref(model: type[BaseModel], description: str) -> dict:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
        },
    }
