"""Request and response shapes of the JSON API (pydantic v2).

Input models forbid unknown fields and check types and ranges, so a bad
request is refused before anything is written; the same models generate the
OpenAPI document. Amounts travel as decimal strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import search
from .limits import (
    BARCODE_MAX_CHARS,
    DEFAULT_PAGE_SIZE,
    LONGPOLL_MAX_TIMEOUT,
    MAX_BATCH_LINES,
    MAX_BATCH_ORDERS,
    MAX_INT,
    MAX_LINES_PER_ORDER,
    MAX_PAGE_SIZE,
    MAX_ROOMS_PER_DEVICE,
    SEARCH_QUERY_MAX_CHARS,
)

PositiveId = Annotated[int, Field(gt=0, le=MAX_INT, strict=True)]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=3, allow_inf_nan=False)]
Amount = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4, allow_inf_nan=False)]
PositiveAmount = Annotated[
    Decimal, Field(gt=0, max_digits=14, decimal_places=4, allow_inf_nan=False)
]
Percent = Annotated[
    Decimal, Field(ge=0, le=100, max_digits=7, decimal_places=4, allow_inf_nan=False)
]
ShortText = Annotated[str, Field(max_length=500)]
Reason = Annotated[str, Field(max_length=200)]

MAX_LINES = MAX_LINES_PER_ORDER
MAX_BATCH = MAX_BATCH_ORDERS
# Only the states an order may be created in; later states have endpoints.
CreateState = Literal["draft", "validated", "paid"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_characters(cls, value):
        # PostgreSQL text cannot hold U+0000: refused here, not at the INSERT.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text may not contain NUL (U+0000) characters")
        return value


class Output(BaseModel):
    model_config = ConfigDict(ser_json_timedelta="float")


# ----------------------------------------------------------------- inputs


class LineIn(Input):
    uuid: UUID | None = Field(None, description="Client id of the line; generated when absent.")
    product_id: PositiveId
    qty: Quantity
    price_unit: PositiveAmount | None = Field(
        None, description="Price override; only roles allowed to override prices may send it."
    )
    discount: Percent = Decimal(0)
    note: ShortText | None = None
    seat: Annotated[int, Field(ge=0, le=999)] | None = None
    attribute_value_ids: Annotated[list[PositiveId], Field(max_length=30)] = []


class LinePatch(Input):
    qty: Quantity | None = None
    price_unit: PositiveAmount | None = None
    discount: Percent | None = None
    note: ShortText | None = None
    seat: Annotated[int, Field(ge=0, le=999)] | None = None


class PaymentIn(Input):
    payment_method_id: PositiveId
    amount: PositiveAmount


class TenderIn(Input):
    payment_method_id: PositiveId
    amount: PositiveAmount = Field(description="Amount applied to the bill.")
    tendered: PositiveAmount | None = Field(
        None, description="Cash handed over (cash methods only); the change is computed."
    )
    terminal_ref: Annotated[str, Field(max_length=120)] | None = Field(
        None, description="Card terminal transaction reference."
    )
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = Field(
        None, description="ISO code; must be the order's currency when given."
    )
    authorize_only: bool = Field(
        False, description="Card pre-authorization: captured or voided later."
    )
    declined: bool = Field(
        False, description="The terminal declined it: recorded as a failed payment (402)."
    )


class PaymentsIn(Input):
    payments: Annotated[list[TenderIn], Field(min_length=1, max_length=20)]
    tip: Amount = Field(Decimal(0), description="Tip added to the bill before these payments.")


class TipIn(Input):
    amount: PositiveAmount
    payment_method_id: PositiveId | None = Field(
        None, description="After payment: the method whose payment takes the tip."
    )


class RefundLineIn(Input):
    line_uuid: UUID
    qty: Quantity


class RefundIn(Input):
    payment_method_id: PositiveId
    lines: Annotated[list[RefundLineIn], Field(max_length=MAX_LINES)] | None = Field(
        None, description="Lines and quantities to refund; the whole order when absent."
    )
    reason: Reason | None = None


class OrderCreate(Input):
    uuid: UUID = Field(description="Client id of the order: the idempotency key of its creation.")
    table_id: PositiveId | None = None
    customer_count: Annotated[int, Field(ge=0, le=999)] | None = None
    partner_id: PositiveId | None = None
    note: ShortText | None = None
    lines: Annotated[list[LineIn], Field(max_length=MAX_LINES)] = []
    payments: Annotated[list[PaymentIn], Field(max_length=20)] = []
    state: CreateState = "draft"


class LinesAdd(Input):
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=MAX_LINES)]


class BatchCreate(Input):
    orders: Annotated[list[OrderCreate], Field(min_length=1, max_length=MAX_BATCH)] = Field(
        description=f"At most {MAX_BATCH} orders and {MAX_BATCH_LINES} lines in all."
    )

    @model_validator(mode="after")
    def _total_lines(self):
        total = sum(len(order.lines) for order in self.orders)
        if total > MAX_BATCH_LINES:
            raise ValueError(f"A batch holds at most {MAX_BATCH_LINES} lines, not {total}.")
        return self


class TransitionIn(Input):
    reason: Reason | None = None


class BillDiscount(Input):
    kind: Literal["percent", "amount"]
    value: Amount


class BillServiceCharge(Input):
    kind: Literal["percent", "amount"]
    value: Amount
    tax_ids: Annotated[list[PositiveId], Field(max_length=5)] = []


class BillSplit(Input):
    mode: Literal["items", "seats", "equal"]
    parts: Annotated[int, Field(ge=2, le=50)] | None = Field(
        None, description="Number of equal parts (mode 'equal')."
    )
    groups: Annotated[list[list[UUID]], Field(max_length=50)] | None = Field(
        None, description="Line uuids of each part (mode 'items')."
    )


class BillRequest(Input):
    discount: BillDiscount | None = None
    service_charge: BillServiceCharge | None = None
    tip: Amount = Decimal(0)
    split: BillSplit | None = None


class RefreshIn(Input):
    refresh_token: Annotated[str, Field(min_length=20, max_length=4000)]


# ---------------------------------------------------------------- outputs


class ErrorBody(Output):
    code: str
    message: str
    details: dict | list = {}


class ErrorOut(Output):
    error: ErrorBody


class TokenOut(Output):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: int
    refresh_expires_at: int


class LineOut(Output):
    id: int
    uuid: str
    product_id: int
    product_name: str
    qty: Decimal
    price_unit: Decimal
    discount: Decimal
    price_subtotal: Decimal
    price_subtotal_incl: Decimal
    note: str | None = None
    seat: int | None = None
    price_override: bool = False


class AuthorizationOut(Output):
    id: int
    payment_method_id: int
    amount: Decimal
    terminal_ref: str | None = None
    state: str


class PaymentOut(Output):
    id: int
    payment_method_id: int
    amount: Decimal
    is_change: bool = False
    terminal_ref: str | None = None


class HistoryOut(Output):
    from_state: str
    to_state: str
    at: datetime
    source: str
    reason: str | None = None
    device_id: int | None = None


class OrderOut(Output):
    id: int
    uuid: str
    name: str
    config_id: int
    session_id: int
    table_id: int | None = None
    state: str = Field(description="Restaurant lifecycle state.")
    odoo_state: str
    flow: str
    amount_tax: Decimal
    amount_total: Decimal
    amount_paid: Decimal
    currency: str
    lines: list[LineOut]
    payments: list[PaymentOut]
    history: list[HistoryOut] = []
    authorizations: list[AuthorizationOut] = []
    write_date: datetime
    kitchen_started_at: datetime | None = None
    kitchen_ready_at: datetime | None = None
    served_at: datetime | None = None


class OrderEnvelope(Output):
    order: OrderOut


class RefundOut(Output):
    order: OrderOut
    refund: OrderOut


class OrderList(Output):
    orders: list[OrderOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next page.")


class BatchResult(Output):
    uuid: str
    status: int
    order: OrderOut | None = None
    error: ErrorBody | None = None


class BatchOut(Output):
    results: list[BatchResult]


class BillLineOut(Output):
    uuid: str
    untaxed: Decimal
    tax: Decimal
    total: Decimal
    discount: Decimal


class BillPartOut(Output):
    label: str
    line_uuids: list[str]
    untaxed: Decimal
    tax: Decimal
    tip: Decimal
    total: Decimal
    total_due: Decimal


class BillTaxOut(Output):
    tax_id: int
    name: str
    base: Decimal
    amount: Decimal


class BillOut(Output):
    currency: str
    lines: list[BillLineOut]
    taxes: list[BillTaxOut]
    subtotal: Decimal
    discount: Decimal
    service_charge: Decimal
    untaxed: Decimal
    tax: Decimal
    tip: Decimal
    total: Decimal
    rounding: Decimal
    total_due: Decimal
    parts: list[BillPartOut] = []


class OpenApiOut(Output):
    model_config = ConfigDict(extra="allow")
    openapi: str
    paths: dict


class AuditVerifyOut(Output):
    model_config = ConfigDict(extra="allow")
    ok: bool
    checked: int
    first_broken: dict | None = None
    broken_ids: list[int] = []


class HealthOut(Output):
    status: str
    api: str


# -------------------------------------------------------------- products


class ProductSearchQuery(Input):
    """The query of ``GET /products``: ``q`` (fuzzy) or ``barcode`` (exact scan)."""

    q: Annotated[str, Field(min_length=1, max_length=SEARCH_QUERY_MAX_CHARS)] | None = None
    barcode: Annotated[str, Field(min_length=1, max_length=BARCODE_MAX_CHARS)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    cursor: Annotated[str, Field(max_length=512)] | None = None

    @field_validator("q")
    @classmethod
    def _normalized(cls, value):
        if value is None:
            return None
        value = search.normalize_query(value)
        if not value:
            raise ValueError("q is blank: send a word, a reference or a barcode")
        return value

    @model_validator(mode="after")
    def _one_of_q_or_barcode(self):
        if (self.q is None) == (self.barcode is None):
            raise ValueError("send exactly one of q (search) and barcode (exact scan)")
        if self.barcode is not None and self.cursor is not None:
            raise ValueError("a barcode scan has a single page: no cursor")
        return self


class ProductHitOut(Output):
    id: int
    name: str = Field(description="Display name in the device user's language, variant included.")
    default_code: str | None = Field(None, description="Internal reference.")
    barcode: str | None = None
    price: Decimal = Field(
        description="Unit price of one unit under the point of sale's pricelist (taxes as "
        "the product's sales price holds them)."
    )
    score: float = Field(ge=0, le=1, description="Match quality, 1 for an exact match.")


class ProductSearchOut(Output):
    products: list[ProductHitOut] = Field(description="Best match first; ties by id.")
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next page.")


# ------------------------------------------------------------ real time


class EventsQuery(Input):
    """The query of ``GET /events``; ``rooms`` comma-separated."""

    after: Annotated[int, Field(ge=0, le=MAX_INT)] | None = None
    rooms: Annotated[str, Field(max_length=MAX_ROOMS_PER_DEVICE * 33)] = ""
    timeout: Annotated[float, Field(ge=0, le=LONGPOLL_MAX_TIMEOUT, allow_inf_nan=False)] = 30

    @property
    def room_list(self) -> list[str]:
        return [name for name in self.rooms.split(",") if name]


class EventOut(Output):
    """One event as a device receives it (long-poll list, WebSocket push)."""

    seq: int
    type: str
    room: str
    at: str
    payload: dict


class EventsOut(Output):
    events: list[EventOut]
    last_seq: int = Field(description="Pass it back as `after`.")
    resync: bool = Field(
        description="Fetch afresh (past retention or unknown cursor), then resume."
    )


# ------------------------------------------------------------ catalog


class CurrencyOut(Output):
    id: int
    name: str
    symbol: str
    decimal_places: int
    rounding: str | None = None


class MenuCategoryOut(Output):
    id: int
    name: str
    parent_id: int | None
    sequence: int


class MenuAttributeValueOut(Output):
    id: int = Field(description="product.template.attribute.value id, for attribute_value_ids")
    name: str
    price_extra: str


class MenuAttributeOut(Output):
    id: int
    name: str
    display_type: str
    create_variant: str
    values: list[MenuAttributeValueOut]


class MenuProductOut(Output):
    id: int
    template_id: int
    name: str
    default_code: str | None
    barcode: str | None
    category_ids: list[int]
    price: str = Field(description="Unit price for one, under the pricelist, taxes as configured")
    tax_ids: list[int]
    attributes: list[MenuAttributeOut]
    available: bool = Field(description="False while sold out (86)")
    sequence: int


class MenuTaxOut(Output):
    id: int
    name: str
    amount_type: str
    amount: str
    price_include: bool


class ComboItemOut(Output):
    product_id: int
    extra_price: str


class ComboChoiceOut(Output):
    id: int
    name: str
    items: list[ComboItemOut]


class MenuComboOut(Output):
    id: int
    name: str
    price: str
    orderable: bool
    choices: list[ComboChoiceOut]


class MenuOut(Output):
    """The whole menu, or with ``since`` its changes (``full: false``):
    each section's items added or changed, and ``deleted_<section>`` ids."""

    version: str = Field(description="The ETag; pass it as since= to get changes")
    config_id: int
    full: bool = True
    since: str | None = None
    currency: CurrencyOut
    pricelist_id: int | None
    fiscal_position_id: int | None
    categories: list[MenuCategoryOut]
    products: list[MenuProductOut]
    taxes: list[MenuTaxOut]
    combos: list[MenuComboOut]
    deleted_categories: list[int] = []
    deleted_products: list[int] = []
    deleted_taxes: list[int] = []
    deleted_combos: list[int] = []


