"""Prepares the real-time benchmark inside ``odoo shell`` and prints its fixture.

Fed on stdin to ``python -m odoo shell -d DB --no-http`` by ``bench/run
--realtime``, with ``BENCH_DEVICES`` in the environment: that many waiter
devices of the demo restaurant config, each with an access token, because
the channel caps the connections of one device (``MAX_CONNECTIONS_PER_DEVICE``)
and the fan-out and idle phases hold up to 10,000 of them. The tokens go to
the file named by ``BENCH_TOKENS`` (one per line); the printed line
``BENCH_FIXTURE {json}`` carries the rest.
"""

import json
import os

from odoo import release

config = env.ref("point_of_sale_api.demo_pos_config")  # noqa: F821 - odoo shell
admin = env.ref("base.user_admin")  # noqa: F821
wanted = int(os.environ.get("BENCH_DEVICES", "1"))
Device = env["pos.api.device"].sudo()  # noqa: F821
devices = Device.search([("name", "=like", "bench realtime %")], order="id")
missing = wanted - len(devices)
if missing > 0:
    devices |= Device.create(
        [
            {
                "name": f"bench realtime {len(devices) + index}",
                "config_id": config.id,
                "role": "waiter",
                "user_id": admin.id,
            }
            for index in range(missing)
        ]
    )
tokens = [device._issue_tokens().access_token for device in devices[:wanted]]
with open(os.environ["BENCH_TOKENS"], "w", encoding="utf-8") as handle:
    handle.write("\n".join(tokens) + "\n")
env.cr.commit()  # noqa: F821
print(
    "BENCH_FIXTURE "
    + json.dumps(
        {
            "odoo_version": release.version,
            "config_id": config.id,
            "company_id": config.company_id.id,
            "devices": len(tokens),
            "login": admin.login,
        }
    ),
    flush=True,
)
