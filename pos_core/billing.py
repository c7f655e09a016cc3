"""Bill arithmetic for restaurant orders, in Decimal, agreeing with Odoo 18.0.

The engine takes plain dataclasses (no records) and returns a :class:`Bill`
whose amounts are Decimals quantized to the currency. It must agree to the
cent with what Odoo 18.0 computes for the same ``pos.order``, so the tax part
mirrors ``account.tax._get_tax_details`` (the engine behind ``compute_all``,
``_add_tax_details_in_base_line`` and the POS UI's ``account_tax.js``):

- taxes are flattened (children of a ``group`` tax take its place) and sorted
  by ``(sequence, id)``; duplicates are dropped, as a recordset union does;
- they are split in *batches* exactly like ``_batch_for_taxes_computation``
  (same amount type, same price_include, same include_base_amount, and an
  include_base_amount tax only joins a batch whose following tax is not
  ``is_base_affected``);
- tax amounts are evaluated in Odoo's order: fixed taxes (reverse order),
  then price-included percent/division taxes (reverse order), then
  price-excluded ones (forward order); each amount is propagated to the
  bases of the other taxes as ``_propagate_extra_taxes_base`` does;
- with ``round_per_line`` the raw base (qty * discounted price) and every
  tax amount are rounded as soon as computed; with ``round_globally``
  nothing is rounded until the per-tax sums over the order are.

Rounding is HALF-UP to the currency step, as ``float_round`` does. Because
the engine works in Decimal, ties are exact; Odoo reaches the same results
in floats thanks to the epsilon in ``float_round``. One float artefact is
not reproduced: when a price-included *fixed* tax is nearly the whole price,
``price - fixed`` loses enough float precision for Odoo to round a half cent
down (the engine rounds it up, which is the exact result). Odoo-tier test:
``tests/test_billing_odoo.py``.

Order totals (``Bill.untaxed``/``tax``/``total``) are those the Odoo 18 POS
stores in ``amount_tax``/``amount_total``:

- ``round_per_line``: sums of the per-line rounded amounts. Every Odoo path
  (POS UI, ``pos.order._compute_prices``, ``compute_all``,
  ``_round_base_lines_tax_details``) gives the same numbers.
- ``round_globally``: each tax is summed unrounded over the order and rounded
  once (``get_total_tax_of_lines`` in the POS UI, ``_round_base_lines_tax_details``
  for accounting); the untaxed amount is the rounded sum of the unrounded line
  untaxed amounts (``get_total_without_tax``). The rounding deltas are then
  dispatched on the lines like ``_round_base_lines_tax_details`` does (per tax,
  onto the line with the smallest rounded total included, first on ties; the
  untaxed delta the same way), so that the lines of a bill always add up to
  its totals. Odoo's server-side ``pos.order._compute_prices`` instead sums
  the per-line ``compute_all`` amounts; :func:`compute_taxes` gives those
  per-line figures when they are needed.

Not modelled: special modes ``total_included``/``total_excluded`` (forced
price inclusion), ``code`` taxes (Enterprise), taxes with negative repartition
factors (reverse charge), repartition lines other than a single 100 % one,
fiscal positions (map the taxes before calling the engine) and multi-currency
rates (one currency per bill).

Restaurant features on top of Odoo's line model:

- A line may have a percentage discount (applied like Odoo:
  ``price_unit * (1 - discount / 100)``) and an amount discount (subtracted
  from the line's price amount after the percentage). Amounts are in *price
  terms*: they include tax when the line's taxes are price-included.
- An order discount is either a percentage, applied to every line's price
  amount after the line discounts, or an amount. An amount is distributed
  over the lines with a positive price amount, in proportion to that amount,
  in whole currency steps (largest remainders, ties to the earlier line), so
  the line shares add up exactly to the discount and each line's taxes are
  computed on its discounted price.
- A service charge is a percentage of the product lines' untaxed amount
  (after discounts) or a fixed amount; it is taxed like an extra line with
  quantity 1 and its own taxes (included or excluded).
- A tip is an untaxed amount added to the total (Odoo's tip product).
- Cash rounding applies to the total (tip included), like
  ``pos.order._get_rounded_amount``: ``HALF-UP``, ``UP`` or ``DOWN`` to the
  rounding step, then to the currency.

Split bills (:func:`split_by_items`, :func:`split_by_seats`,
:func:`split_equal`) return parts whose every amount (subtotal, service
charge, tax, tip, total, rounding, total due) adds up exactly to the bill's.
Remainders are distributed one step at a time, deterministically; the total
due of each part is a multiple of the cash-rounding step when the bill has
one, so each part can be paid in cash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import Any, NamedTuple

__all__ = [
    "AMOUNT",
    "DIVISION",
    "FIXED",
    "GROUP",
    "PERCENT",
    "ROUND_GLOBALLY",
    "ROUND_PER_LINE",
    "Bill",
    "BillLine",
    "BillPart",
    "BillingError",
    "CashRounding",
    "Currency",
    "Discount",
    "Line",
    "LineTax",
    "Order",
    "ServiceCharge",
    "Tax",
    "TaxResult",
    "TaxTotal",
    "compute_bill",
    "compute_taxes",
    "price_amounts",
    "split_by_items",
    "split_by_seats",
    "split_equal",
]

PERCENT = "percent"
FIXED = "fixed"
DIVISION = "division"
GROUP = "group"
AMOUNT_TYPES = frozenset({PERCENT, FIXED, DIVISION, GROUP})

ROUND_PER_LINE = "round_per_line"
ROUND_GLOBALLY = "round_globally"
ROUNDING_METHODS = frozenset({ROUND_PER_LINE, ROUND_GLOBALLY})

AMOUNT = "amount"
DISCOUNT_KINDS = frozenset({PERCENT, AMOUNT})

# account.cash.rounding.rounding_method → decimal rounding mode.
CASH_ROUNDING_METHODS = {"HALF-UP": ROUND_HALF_UP, "UP": ROUND_UP, "DOWN": ROUND_DOWN}

ERROR_CODES = frozenset(
    {
        "invalid_number",  # not a Decimal/int/str number, NaN or infinite
        "float_not_allowed",  # a float was given: amounts must be exact
        "invalid_tax",  # unknown amount type, nested group, ...
        "tax_conflict",  # two different taxes share an id
        "invalid_currency",  # rounding step <= 0
        "invalid_rounding_method",
        "invalid_cash_rounding",
        "duplicate_line",  # two lines share a key
        "negative_quantity",
        "negative_price",
        "discount_out_of_range",  # percentage outside [0, 100]
        "negative_discount",
        "discount_exceeds_line",
        "discount_exceeds_total",
        "invalid_discount",  # unknown kind
        "invalid_service_charge",
        "negative_tip",
        "amount_precision",  # an amount finer than the currency step
        "invalid_parts",  # split_equal with n < 1
        "unknown_line",
        "unassigned_line",
        "empty_group",
        "no_seats",
    }
)

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)

# Non-terminating divisions (an included 21 % tax: x * 21 / 121) leave the
# last of 34 digits off, so a sum that is mathematically a tie (x.xx5) can
# land a hair below it. Before rounding, amounts are snapped to 1e-20 (banker's
# rounding), far below any real price and far finer than the epsilon Odoo's
# float_round uses for the same purpose.
_SNAP = Decimal("1e-20")

# One context for every computation: enough digits for any restaurant bill,
# exact ties, and errors instead of silent NaN/Infinity.
_CONTEXT = Context(prec=34, traps=[InvalidOperation, DivisionByZero, Overflow])


class BillingError(ValueError):
    """Bad billing input; ``code`` is machine-readable (see ``ERROR_CODES``)."""

    code = "billing_error"

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


def _to_decimal(value: Any, what: str) -> Decimal:
    """Accept Decimal, int and numeric strings; refuse floats (inexact)."""
    if value.__class__ is Decimal:
        if value.is_finite():
            return value
    elif isinstance(value, float):
        raise BillingError(
            "float_not_allowed", f"{what} must be a Decimal, not a float", field=what
        )
    elif isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            dec = Decimal(value)
        except InvalidOperation:
            dec = None
        if dec is not None and dec.is_finite():
            return dec
    elif isinstance(value, Decimal) and value.is_finite():
        return Decimal(value)
    raise BillingError("invalid_number", f"{what} is not a finite number: {value!r}", field=what)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency's rounding step (``res.currency.rounding``)."""

    rounding: Decimal = Decimal("0.01")
    # round(): snap then HALF-UP, for amounts that went through sums of
    # inexact quotients; round_exact(): HALF-UP only, for exact amounts.
    round: Callable[[Decimal], Decimal] = field(init=False, repr=False, compare=False)
    round_exact: Callable[[Decimal], Decimal] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rounding = _to_decimal(self.rounding, "currency.rounding")
        if rounding <= 0:
            raise BillingError("invalid_currency", "currency rounding must be positive")
        object.__setattr__(self, "rounding", rounding)
        normal = rounding.normalize()
        if normal.as_tuple().digits == (1,):
            # A power of ten: quantize directly.
            def round_exact(value: Decimal, _exp: Decimal = normal) -> Decimal:
                return value.quantize(_exp, ROUND_HALF_UP)

            def round_(value: Decimal, _exp: Decimal = normal) -> Decimal:
                return value.quantize(_SNAP).quantize(_exp, ROUND_HALF_UP)

        else:
            # Steps like 0.05 normalise first, as float_round does.
            def round_exact(value: Decimal, _step: Decimal = rounding) -> Decimal:
                return (value / _step).quantize(_ONE, ROUND_HALF_UP) * _step

            def round_(value: Decimal, _step: Decimal = rounding) -> Decimal:
                return (value / _step).quantize(_SNAP).quantize(_ONE, ROUND_HALF_UP) * _step

        object.__setattr__(self, "round", round_)
        object.__setattr__(self, "round_exact", round_exact)

    def is_exact(self, value: Decimal) -> bool:
        return value % self.rounding == 0


