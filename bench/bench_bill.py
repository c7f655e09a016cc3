"""Micro-benchmark of the billing engine.

Times ``compute_bill`` on a 20-line order, two taxes per line (one included,
one excluded with include_base_amount) and line + order discounts, in both
tax rounding modes. Prints p50/p99 in milliseconds; the target is
p50 <= 0.2 ms for round_per_line.

    python3 bench/bench_bill.py [--runs 2000] [--check]

``--check`` exits with status 1 when the p50 target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pos_core import billing

TARGET_P50_MS = 0.2


def build_order(rounding_method: str) -> billing.Order:
    vat = billing.Tax(1, billing.PERCENT, Decimal("21"), price_include=True, sequence=10)
    city = billing.Tax(2, billing.PERCENT, Decimal("3.5"), include_base_amount=True, sequence=5)
    lines = tuple(
        billing.Line(
            key=f"L{i}",
            product_id=100 + i,
            qty=Decimal(1 + i % 4),
            price_unit=Decimal("3.95") + Decimal(i) * Decimal("1.35"),
            discount_pct=Decimal("10") if i % 5 == 0 else Decimal(0),
            taxes=(vat, city),
            seat=1 + i % 4,
        )
        for i in range(20)
    )
    return billing.Order(
        lines=lines,
        rounding_method=rounding_method,
        discount=billing.Discount(billing.AMOUNT, Decimal("7.50")),
        service_charge=billing.ServiceCharge(billing.PERCENT, Decimal("10")),
        tip=Decimal("5.00"),
        cash_rounding=billing.CashRounding(Decimal("0.05")),
    )


def measure(order: billing.Order, runs: int) -> tuple[float, float]:
    compute = billing.compute_bill
    for _ in range(50):  # warm the plan cache and the allocator
        compute(order)
    timings = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        start = clock()
        compute(order)
        timings.append(clock() - start)
    timings.sort()
    p50 = statistics.median(timings) / 1e6
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))] / 1e6
    return p50, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--check", action="store_true", help="fail if p50 misses the target")
    args = parser.parse_args()
    failed = False
    for method in (billing.ROUND_PER_LINE, billing.ROUND_GLOBALLY):
        p50, p99 = measure(build_order(method), args.runs)
        print(f"compute_bill 20 lines x 2 taxes, {method:<15} p50={p50:.3f} ms  p99={p99:.3f} ms")
        if method == billing.ROUND_PER_LINE and p50 > TARGET_P50_MS:
            failed = True
    bill = billing.compute_bill(build_order(billing.ROUND_PER_LINE))
    start = time.perf_counter_ns()
    for _ in range(args.runs):
        billing.split_by_seats(bill)
    per_split = (time.perf_counter_ns() - start) / args.runs / 1e6
    print(f"split_by_seats (4 seats)                     mean={per_split:.3f} ms")
    if failed:
        print(f"p50 above target {TARGET_P50_MS} ms", file=sys.stderr)
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
