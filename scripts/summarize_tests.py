"""Prints which test tiers ran and how many tests each ran: the plain tier
and the Odoo tier under pytest-odoo from JUnit XML, the Odoo tier under
Odoo's own runner from its log.

Exits non-zero when a tier that should have run did not, or when no test ran
at all, so that a broken collection can never pass as green.
"""

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Odoo's runner ends with "<f> failed, <e> error(s) of <n> tests when loading
# database '<db>'" (odoo/service/server.py), and logs each skip.
ODOO_RESULT = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests when loading database")
ODOO_SKIP = re.compile(r" INFO \S+ odoo\.addons\.[\w.]+: skipped ")


def junit_counts(path):
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


def odoo_log_counts(path):
    if not Path(path).is_file():
        return None
    text = Path(path).read_text(errors="replace")
    found = ODOO_RESULT.findall(text)
    if not found:
        return None
    failed, errors, ran = (int(value) for value in found[-1])
    skipped = len(ODOO_SKIP.findall(text))
    return {
        "ran": ran,
        "failed": failed + errors,
        "skipped": skipped,
        "passed": ran - failed - errors - skipped,
    }


def line(result):
    return f"{result['passed']} passed, {result['failed']} failed, {result['skipped']} skipped"


def describe(result, missing):
    return f"ran {result['ran']} tests: {line(result)}" if result else missing


def main(plain_xml, odoo_xml, odoo_log, odoo_status, runners):
    runners = runners.split()
    plain = junit_counts(plain_xml)
    results, missing = [plain], plain is None
    print("\n== test tiers ==")
    print(f"plain tier: {describe(plain, 'did not run')}")
    if odoo_status != "ran":
        print(f"Odoo tier:  {odoo_status}")
    for runner, counts, label in (
        ("pytest", junit_counts, "Odoo tier under pytest-odoo:"),
        ("odoo-bin", odoo_log_counts, "Odoo tier under odoo-bin:   "),
    ):
        if odoo_status != "ran" or runner not in runners:
            continue
        result = counts(odoo_xml if runner == "pytest" else odoo_log)
        results.append(result)
        missing = missing or result is None
        print(f"{label} {describe(result, 'did not run to its end (see above)')}")
    results = [r for r in results if r]
    total = {key: sum(r[key] for r in results) for key in ("ran", "passed", "failed", "skipped")}
    print(f"total: {line(total)}")
    if total["ran"] - total["skipped"] <= 0:
        print("error: no test was executed", file=sys.stderr)
        return 1
    return 1 if total["failed"] or missing else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
