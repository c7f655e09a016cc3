"""Prints which test tiers ran and how many tests each ran, from JUnit XML.

Exits non-zero when no test ran at all, so that a broken collection can never
pass as green.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def counts(path):
    """Counts test cases (subtests are parts of their test, not tests)."""
    if not Path(path).is_file():
        return None
    root = ET.parse(path).getroot()
    total = {"ran": 0, "passed": 0, "failed": 0, "skipped": 0}
    for case in root.iter("testcase"):
        total["ran"] += 1
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            total["failed"] += 1
        elif "skipped" in kinds:
            total["skipped"] += 1
        else:
            total["passed"] += 1
    return total


def line(result):
    return f"{result['passed']} passed, {result['failed']} failed, {result['skipped']} skipped"


def describe(result, missing):
    return f"ran {result['ran']} tests: {line(result)}" if result else missing


def main(plain_xml, odoo_xml, odoo_status):
    plain = counts(plain_xml)
    odoo = counts(odoo_xml) if odoo_status == "ran" else None
    print("\n== test tiers ==")
    print(f"plain tier: {describe(plain, 'did not run')}")
    if odoo_status == "ran":
        print(f"Odoo tier:  {describe(odoo, 'did not run (pytest collected nothing or crashed)')}")
    else:
        print(f"Odoo tier:  {odoo_status}")
    results = [r for r in (plain, odoo) if r]
    total = {key: sum(r[key] for r in results) for key in ("ran", "passed", "failed", "skipped")}
    print(f"total: {line(total)}")
    if total["ran"] - total["skipped"] <= 0:
        print("error: no test was executed", file=sys.stderr)
        return 1
    if odoo_status == "ran" and not odoo:
        return 1
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
