"""Menu and cache benchmark: the cached ``GET /pos_api/v1/menu`` against the
server's empty-request floor and against stock's POS data load
(``pos.session.load_data``), in the same run, on the same server; the hit
ratio on a replayed trace of device requests; the menu with Redis stopped;
and order creation as the catalog grows.

Run by ``bench/run --menu`` against ONE Odoo server (prefork workers) with
the demo restaurant and an opened session (``bench/fixture_shell.py``). The
catalog is grown by ``bench/search_fixture_shell.py`` in ``odoo shell``
while the server runs (the seed product's ORM creation moves the menu's
version at commit). Phases, in order:

1. orders at the demo catalog (about 40 products);
2. the catalog grown to 5,000 products: orders; the empty request
   (``GET /pos_api/v1/health``); the cached menu, plain, gzip and 304;
   stock's ``load_data`` of the same session; the trace; the menu with
   Redis normal, then stopped (from the first request after the stop:
   what the breaker's opening costs is in it), then restarted;
3. the catalog grown to 50,000 products: orders.

Every request is a new loopback connection (``Connection: close``) on both
sides, as in the order benchmark; its time runs from connecting to having
read the whole answer. The menu's ``X-Cache`` header (``hit-l1``,
``hit-l2``, ``miss``) gives the hit ratio.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench_orders import Http, OursSide, StockSide, summary_ms

BENCH = Path(__file__).resolve().parent
MENU = "/pos_api/v1/menu"
EMPTY = "/pos_api/v1/health"
SCALES = {
    # catalog sizes; orders per stage; menu requests per measure; load_data
    # calls; trace requests
    "full": {"stages": (5000, 50000), "orders": 100, "menu": 500, "load_data": 5, "trace": 2000},
    "small": {"stages": (1000, 2000), "orders": 20, "menu": 100, "load_data": 2, "trace": 300},
}
SEED = 20261203


def log(message):
    print(f"[bench_menu] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args, fixture):
        self.args, self.fx = args, fixture
        self.http = Http(args.url, timeout=120)
        self.ours = OursSide(self.http, fixture)
        self.stock = StockSide(self.http, fixture, args.db, args.login, args.password)
        error = self.stock.prepare()
        if error:
            raise SystemExit(f"BENCH_ERROR stock {error}")
        self.auth = self.ours.headers
        self.next_number = 1

    # ------------------------------------------------------------ requests
    def get(self, path, **headers):
        reply = self.http.request("GET", path, None, {**self.auth, **headers})
        if reply.status not in (200, 304):
            raise SystemExit(
                f"BENCH_ERROR GET {path}: {reply.status} {reply.error} {reply.body[:300]!r}"
            )
        return reply

    def timed(self, count, call):
        return [call().total_s for _ in range(count)]

    def catalog(self):
        return len(json.loads(self.get(MENU, **{"Accept-Encoding": "identity"}).body)["products"])

    # -------------------------------------------------------------- phases
    def grow(self, current, target):
        """Add products through odoo shell until the menu holds ``target``;
        returns how many it holds (as the shell counts them: at 50,000 the
        menu document is not built, see bench/README.md)."""
        add = target - current - 1  # the fixture's seed product is one more
        if add <= 0:
            return current
        log(f"growing the catalog from {current} to {target} products (odoo shell)")
        env = {**os.environ, "BENCH_PRODUCTS": str(add), "BENCH_FIRST": str(self.next_number)}
        env["BENCH_QUERIES"] = "5"
        self.next_number += add
        with open(BENCH / "search_fixture_shell.py", "rb") as script:
            done = subprocess.run(
                [
                    self.args.py,
                    "-m",
                    "odoo",
                    "shell",
                    "-c",
                    self.args.conf,
                    "-d",
                    self.args.db,
                    "--no-http",
                    "--log-level=warn",
                ],
                stdin=script,
                capture_output=True,
                env=env,
                timeout=1800,
                check=False,
            )
        if done.returncode or b"BENCH_FIXTURE " not in done.stdout:
            raise SystemExit(f"BENCH_ERROR growing the catalog: {done.stderr[-2000:]!r}")
        line = next(
            line for line in done.stdout.decode().splitlines() if line.startswith("BENCH_FIXTURE ")
        )
        return json.loads(line.split(" ", 1)[1])["catalog"]

    def cold_menu(self):
        """The first menu request after the catalog grew: the build."""
        return self.get(MENU, **{"Accept-Encoding": "identity"}).total_s * 1000

    def orders(self, count):
        for _ in range(max(5, count // 10)):  # warm-up: the grown menu is built here
            self._order()
        return summary_ms([self._order() for _ in range(count)])

    def _order(self):
        reply, _created, error = self.ours.create()
        if error:
            raise SystemExit(f"BENCH_ERROR order: {error}")
        return reply.total_s

    def menu_measures(self, count):
        for _ in range(20):  # every worker builds or reads from Redis once
            self.get(MENU, **{"Accept-Encoding": "identity"})
            self.get(MENU, **{"Accept-Encoding": "gzip"})
        plain = self.get(MENU, **{"Accept-Encoding": "identity"})
        packed = self.get(MENU, **{"Accept-Encoding": "gzip"})
        floor, menu, gzipped, not_modified, tiers = [], [], [], [], Counter()
        for _ in range(count):  # interleaved, so that drift hits all alike
            floor.append(self.http.request("GET", EMPTY).total_s)
            reply = self.get(MENU, **{"Accept-Encoding": "identity"})
            menu.append(reply.total_s)
            tiers[reply.headers.get("X-Cache")] += 1
            gzipped.append(self.get(MENU, **{"Accept-Encoding": "gzip"}).total_s)
            not_modified.append(
                self.get(
                    MENU, **{"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]}
                ).total_s
            )
        return {
            "empty_request": summary_ms(floor),
            "menu_plain": summary_ms(menu),
            "menu_gzip": summary_ms(gzipped),
            "menu_304": summary_ms(not_modified),
            "menu_plain_bytes": len(plain.body),
            "menu_gzip_bytes": len(packed.body),
            "menu_plain_x_cache": dict(tiers),
        }

    def load_data(self, count):
        """Stock's POS data load of the opened session, as the POS UI calls
        it at start (every model, ``only_data`` false)."""
        times, size = [], 0
        for _ in range(count):
            reply = self.http.request(
                "POST",
                "/web/dataset/call_kw/pos.session/load_data",
                self.stock._rpc(
                    {
                        "model": "pos.session",
                        "method": "load_data",
                        "args": [[self.fx["session_id"]], []],
                        "kwargs": {"context": self.stock._context()},
                    }
                ),
                {"Cookie": self.stock.cookie},
            )
            data = reply.json() or {}
            if reply.status != 200 or "error" in data:
                raise SystemExit(f"BENCH_ERROR load_data: {reply.status} {reply.body[:500]!r}")
            products = len(data["result"].get("product.product", {}).get("data", []))
            times.append(reply.total_s)
            size = len(reply.body)
        return {**summary_ms(times), "bytes": size, "products": products}

    def trace(self, count):
        """A replayed device trace: polls with the device's ETag, full reads
        (plain and gzip), ``since`` reads and orders; a manager changes a
        price in the backend every 250 requests. Every menu request counts
        in the hit ratio; an answer built from the database is a miss."""
        rng = random.Random(SEED)
        ordered = {line["product_id"] for line in self.fx["lines"]}
        menu = json.loads(self.get(MENU, **{"Accept-Encoding": "identity"}).body)
        # A product the trace's orders do not take (their payment is exact).
        product_id = next(item["id"] for item in menu["products"] if item["id"] not in ordered)
        tiers, statuses, etag, version, changes = Counter(), Counter(), None, None, 0
        for index in range(count):
            if index and index % 250 == 0:
                self._change_price(product_id, changes)
                changes += 1
            pick = rng.random()
            if pick < 0.05:
                self._order()
                statuses["order"] += 1
                continue
            headers = {"Accept-Encoding": "gzip" if pick < 0.5 else "identity"}
            path = MENU
            if pick < 0.70 and etag:
                headers["If-None-Match"] = etag
            elif pick < 0.75 and version:
                path = f"{MENU}?since={version}"
            reply = self.get(path, **headers)
            tiers[reply.headers.get("X-Cache")] += 1
            statuses[reply.status] += 1
            if reply.status == 200 and path == MENU:
                etag = reply.headers["ETag"]
                if headers["Accept-Encoding"] == "identity":
                    version = json.loads(reply.body)["version"]
        menu_requests = sum(tiers.values())
        hits = tiers["hit-l1"] + tiers["hit-l2"]
        return {
            "requests": count,
            "menu_requests": menu_requests,
            "price_changes": changes,
            "x_cache": dict(tiers),
            "statuses": {str(key): value for key, value in statuses.items()},
            "hit_ratio": round(hits / menu_requests, 4),
        }

    def _change_price(self, product_id, step):
        reply = self.http.request(
            "POST",
            "/web/dataset/call_kw/product.product/write",
            self.stock._rpc(
                {
                    "model": "product.product",
                    "method": "write",
                    "args": [[product_id], {"lst_price": 10 + step % 2}],
                    "kwargs": {},
                }
            ),
            {"Cookie": self.stock.cookie},
        )
        if reply.status != 200 or "error" in (reply.json() or {}):
            raise SystemExit(f"BENCH_ERROR price change: {reply.body[:300]!r}")

    def redis_outage(self, count):
        normal = self.timed(count, lambda: self.get(MENU, **{"Accept-Encoding": "gzip"}))
        log("stopping Redis")
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.args.redis_port), "shutdown", "nosave"],
            capture_output=True,
            check=False,
        )
        stopped = self.timed(count, lambda: self.get(MENU, **{"Accept-Encoding": "gzip"}))
        log("restarting Redis")
        subprocess.run(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.args.redis_port),
                "--dir",
                self.args.redis_dir,
                "--daemonize",
                "yes",
                "--pidfile",
                f"{self.args.redis_dir}/redis.pid",
                "--logfile",
                f"{self.args.redis_dir}/redis.log",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        time.sleep(1)
        restarted = self.timed(count, lambda: self.get(MENU, **{"Accept-Encoding": "gzip"}))
        normal_ms, stopped_ms = summary_ms(normal), summary_ms(stopped)
        return {
            "normal": normal_ms,
            "stopped": stopped_ms,
            "restarted": summary_ms(restarted),
            "p99_ratio_stopped_vs_normal": round(stopped_ms["p99"] / normal_ms["p99"], 2),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--url", "--db", "--fixture", "--py", "--conf", "--redis-dir", "--results"):
        parser.add_argument(name, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--stamp", default=time.strftime("%Y%m%d-%H%M%S"))
    args = parser.parse_args()
    scale = SCALES[args.scale]
    bench = Bench(args, json.loads(Path(args.fixture).read_text()))
    result = {"stamp": args.stamp, "scale": args.scale, "orders": {}}
    base = bench.catalog()
    log(f"orders at the demo catalog ({base} products)")
    result["orders"][str(base)] = bench.orders(scale["orders"])
    menu_stage, order_stage = scale["stages"]
    path = Path(args.results) / f"{args.stamp}-menu.json"

    def save():
        path.write_text(json.dumps(result, indent=2))

    catalog = bench.grow(base, menu_stage)
    result["menu_catalog"] = catalog
    log("the menu's first build")
    result["menu_cold_build_ms"] = round(bench.cold_menu(), 1)
    log(f"orders at {catalog} products")
    result["orders"][str(catalog)] = bench.orders(scale["orders"])
    save()
    log("menu: empty request, plain, gzip, 304")
    result["menu"] = bench.menu_measures(scale["menu"])
    save()
    log("stock: pos.session.load_data")
    result["load_data"] = bench.load_data(scale["load_data"])
    save()
    log("trace replay")
    result["trace"] = bench.trace(scale["trace"])
    save()
    log("menu with Redis stopped")
    result["redis_outage"] = bench.redis_outage(scale["menu"])
    save()
    catalog = bench.grow(catalog, order_stage)
    log(f"orders at {catalog} products")
    result["orders"][str(catalog)] = bench.orders(scale["orders"])

    menu, orders = result["menu"], result["orders"]
    base_p50 = orders[str(base)]["p50"]
    result["targets"] = {
        "menu_p50_vs_empty_request": round(
            menu["menu_plain"]["p50"] / menu["empty_request"]["p50"], 2
        ),
        "load_data_vs_menu_p50": round(result["load_data"]["p50"] / menu["menu_plain"]["p50"], 1),
        "hit_ratio": result["trace"]["hit_ratio"],
        "redis_stopped_p99_ratio": result["redis_outage"]["p99_ratio_stopped_vs_normal"],
        "order_p50_vs_demo_catalog": {
            size: round(figures["p50"] / base_p50, 3) for size, figures in orders.items()
        },
    }
    save()
    log(f"results: {path}")
    print(report(result))


def report(result):
    menu, targets, outage = result["menu"], result["targets"], result["redis_outage"]
    rows = [
        f"menu of {result['menu_catalog']} products ({menu['menu_plain_bytes']:,} bytes, "
        f"{menu['menu_gzip_bytes']:,} gzip)",
        "| measure | figure | target |",
        "|---|---:|---:|",
        f"| empty request p50 | {menu['empty_request']['p50']} ms | |",
        f"| cached menu p50 (plain / gzip / 304) | {menu['menu_plain']['p50']} / "
        f"{menu['menu_gzip']['p50']} / {menu['menu_304']['p50']} ms | |",
        f"| cached menu p50 against the empty request | "
        f"{targets['menu_p50_vs_empty_request']}x | <= 1.5x |",
        f"| stock load_data p50 | {result['load_data']['p50']} ms | |",
        f"| stock load_data against the cached menu | "
        f"{targets['load_data_vs_menu_p50']}x | >= 500x |",
        f"| hit ratio on the trace ({result['trace']['menu_requests']} menu requests, "
        f"{result['trace']['price_changes']} price changes) | "
        f"{targets['hit_ratio']:.1%} | >= 95% |",
        f"| menu p99, Redis normal / stopped | {outage['normal']['p99']} / "
        f"{outage['stopped']['p99']} ms ({targets['redis_stopped_p99_ratio']}x) | <= 1.2x |",
    ]
    for size, ratio in targets["order_p50_vs_demo_catalog"].items():
        rows.append(
            f"| order create p50 at {size} products | {result['orders'][size]['p50']} ms "
            f"({ratio}x the demo catalog's) | <= 1.1x |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