class MenuQuery(Input):
    since: str | None = Field(None, max_length=64, pattern=r"^m[0-9a-f]{32}$")


class AvailabilityIn(Input):
    available: bool


class AvailabilityOut(Output):
    product_id: int
    template_id: int
    available: bool


class TablePositionOut(Output):
    h: float
    v: float
    width: float
    height: float


class TableOut(Output):
    id: int
    table_number: int
    seats: int
    shape: str
    position: TablePositionOut
    occupied: bool
    order_ids: list[int]
    guests: int
    seated_at: str | None


class FloorOut(Output):
    id: int
    name: str
    sequence: int
    tables: list[TableOut]


class FloorsOut(Output):
    config_id: int
    floors: list[FloorOut]


class PaymentMethodOut(Output):
    id: int
    name: str
    type: str | None
    is_cash: bool
    terminal: str | None


class CashRoundingOut(Output):
    rounding: str
    method: str
    only_cash: bool


class StationOut(Output):
    id: int
    name: str
    category_ids: list[int]
    room: str
    warn_minutes: int  # an order shown this long after it was sent is late
    late_minutes: int  # ... and very late


class KitchenLineOut(Output):
    name: str
    qty: float  # on a delta ticket, the change
    attributes: list[str] = []
    modifiers: list[str] = []
    note: str = ""
    note_changed: bool = False
    combo: list[tuple[float, str]] = []


