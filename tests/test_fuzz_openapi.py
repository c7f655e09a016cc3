"""A bounded property-based fuzz run (schemathesis) over the served OpenAPI
document, against this test's HTTP server, with a manager device's token.

Requests are serialized on the test cursor, which is fine for fuzzing: the
point is that no generated request, valid or not, gets a 5xx. The document's
links from ``POST /orders`` to the routes taking its id let the stateful
phase work on real orders.
"""

import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from unittest import SkipTest
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import API, PosApiHttpCommon

_logger = logging.getLogger(__name__)

# Bounds of the run: a few examples per operation, one worker, a fixed seed
# (a deeper run: POS_API_FUZZ_EXAMPLES=50 POS_API_FUZZ_SEED=7).
MAX_EXAMPLES = int(os.environ.get("POS_API_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("POS_API_FUZZ_SEED", "20251201"))
TIMEOUT = int(os.environ.get("POS_API_FUZZ_TIMEOUT", "240"))


@tagged("post_install", "-at_install")
class TestFuzzOpenApi(PosApiHttpCommon):
    def test_schemathesis_finds_no_server_error(self):
        # scripts/test installs it in a virtualenv of its own (requirements-fuzz.txt).
        schemathesis = os.environ.get("POS_API_SCHEMATHESIS") or shutil.which("schemathesis")
        if not schemathesis or not os.access(schemathesis, os.X_OK):
            raise SkipTest("schemathesis not found: set POS_API_SCHEMATHESIS (scripts/test does)")
        token = self._token(self.manager)
        before = self.env["pos.order"].search_count([("api_device_id", "=", self.manager.id)])
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp, "junit.xml")
            command = [
                schemathesis,
                "run",
                f"{self.base_url()}{API}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--no-shrink",
                "--request-timeout",
                "60",
                "--header",
                f"Authorization: Bearer {token}",
                "--report",
                "junit",
                "--report-junit-path",
                str(report),
            ]
            # Replayed uuids are refused by the unique index first: logged, not errors.
            # The per-address bucket of /auth/refresh is shared by every test
            # of this database: the fuzzer must not empty it for the others.
            auth_rate = {"POS_API_RATE_AUTH": "100000/1"}
            with mute_logger("odoo.sql_db"), patch.dict(os.environ, auth_rate):
                run = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT,
                    cwd=tmp,
                    env={**os.environ, "NO_COLOR": "1"},
                    check=False,
                )
            output = run.stdout[-20000:] + run.stderr[-5000:]
            _logger.info("schemathesis run:\n%s", run.stdout[-3000:])
            self.assertEqual(run.returncode, 0, output)
            self.assertIn("testcase", report.read_text())
        created = self.env["pos.order"].search_count([("api_device_id", "=", self.manager.id)])
        self.assertGreater(created, before, "the fuzzer created real orders")
        scenarios = re.search(r"Scenarios:\s+(\d+)", run.stdout)
        self.assertTrue(scenarios and int(scenarios.group(1)) > 0, output)