@dataclass(frozen=True, slots=True)
class CashRounding:
    """``account.cash.rounding``: step and method ('HALF-UP', 'UP', 'DOWN')."""

    rounding: Decimal
    method: str = "HALF-UP"

    def __post_init__(self) -> None:
        rounding = _to_decimal(self.rounding, "cash_rounding.rounding")
        if rounding <= 0 or self.method not in CASH_ROUNDING_METHODS:
            raise BillingError(
                "invalid_cash_rounding",
                "cash rounding needs a positive step and a method in HALF-UP, UP, DOWN",
                rounding=str(rounding),
                method=self.method,
            )
        object.__setattr__(self, "rounding", rounding)

    def round(self, value: Decimal) -> Decimal:
        step = self.rounding
        value = (value / step).quantize(_SNAP)
        return value.quantize(_ONE, CASH_ROUNDING_METHODS[self.method]) * step


@dataclass(frozen=True, slots=True)
class Tax:
    """An ``account.tax`` as far as amounts are concerned.

    ``price_include`` is the effective flag (18.0 resolves it from
    ``price_include_override`` and the company's ``account_price_include``).
    ``children`` is used only with ``amount_type='group'``.
    """

    id: int
    amount_type: str = PERCENT
    amount: Decimal = _ZERO
    price_include: bool = False
    include_base_amount: bool = False
    is_base_affected: bool = True
    sequence: int = 1
    children: tuple[Tax, ...] = ()
    name: str = ""
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.amount_type not in AMOUNT_TYPES:
            raise BillingError(
                "invalid_tax", f"unknown tax amount type {self.amount_type!r}", tax_id=self.id
            )
        amount = _to_decimal(self.amount, f"tax {self.id} amount")
        children = tuple(self.children)
        if self.amount_type == GROUP:
            if any(child.amount_type == GROUP for child in children):
                raise BillingError(
                    "invalid_tax", "a group tax cannot contain a group", tax_id=self.id
                )
        elif children:
            raise BillingError("invalid_tax", "only group taxes have children", tax_id=self.id)
        object.__setattr__(self, "amount", amount)
        object.__setattr__(self, "children", children)
        # Cached: taxes are dictionary keys on the hot path (plan cache).
        object.__setattr__(
            self,
            "_hash",
            hash(
                (
                    self.id,
                    self.amount_type,
                    amount,
                    self.price_include,
                    self.include_base_amount,
                    self.is_base_affected,
                    self.sequence,
                    children,
                )
            ),
        )

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Line:
    """An order line. ``discount_pct`` is Odoo's ``discount``; ``discount_amount``
    is taken off the line's price amount after it (in price terms)."""

    key: Any
    product_id: int | None
    qty: Decimal
    price_unit: Decimal
    discount_pct: Decimal = _ZERO
    discount_amount: Decimal = _ZERO
    taxes: tuple[Tax, ...] = ()
    seat: int | None = None


