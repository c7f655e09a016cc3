"""Product search benchmark: ``GET /pos_api/v1/products?q=`` against Odoo's
own ``product.product`` ``name_search`` (ilike) through
``/web/dataset/call_kw`` with a logged-in session, in the same run, on the
same server and catalog (``bench/search_fixture_shell.py``).

One client, one keep-alive connection per side over loopback; each side
first runs the whole query mix once unmeasured (warm caches), then the
measured passes, alternating sides pass by pass so that the machine's
drift hits both alike. The time of a request is from sending it to having
read and decoded the whole answer. ``limit`` is the same on both sides.
"""

import argparse
import http.client
import json
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench_orders import percentile


class Client:
    def __init__(self, url):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.cookie = None

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        start = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = json.loads(response.read())
        elapsed = (time.perf_counter() - start) * 1000
        cookie = response.getheader("Set-Cookie")
        if cookie and cookie.startswith("session_id="):
            self.cookie = cookie.split(";", 1)[0]
        return response.status, payload, elapsed


def ours(client, token, limit):
    headers = {"Authorization": f"Bearer {token}"}

    def call(text):
        status, payload, elapsed = client.request(
            "GET", "/pos_api/v1/products?" + urlencode({"q": text, "limit": limit}), None, headers
        )
        if status != 200:
            raise SystemExit(f"BENCH_ERROR ours answered {status}: {payload}")
        return [hit["id"] for hit in payload["products"]], elapsed

    return call


def stock(client, db, login, password, limit):
    status, payload, _ = client.request(
        "POST",
        "/web/session/authenticate",
        {"jsonrpc": "2.0", "params": {"db": db, "login": login, "password": password}},
    )
    if status != 200 or "error" in payload:
        raise SystemExit(f"BENCH_ERROR login failed: {payload}")

    def call(text):
        status, payload, elapsed = client.request(
            "POST",
            "/web/dataset/call_kw/product.product/name_search",
            {
                "jsonrpc": "2.0",
                "method": "call",
                "params": {
                    "model": "product.product",
                    "method": "name_search",
                    "args": [],
                    "kwargs": {"name": text, "operator": "ilike", "limit": limit},
                },
            },
        )
        if status != 200 or "error" in payload:
            raise SystemExit(f"BENCH_ERROR stock answered {status}: {payload}")
        return [row[0] for row in payload["result"]], elapsed

    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--results", default=None)
    parser.add_argument("--stamp", default=time.strftime("%Y%m%d-%H%M%S"))
    args = parser.parse_args()
    fixture = json.loads(Path(args.fixture).read_text())
    queries = fixture["queries"]
    sides = {
        "stock": stock(Client(args.url), args.db, args.login, args.password, args.limit),
        "ours": ours(Client(args.url), fixture["access_token"], args.limit),
    }
    times = {name: [] for name in sides}
    by_kind = {name: {} for name in sides}
    found = dict.fromkeys(sides, 0)
    for call in sides.values():
        for query in queries:
            call(query["q"])  # warm-up pass, unmeasured
    for _ in range(args.passes):
        for name, call in sides.items():
            for query in queries:
                ids, elapsed = call(query["q"])
                times[name].append(elapsed)
                by_kind[name].setdefault(query["kind"], []).append(elapsed)
                found[name] += bool(ids)
    result = {
        "stamp": args.stamp,
        "catalog": fixture["catalog"],
        "products_added": fixture["products"],
        "queries": len(queries),
        "passes": args.passes,
        "limit": args.limit,
        "sides": {
            name: {
                "p50_ms": round(percentile(values, 50), 2),
                "p99_ms": round(percentile(values, 99), 2),
                "mean_ms": round(statistics.fmean(values), 2),
                "requests": len(values),
                "answered_with_hits": round(found[name] / len(values), 3),
                "p50_by_kind_ms": {
                    kind: round(percentile(kind_times, 50), 2)
                    for kind, kind_times in sorted(by_kind[name].items())
                },
            }
            for name, values in times.items()
        },
    }
    stock_side, our_side = result["sides"]["stock"], result["sides"]["ours"]
    result["ratio_p50"] = round(stock_side["p50_ms"] / our_side["p50_ms"], 2)
    result["ratio_p99"] = round(stock_side["p99_ms"] / our_side["p99_ms"], 2)
    result["target_p50_20ms_met"] = our_side["p50_ms"] <= 20
    if args.results:
        path = Path(args.results) / f"{args.stamp}-search.json"
        path.write_text(json.dumps(result, indent=2))
        print(f"results: {path}", file=sys.stderr)
    print(
        f"catalog {result['catalog']} products, {len(queries)} queries x {args.passes} passes, "
        f"limit {args.limit}\n"
        "| measure | stock name_search | ours | ratio |\n|---|---:|---:|---:|\n"
        f"| p50 (ms) | {stock_side['p50_ms']} | {our_side['p50_ms']} | {result['ratio_p50']}x |\n"
        f"| p99 (ms) | {stock_side['p99_ms']} | {our_side['p99_ms']} | {result['ratio_p99']}x |\n"
        f"| queries with hits | {stock_side['answered_with_hits']:.0%} | "
        f"{our_side['answered_with_hits']:.0%} | - |"
    )
    print(json.dumps({name: side["p50_by_kind_ms"] for name, side in result["sides"].items()}))


if __name__ == "__main__":
    main()