class KitchenTicketOut(Output):
    id: int
    kind: str
    state: str
    reprint: bool
    created_at: datetime
    lines: list[KitchenLineOut]


class KitchenOrderOut(Output):
    order_id: int
    order_ref: str
    table: str
    seat: str
    guests: int
    waiter: str
    note: str
    api_state: str
    kitchen_started_at: datetime | None
    tickets: list[KitchenTicketOut]


class AllDayOut(Output):
    name: str
    qty: float


class KitchenRecentOut(Output):
    order_id: int
    order_ref: str
    table: str
    kitchen_ready_at: datetime


class StationTicketsOut(Output):
    station: StationOut
    config_id: int  # its room (config:<id>) carries the orders' state changes
    last_seq: int  # subscribe after it: later tickets arrive as kitchen.ticket events
    orders: list[KitchenOrderOut]
    all_day: list[AllDayOut]
    recent: list[KitchenRecentOut]  # bumped lately: what POST /orders/{id}/recall takes back


class PosConfigOut(Output):
    config_id: int
    name: str
    company: dict
    open_session_id: int | None
    currency: CurrencyOut
    tax_rounding: str
    cash_rounding: CashRoundingOut | None
    payment_methods: list[PaymentMethodOut]
    tips: dict
    discounts: dict
    service_charge: dict
    kitchen_flow: str
    restaurant: bool
    floor_ids: list[int]
    stations: list[StationOut]