@dataclass(frozen=True, slots=True)
class Discount:
    """Order-level discount: ``kind`` is 'percent' or 'amount' (price terms)."""

    kind: str
    value: Decimal


@dataclass(frozen=True, slots=True)
class ServiceCharge:
    """Percentage of the untaxed subtotal, or a fixed amount, with its taxes."""

    kind: str
    value: Decimal
    taxes: tuple[Tax, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    lines: tuple[Line, ...]
    currency: Currency = Currency()
    rounding_method: str = ROUND_PER_LINE
    discount: Discount | None = None
    service_charge: ServiceCharge | None = None
    tip: Decimal = _ZERO
    cash_rounding: CashRounding | None = None
    # Refund lines (negative quantity or price) are refused unless allowed.
    allow_negative: bool = False


# ---------------------------------------------------------------------------
# Outputs: named tuples (cheap to build on the hot path, ``_asdict()`` for JSON)
# ---------------------------------------------------------------------------


class LineTax(NamedTuple):
    tax_id: int
    base: Decimal
    amount: Decimal


class TaxResult(NamedTuple):
    """Per-line result, shaped like ``account.tax.compute_all``: totals and
    tax amounts rounded per line, plus the unrounded figures."""

    total_excluded: Decimal
    total_included: Decimal
    taxes: tuple[LineTax, ...]
    raw_total_excluded: Decimal
    raw_total_included: Decimal
    raw_taxes: tuple[LineTax, ...]


class BillLine(NamedTuple):
    key: Any
    product_id: int | None
    seat: int | None
    qty: Decimal
    price_unit: Decimal
    discount: Decimal  # all discounts on this line, price terms
    untaxed: Decimal
    tax: Decimal
    total: Decimal
    taxes: tuple[LineTax, ...]


class TaxTotal(NamedTuple):
    tax_id: int
    name: str
    base: Decimal
    amount: Decimal


class Bill(NamedTuple):
    lines: tuple[BillLine, ...]
    taxes: tuple[TaxTotal, ...]
    subtotal: Decimal  # untaxed amount of the product lines, after discounts
    discount: Decimal  # informational: all discounts, price terms
    service_charge: Decimal  # untaxed
    service_charge_tax: Decimal
    untaxed: Decimal  # subtotal + service_charge
    tax: Decimal
    tip: Decimal
    total: Decimal  # untaxed + tax + tip
    rounding: Decimal  # cash-rounding adjustment
    total_due: Decimal  # total + rounding
    currency: Currency
    cash_rounding: CashRounding | None


class BillPart(NamedTuple):
    index: int
    label: Any  # group index, seat number or part number
    line_keys: tuple[Any, ...]
    subtotal: Decimal
    service_charge: Decimal
    tax: Decimal
    tip: Decimal
    total: Decimal
    rounding: Decimal
    total_due: Decimal

    @property
    def untaxed(self) -> Decimal:
        return self.subtotal + self.service_charge


# ---------------------------------------------------------------------------
# Tax evaluation plans: everything that depends only on the set of taxes
# (order, batches, propagation) is computed once and cached.
# ---------------------------------------------------------------------------

_K_FIXED, _K_RATIO, _K_RATE = 0, 1, 2


class _Plan:
    __slots__ = (
        "base_add",
        "base_sub",
        "batch",
        "den",
        "ids",
        "incl",
        "kind",
        "n",
        "num",
        "order",
        "tax_add",
        "tax_sub",
        "taxes",
    )

    def __init__(self, taxes: tuple[Tax, ...]) -> None:
        flat: list[Tax] = []
        seen: set[int] = set()
        for tax in sorted(taxes, key=_tax_sort_key):
            members = (
                sorted(tax.children, key=_tax_sort_key) if tax.amount_type == GROUP else (tax,)
            )
            for member in members:
                if member.id not in seen:
                    seen.add(member.id)
                    flat.append(member)
        n = len(flat)
        self.taxes = tuple(flat)
        self.ids = tuple(tax.id for tax in flat)
        self.n = n

        # _batch_for_taxes_computation (special_mode False).
        batch_of: list[tuple[int, ...]] = [()] * n
        batch: list[int] = []
        is_base_affected = False
        for i in range(n - 1, -1, -1):
            tax = flat[i]
            if batch:
                first = flat[batch[0]]
                same_batch = (
                    tax.amount_type == first.amount_type
                    and tax.price_include == first.price_include
                    and tax.include_base_amount == first.include_base_amount
                    and (not tax.include_base_amount or not is_base_affected)
                )
                if not same_batch:
                    for j in batch:
                        batch_of[j] = tuple(sorted(batch))
                    batch = []
            is_base_affected = tax.is_base_affected
            batch.append(i)
        for j in batch:
            batch_of[j] = tuple(sorted(batch))
        self.batch = tuple(batch_of)

        # Evaluation order of _get_tax_details.
        fixed = [i for i in range(n - 1, -1, -1) if flat[i].amount_type == FIXED]
        included = [
            i
            for i in range(n - 1, -1, -1)
            if flat[i].amount_type != FIXED and flat[i].price_include
        ]
        excluded = [
            i for i in range(n) if flat[i].amount_type != FIXED and not flat[i].price_include
        ]
        order = fixed + included + excluded
        self.order = tuple(order)
        self.incl = tuple(tax.price_include for tax in flat)

        kind, num, den = [], [], []
        for i, tax in enumerate(flat):
            total = sum((flat[j].amount for j in batch_of[i]), _ZERO)
            if tax.amount_type == FIXED:
                kind.append(_K_FIXED)
                num.append(tax.amount)
                den.append(_ONE)
            elif tax.price_include and tax.amount_type == PERCENT:
                # base * amount / 100 / (1 + total / 100); a factor of 0 when
                # the batch totals -100 %.
                kind.append(_K_RATIO)
                num.append(tax.amount if total != -_HUNDRED else _ZERO)
                den.append(_HUNDRED + total if total != -_HUNDRED else _ONE)
            elif tax.price_include or tax.amount_type == PERCENT:
                # Included division and excluded percent: base * amount / 100.
                kind.append(_K_RATE)
                num.append(tax.amount / _HUNDRED)
                den.append(_ONE)
            else:
                # Excluded division: base * amount / 100 / (1 - total / 100).
                kind.append(_K_RATIO)
                num.append(tax.amount)
                den.append(_HUNDRED - total if total != _HUNDRED else _HUNDRED)
        self.kind = tuple(kind)
        self.num = tuple(num)
        self.den = tuple(den)

        # _propagate_extra_taxes_base (special_mode False). The extra base "for
        # tax" only reaches taxes not computed yet; the order is static, so the
        # targets are too.
        position = {i: p for p, i in enumerate(order)}
        tax_add, tax_sub, base_add, base_sub = [], [], [], []
        for i, tax in enumerate(flat):
            members = set(batch_of[i])
            before = []
            for j in range(n):
                if j in members:
                    break
                before.append(j)
            after = []
            for j in range(n - 1, -1, -1):
                if j in members:
                    break
                after.append(j)
            plus: list[int] = []
            minus: list[int] = []
            if tax.price_include:
                if not tax.include_base_amount:
                    minus.extend(j for j in after if flat[j].price_include)
                minus.extend(before)
            elif tax.include_base_amount:
                plus.extend(after)
            tax_add.append(tuple(j for j in plus if position[j] > position[i]))
            tax_sub.append(tuple(j for j in minus if position[j] > position[i]))
            base_add.append(tuple(plus))
            base_sub.append(tuple(minus))
        self.tax_add = tuple(tax_add)
        self.tax_sub = tuple(tax_sub)
        self.base_add = tuple(base_add)
        self.base_sub = tuple(base_sub)

    def evaluate(
        self, raw: Decimal, qty: Decimal, round_: Any
    ) -> tuple[Decimal, list[Decimal], list[Decimal]]:
        """Tax amounts and bases for a raw base (qty * discounted price).

        ``round_`` rounds each amount as soon as computed (round_per_line) or
        is None (round_globally). Returns (total_excluded, amounts, bases).
        """
        n = self.n
        if not n:
            return raw, [], []
        kind, num, den = self.kind, self.num, self.den
        tax_add, tax_sub, base_add, base_sub = (
            self.tax_add,
            self.tax_sub,
            self.base_add,
            self.base_sub,
        )
        amounts = [_ZERO] * n
        extra_tax = [_ZERO] * n
        extra_base = [_ZERO] * n
        for i in self.order:
            k = kind[i]
            if k == _K_RATE:
                amount = (raw + extra_tax[i]) * num[i]
            elif k == _K_RATIO:
                amount = (raw + extra_tax[i]) * num[i] / den[i]
            else:
                amount = qty * num[i]
            if round_ is not None:
                amount = round_(amount)
            amounts[i] = amount
            for j in tax_add[i]:
                extra_tax[j] += amount
            for j in tax_sub[i]:
                extra_tax[j] -= amount
            for j in base_add[i]:
                extra_base[j] += amount
            for j in base_sub[i]:
                extra_base[j] -= amount
        incl, batch = self.incl, self.batch
        bases = [_ZERO] * n
        for i in range(n):
            base = raw + extra_base[i]
            if incl[i]:
                members = batch[i]
                if len(members) == 1:
                    base -= amounts[i]
                else:
                    for j in members:
                        base -= amounts[j]
            bases[i] = base
        return bases[0], amounts, bases


def _tax_sort_key(tax: Tax) -> tuple[int, int]:
    return tax.sequence, tax.id


_PLANS: dict[tuple[Tax, ...], _Plan] = {}
_PLANS_MAX = 4096


def _plan(taxes: tuple[Tax, ...]) -> _Plan:
    plan = _PLANS.get(taxes)
    if plan is None:
        for tax in taxes:
            if not isinstance(tax, Tax):
                raise BillingError("invalid_tax", f"not a Tax: {tax!r}")
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        plan = _PLANS[taxes] = _Plan(taxes)
    return plan


# ---------------------------------------------------------------------------
# compute_all equivalent for one line
# ---------------------------------------------------------------------------


def compute_taxes(
    taxes: Sequence[Tax],
    price_unit: Decimal,
    qty: Decimal = _ONE,
    *,
    currency: Currency | None = None,
    rounding_method: str = ROUND_PER_LINE,
    discount_pct: Decimal = _ZERO,
) -> TaxResult:
    """What ``taxes.compute_all(price_unit * (1 - discount / 100), currency, qty)``
    returns for one line: ``pos.order.line._compute_amount_line_all`` and
    ``pos.order._amount_line_tax`` are built on it."""
    currency = currency or Currency()
    if rounding_method not in ROUNDING_METHODS:
        raise BillingError(
            "invalid_rounding_method", f"unknown rounding method {rounding_method!r}"
        )
    with localcontext(_CONTEXT):
        price_unit = _to_decimal(price_unit, "price_unit")
        qty = _to_decimal(qty, "qty")
        discount_pct = _to_decimal(discount_pct, "discount_pct")
        rnd = currency.round
        raw = qty * price_unit
        if discount_pct:
            raw = raw * (_HUNDRED - discount_pct) / _HUNDRED
        per_line = rounding_method == ROUND_PER_LINE
        if per_line:
            # The price may be a quotient (an amount over a quantity): snap.
            raw = rnd(raw)
        plan = _plan(tuple(taxes))
        excl, amounts, bases = plan.evaluate(raw, qty, currency.round_exact if per_line else None)
        incl = excl + sum(amounts, _ZERO)
        ids = plan.ids
        return TaxResult(
            total_excluded=rnd(excl),
            total_included=rnd(incl),
            taxes=tuple(LineTax(t, rnd(b), rnd(a)) for t, b, a in zip(ids, bases, amounts)),
            raw_total_excluded=excl,
            raw_total_included=incl,
            raw_taxes=tuple(LineTax(t, b, a) for t, b, a in zip(ids, bases, amounts)),
        )


# ---------------------------------------------------------------------------
# The bill
# ---------------------------------------------------------------------------


def _allocate(total: Decimal, weights: Sequence[Decimal], step: Decimal) -> list[Decimal]:
    """Split ``total`` (a multiple of ``step``) in proportion to ``weights``.

    Largest remainders, ties to the earlier index; the shares add up exactly
    to ``total``. Weights of mixed signs or all zero split equally.
    """
    n = len(weights)
    units = total / step
    if units != units.to_integral_value():
        raise BillingError("amount_precision", f"{total} is not a multiple of {step}")
    units = int(units)
    sign = -1 if units < 0 else 1
    units = abs(units)
    if all(w >= 0 for w in weights):
        ws = list(weights)
    elif all(w <= 0 for w in weights):
        ws = [-w for w in weights]
    else:
        ws = [_ONE] * n
    total_weight = sum(ws, _ZERO)
    if not total_weight:
        ws = [_ONE] * n
        total_weight = Decimal(n)
    shares = []
    remainders = []
    given = 0
    for i, w in enumerate(ws):
        q, r = divmod(units * w, total_weight)
        q = int(q)
        shares.append(q)
        given += q
        remainders.append((-r, i))
    left = units - given
    if left:
        for _neg, i in sorted(remainders)[:left]:
            shares[i] += 1
    return [step * (sign * s) for s in shares]


def _check_amount(value: Any, what: str, currency: Currency) -> Decimal:
    value = _to_decimal(value, what)
    if not currency.is_exact(value):
        raise BillingError(
            "amount_precision",
            f"{what} {value} is finer than the currency step {currency.rounding}",
            field=what,
        )
    return value


def compute_bill(order: Order) -> Bill:
    """The bill of an order; see the module docstring for the rules."""
    with localcontext(_CONTEXT):
        return _compute_bill(order)


def price_amounts(order: Order) -> tuple[Decimal, ...]:
    """Each line's price amount after all its discounts (line and order),
    unrounded: the ``qty * price_unit * (1 - discount / 100)`` an Odoo line
    must have to be taxed as the engine taxes it. Lines with only percentage
    discounts map to Odoo exactly (``discount`` = combined percentage); with
    amount discounts, ``price_unit = amount / qty`` and no discount."""
    with localcontext(_CONTEXT):
        lines = tuple(order.lines)
        net = _line_amounts(lines, order.currency, order.allow_negative)[3]
        if order.discount is not None:
            net = _apply_order_discount(net, order.discount, order.currency)
        return tuple(net)


def _line_amounts(
    lines: tuple[Line, ...], currency: Currency, allow_negative: bool
) -> tuple[list[Decimal], list[Decimal], list[Decimal], list[Decimal]]:
    """Validated quantities and prices, and the price amounts before and
    after the line discounts (unrounded)."""
    keys: set[Any] = set()
    qtys: list[Decimal] = []
    prices: list[Decimal] = []
    gross: list[Decimal] = []
    net: list[Decimal] = []
    for line in lines:
        key = line.key
        if key in keys:
            raise BillingError("duplicate_line", f"two lines have the key {key!r}", line=key)
        keys.add(key)
        qty = line.qty
        if qty.__class__ is not Decimal or not qty.is_finite():
            qty = _to_decimal(qty, "qty")
        price = line.price_unit
        if price.__class__ is not Decimal or not price.is_finite():
            price = _to_decimal(price, "price_unit")
        if not allow_negative:
            if qty < 0:
                raise BillingError(
                    "negative_quantity", f"line {key!r} has a negative quantity", line=key
                )
            if price < 0:
                raise BillingError("negative_price", f"line {key!r} has a negative price", line=key)
        amount = qty * price
        qtys.append(qty)
        prices.append(price)
        gross.append(amount)
        pct = line.discount_pct
        if pct:
            pct = _to_decimal(pct, "discount_pct")
            if pct < 0 or pct > _HUNDRED:
                raise BillingError(
                    "discount_out_of_range",
                    f"line {key!r}: discount must be within 0-100 %",
                    line=key,
                )
            amount = amount * (_HUNDRED - pct) / _HUNDRED
        off = line.discount_amount
        if off:
            off = _check_amount(off, "discount_amount", currency)
            if off < 0:
                raise BillingError(
                    "negative_discount", f"line {key!r}: negative discount", line=key
                )
            if off > abs(amount):
                raise BillingError(
                    "discount_exceeds_line",
                    f"line {key!r}: discount exceeds the line amount",
                    line=key,
                )
            amount = amount - off if amount >= 0 else amount + off
        net.append(amount)
    return qtys, prices, gross, net


def _apply_order_discount(
    net: list[Decimal], discount: Discount, currency: Currency
) -> list[Decimal]:
    value = _to_decimal(discount.value, "discount.value")
    if discount.kind == PERCENT:
        if value < 0 or value > _HUNDRED:
            raise BillingError("discount_out_of_range", "order discount must be within 0-100 %")
        if not value:
            return net
        factor = (_HUNDRED - value) / _HUNDRED
        return [amount * factor for amount in net]
    if discount.kind == AMOUNT:
        value = _check_amount(value, "discount.value", currency)
        if value < 0:
            raise BillingError("negative_discount", "negative order discount")
        if not value:
            return net
        weights = [amount if amount > 0 else _ZERO for amount in net]
        if value > sum(weights, _ZERO):
            raise BillingError("discount_exceeds_total", "order discount exceeds the order amount")
        shares = _allocate(value, weights, currency.rounding)
        return [amount - share for amount, share in zip(net, shares)]
    raise BillingError("invalid_discount", f"unknown discount kind {discount.kind!r}")


def _compute_bill(order: Order) -> Bill:
    currency = order.currency
    rnd = currency.round
    rounding_method = order.rounding_method
    if rounding_method not in ROUNDING_METHODS:
        raise BillingError(
            "invalid_rounding_method", f"unknown rounding method {rounding_method!r}"
        )
    # With round_per_line every operand is a whole number of cents, so each
    # amount is one exact product or quotient: no snapping is needed.
    per_line = rounding_method == ROUND_PER_LINE
    round_line = currency.round_exact if per_line else rnd
    lines = order.lines if order.lines.__class__ is tuple else tuple(order.lines)

    qtys, prices, gross, net = _line_amounts(lines, currency, order.allow_negative)
    if order.discount is not None:
        net = _apply_order_discount(net, order.discount, currency)

    # Taxes per line, as _get_tax_details: (plan, total excluded, amounts, bases).
    evaluated = []
    plans = _PLANS
    round_in_plan = round_line if per_line else None
    for line, amount, qty in zip(lines, net, qtys):
        taxes = line.taxes
        plan = plans.get(taxes) if taxes.__class__ is tuple else None
        if plan is None:
            plan = _plan(tuple(taxes))
        raw = round_line(amount) if per_line else amount
        excl, amounts, bases = plan.evaluate(raw, qty, round_in_plan)
        evaluated.append((plan, excl, amounts, bases))
    n_products = len(evaluated)

    # The service charge is one more base line, quantity 1.
    service = order.service_charge
    if service is not None:
        value = _to_decimal(service.value, "service_charge.value")
        if value < 0:
            raise BillingError("invalid_service_charge", "negative service charge")
        if service.kind == PERCENT:
            products_untaxed = sum((e[1] for e in evaluated), _ZERO)
            price = rnd(rnd(products_untaxed) * value / _HUNDRED)
        elif service.kind == AMOUNT:
            price = _check_amount(value, "service_charge.value", currency)
        else:
            raise BillingError(
                "invalid_service_charge", f"unknown service charge kind {service.kind!r}"
            )
        plan = _plan(tuple(service.taxes))
        excl, amounts, bases = plan.evaluate(price, _ONE, round_in_plan)
        evaluated.append((plan, excl, amounts, bases))

    tip = _check_amount(order.tip, "tip", currency)
    if tip < 0:
        raise BillingError("negative_tip", "negative tip")

    # One definition per tax id.
    tax_by_id: dict[int, Tax] = {}
    seen_plans: set[_Plan] = set()
    for entry in evaluated:
        plan = entry[0]
        if plan not in seen_plans:
            seen_plans.add(plan)
            for tax in plan.taxes:
                known = tax_by_id.setdefault(tax.id, tax)
                if known is not tax and known != tax:
                    raise BillingError(
                        "tax_conflict", f"two different taxes have the id {tax.id}", tax_id=tax.id
                    )

    n_lines = len(evaluated)
    # Per line everything is already in cents (raw base and amounts, hence the
    # bases); globally the rounding happens now.
    untaxed_l = [entry[1] for entry in evaluated] if per_line else _round_globally(evaluated, rnd)

    # Assemble.
    zero = round_line(_ZERO)
    per_tax: dict[int, list[Decimal]] = {}
    line_results: list[tuple[Decimal, tuple[LineTax, ...]]] = []
    for i in range(n_lines):
        plan, _excl, amounts, bases = evaluated[i]
        line_tax = zero
        details = []
        for tax_id, base, amount in zip(plan.ids, bases, amounts):
            line_tax += amount
            details.append(LineTax(tax_id, base, amount))
            sums = per_tax.get(tax_id)
            if sums is None:
                per_tax[tax_id] = [base, amount]
            else:
                sums[0] += base
                sums[1] += amount
        line_results.append((line_tax, tuple(details)))

    bill_lines = []
    subtotal = products_tax = discount_total = zero
    for i in range(n_products):
        line = lines[i]
        untaxed = untaxed_l[i]
        line_tax, details = line_results[i]
        line_discount = round_line(gross[i] - net[i]) if gross[i] != net[i] else zero
        subtotal += untaxed
        products_tax += line_tax
        discount_total += line_discount
        bill_lines.append(
            BillLine(
                line.key,
                line.product_id,
                line.seat,
                qtys[i],
                prices[i],
                line_discount,
                untaxed,
                line_tax,
                untaxed + line_tax,
                details,
            )
        )
    if n_lines > n_products:
        service_untaxed = untaxed_l[-1] + zero
        service_tax = line_results[-1][0]
    else:
        service_untaxed = service_tax = zero

    taxes = tuple(
        TaxTotal(tax.id, tax.name, per_tax[tax.id][0], per_tax[tax.id][1])
        for tax in sorted((tax_by_id[t] for t in per_tax), key=_tax_sort_key)
    )
    untaxed = subtotal + service_untaxed
    tax = products_tax + service_tax
    tip = tip + zero
    total = untaxed + tax + tip
    cash = order.cash_rounding
    total_due = rnd(cash.round(total)) if cash is not None else total
    return Bill(
        tuple(bill_lines),
        taxes,
        subtotal,
        discount_total,
        service_untaxed,
        service_tax,
        untaxed,
        tax,
        tip,
        total,
        total_due - total,
        total_due,
        currency,
        cash,
    )


def _round_globally(evaluated: list, rnd: Callable[[Decimal], Decimal]) -> list[Decimal]:
    """Round each line, then put the difference between the rounded per-tax
    sums and the sums of the rounded lines on one line per tax, as
    ``_round_base_lines_tax_details`` does. Rounds ``evaluated`` in place and
    returns the lines' untaxed amounts."""
    # tax id -> [raw base, raw amount, rounded base, rounded amount, holders]
    per_tax: dict[int, list] = {}
    raw_untaxed = _ZERO
    untaxed_l = []
    included_l = []
    for i, (plan, excl, amounts, bases) in enumerate(evaluated):
        raw_untaxed += excl
        raw_included = excl
        for j, tax_id in enumerate(plan.ids):
            base, amount = bases[j], amounts[j]
            raw_included += amount
            rounded_base = bases[j] = rnd(base)
            rounded_amount = amounts[j] = rnd(amount)
            sums = per_tax.get(tax_id)
            if sums is None:
                per_tax[tax_id] = [base, amount, rounded_base, rounded_amount, [(i, j)]]
            else:
                sums[0] += base
                sums[1] += amount
                sums[2] += rounded_base
                sums[3] += rounded_amount
                sums[4].append((i, j))
        untaxed_l.append(rnd(excl))
        included_l.append(rnd(raw_included))
    for raw_base, raw_amount, rounded_base, rounded_amount, holders in per_tax.values():
        delta_base = rnd(raw_base) - rounded_base
        delta_amount = rnd(raw_amount) - rounded_amount
        if delta_base or delta_amount:
            # Odoo: min(base_lines, key=total_included_currency), first on ties.
            i, j = min(holders, key=lambda h: (included_l[h[0]], h[0]))
            evaluated[i][3][j] += delta_base
            evaluated[i][2][j] += delta_amount
    delta_untaxed = rnd(raw_untaxed) - sum(untaxed_l, _ZERO)
    if delta_untaxed:
        target = min(range(len(evaluated)), key=lambda i: (included_l[i], i))
        untaxed_l[target] += delta_untaxed
    return untaxed_l


# ---------------------------------------------------------------------------
# Split bills
# ---------------------------------------------------------------------------


def _due_step(bill: Bill) -> Decimal:
    """Parts are due in cash-rounding steps when the bill's due amount allows."""
    cash = bill.cash_rounding
    if (
        cash is not None
        and bill.total_due % cash.rounding == 0
        and cash.rounding % bill.currency.rounding == 0
    ):
        return cash.rounding
    return bill.currency.rounding


def _round_parts(totals: list[Decimal], total_due: Decimal, step: Decimal) -> list[Decimal]:
    """Each part's total to the nearest ``step``, then the difference with the
    bill's due amount settled one step at a time on the parts the rounding
    moved most (ties to the earlier part). Without cash rounding the parts
    are due exactly their totals."""
    dues = [(t / step).quantize(_ONE, ROUND_HALF_UP) * step for t in totals]
    left = int((total_due - sum(dues, _ZERO)) / step)
    if left:
        n = len(totals)
        sign = 1 if left > 0 else -1
        # Parts rounded down the most take the extra steps (or up, to give back).
        order = sorted(range(n), key=lambda i: (-sign * (totals[i] - dues[i]), i))
        for k in range(abs(left)):
            dues[order[k % n]] += sign * step
    return dues


def _parts_from_lines(
    bill: Bill,
    labels: Sequence[Any],
    keys: Sequence[tuple[Any, ...]],
    subtotals: Sequence[Decimal],
    taxes: Sequence[Decimal],
) -> tuple[BillPart, ...]:
    """Parts whose own lines are known; service charge, its tax and the tip are
    shared in proportion to the parts' line totals."""
    step = bill.currency.rounding
    weights = [s + t for s, t in zip(subtotals, taxes)]
    service = _allocate(bill.service_charge, weights, step)
    service_tax = _allocate(bill.service_charge_tax, weights, step)
    tips = _allocate(bill.tip, weights, step)
    totals = [
        subtotals[i] + service[i] + taxes[i] + service_tax[i] + tips[i] for i in range(len(labels))
    ]
    dues = _round_parts(totals, bill.total_due, _due_step(bill))
    return tuple(
        BillPart(
            index=i,
            label=labels[i],
            line_keys=keys[i],
            subtotal=subtotals[i],
            service_charge=service[i],
            tax=taxes[i] + service_tax[i],
            tip=tips[i],
            total=totals[i],
            rounding=dues[i] - totals[i],
            total_due=dues[i],
        )
        for i in range(len(labels))
    )


def split_by_items(bill: Bill, groups: Sequence[Iterable[Any]]) -> tuple[BillPart, ...]:
    """One part per group of line keys; every line in exactly one group."""
    with localcontext(_CONTEXT):
        by_key = {line.key: line for line in bill.lines}
        owner: dict[Any, int] = {}
        keys: list[tuple[Any, ...]] = []
        for index, group in enumerate(groups):
            group_keys = tuple(group)
            if not group_keys:
                raise BillingError("empty_group", f"group {index} has no line", group=index)
            for key in group_keys:
                if key not in by_key:
                    raise BillingError("unknown_line", f"no line has the key {key!r}", line=key)
                if key in owner:
                    raise BillingError("duplicate_line", f"line {key!r} is in two groups", line=key)
                owner[key] = index
            keys.append(group_keys)
        if not keys:
            raise BillingError("invalid_parts", "at least one group is needed")
        missing = [line.key for line in bill.lines if line.key not in owner]
        if missing:
            raise BillingError(
                "unassigned_line", f"lines not in any group: {missing!r}", lines=missing
            )
        zero = bill.currency.round_exact(_ZERO)
        subtotals = [sum((by_key[k].untaxed for k in ks), zero) for ks in keys]
        taxes = [sum((by_key[k].tax for k in ks), zero) for ks in keys]
        return _parts_from_lines(bill, list(range(len(keys))), keys, subtotals, taxes)


def split_by_seats(bill: Bill) -> tuple[BillPart, ...]:
    """One part per seat, in seat order. Lines without a seat are shared:
    their untaxed amount and tax are split equally between the seats (the
    odd cents rotate from line to line)."""
    with localcontext(_CONTEXT):
        seats = sorted({line.seat for line in bill.lines if line.seat is not None})
        if not seats:
            raise BillingError("no_seats", "no line has a seat")
        index = {seat: i for i, seat in enumerate(seats)}
        n = len(seats)
        step = bill.currency.rounding
        zero = bill.currency.round_exact(_ZERO)
        subtotals = [zero] * n
        taxes = [zero] * n
        keys: list[list[Any]] = [[] for _ in range(n)]
        equal = [_ONE] * n
        shared = 0
        for line in bill.lines:
            if line.seat is not None:
                i = index[line.seat]
                subtotals[i] += line.untaxed
                taxes[i] += line.tax
                keys[i].append(line.key)
                continue
            offset = shared % n
            shared += 1
            untaxed_shares = _allocate(line.untaxed, equal, step)
            tax_shares = _allocate(line.tax, equal, step)
            for j in range(n):
                i = (j + offset) % n
                subtotals[i] += untaxed_shares[j]
                taxes[i] += tax_shares[j]
                keys[i].append(line.key)
        return _parts_from_lines(bill, seats, [tuple(k) for k in keys], subtotals, taxes)


def split_equal(bill: Bill, n: int) -> tuple[BillPart, ...]:
    """``n`` parts as equal as the currency (or cash-rounding) step allows;
    the earlier parts take the odd steps."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BillingError("invalid_parts", f"cannot split into {n!r} parts", parts=n)
    with localcontext(_CONTEXT):
        step = bill.currency.rounding
        equal = [_ONE] * n
        # Components are cut cumulatively so that each part's components add
        # up to its total: with equal weights the cut is monotonic, so no
        # component goes negative.
        cumulative = _ZERO
        previous = [_ZERO] * n
        components = []
        for amount in (bill.subtotal, bill.service_charge, bill.tax, bill.tip):
            cumulative += amount
            cut = _allocate(cumulative, equal, step)
            components.append([c - p for c, p in zip(cut, previous)])
            previous = cut
        totals = previous
        dues = _allocate(bill.total_due, equal, _due_step(bill))
        subtotal, service, tax, tip = components
        return tuple(
            BillPart(
                index=i,
                label=i + 1,
                line_keys=(),
                subtotal=subtotal[i],
                service_charge=service[i],
                tax=tax[i],
                tip=tip[i],
                total=totals[i],
                rounding=dues[i] - totals[i],
                total_due=dues[i],
            )
            for i in range(n)
        )
