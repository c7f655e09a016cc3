"""Order benchmark: stock Odoo 18 ``sync_from_ui`` against the addon's JSON API.

Run by ``bench/run``, which starts the servers and writes the fixture; on its
own it needs a running Odoo (``--url``), its access log (``--log``, written
with ``--log-level=info``) and the fixture printed by ``bench/fixture_shell.py``.

Both sides get the same 3-line paid order at a table of the demo restaurant,
on the same server, in the same run, each request with fresh uuids:

* stock: ``POST /web/dataset/call_kw/pos.order/sync_from_ui`` with a logged-in
  session cookie, the payload and context the POS UI sends;
* ours: ``POST /pos_api/v1/orders`` (and ``/orders/batch``) with the demo
  waiter tablet's bearer token. When the route answers 404 the side is
  reported as not available instead of failing the run.

The payment phase (``--payments``; after the order phases, or alone with
``--only-payments``) pays an order that exists as a draft, one payment after
another, each preceded by its own untimed draft:

* stock: the order is first pushed through ``sync_from_ui`` as a draft (no
  payment, ``state: "draft"``), then the same uuid again with its server id,
  one cash payment line and ``state: "paid"``, as the POS UI finalizes an
  order it synced as a draft (``_process_order`` updates the existing draft,
  then ``action_pos_order_paid``, the picking and the costs); only that second
  call is timed;
* ours: the draft is created by ``POST /pos_api/v1/orders``, then
  ``POST /pos_api/v1/orders/{id}/payments`` is timed, with a fresh
  ``Idempotency-Key`` and one cash tender for the full amount; afterwards each
  of those calls is sent again with its key (a replay), timed too.

Measures (client side, wall clock around one HTTP request, connect included):
sequential latency, the latency of a request that does no work, SQL queries
per order (server side: the ``query_count`` Odoo appends to each werkzeug
access-log line), throughput with a few clients, batch ingestion, and a load
test of many orders over many concurrent connections. Every phase is bounded
by a request count and a deadline; connections are loopback only.

Standard library only: the server closes each connection after one response
(HTTP/1.0 workers), so a thread pool of plain ``http.client`` connections is as
good a load generator here as any asynchronous client.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

SCALES = {
    # warmup, sequential, empty, throughput orders, batch orders, load orders
    "small": {
        "warmup": 5,
        "payment_warmup": 3,
        "payments": 10,
        "single": 20,
        "empty": 20,
        "throughput": 20,
        "batch_orders": 50,
        "load": 100,
    },
    "full": {
        "warmup": 20,
        "payment_warmup": 10,
        "payments": 100,
        "single": 200,
        "empty": 200,
        "throughput": 200,
        "batch_orders": 200,
        "load": 1000,
    },
}
STOCK_SYNC_PATH = "/web/dataset/call_kw/pos.order/sync_from_ui"
STOCK_EMPTY_PATH = "/web/webclient/version_info"
OURS_ORDER_PATH = "/pos_api/v1/orders"
OURS_BATCH_PATH = "/pos_api/v1/orders/batch"
OURS_EMPTY_PATH = "/pos_api/v1/health"
OURS_PAYMENTS_PATH = "/pos_api/v1/orders/{order_id}/payments"
OURS_PAYMENTS_RE = re.compile(r"/pos_api/v1/orders/\d+/payments")
TIMES = "\u00d7"  # the multiplication sign of the Markdown report

# werkzeug's access line as Odoo logs it, perf_info appended by
# odoo.netsvc.PerfFilter: "<ip> - - [date] "POST /path HTTP/1.0" 200 - 114 0.050 0.090"
ACCESS_RE = re.compile(
    r'werkzeug: \S+ - - \[[^\]]*\] "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" '
    r"(?P<status>\d{3}) \S+ (?P<queries>\d+) (?P<query_time>[\d.]+) (?P<other_time>[\d.]+)"
)
RETRY_RE = re.compile(r"tries left, try again in")
# A worker accepted a connection but no request arrived within its socket
# timeout (ODOO_HTTP_SOCKET_TIMEOUT, 2 s): a connection the kernel had left
# half-open while the listen queue was full.
SOCKET_TIMEOUT_RE = re.compile(r"werkzeug: .*Request timed out")
LOG_LEVEL_RE = re.compile(r"^\S+ \S+ \d+ (?P<level>ERROR|CRITICAL|WARNING) ")


# --------------------------------------------------------------------------
# HTTP


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict
    connect_s: float
    total_s: float
    error: str = ""

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class Http:
    """One short-lived loopback connection per request, as the server wants."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"refusing to benchmark a non-loopback address: {url}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout

    def request(self, method: str, path: str, body=None, headers=None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Connection": "close", **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        connect_s = 0.0
        try:
            conn.connect()
            connect_s = time.perf_counter() - t0
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return Reply(
                resp.status, payload, dict(resp.getheaders()), connect_s, time.perf_counter() - t0
            )
        except (OSError, http.client.HTTPException) as exc:
            return Reply(
                0,
                b"",
                {},
                connect_s,
                time.perf_counter() - t0,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            conn.close()


# --------------------------------------------------------------------------
# the two sides


def _money(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


class StockSide:
    """The POS UI's own path: JSON-RPC ``pos.order.sync_from_ui``."""

    name = "stock"
    order_path = STOCK_SYNC_PATH
    batch_path = STOCK_SYNC_PATH
    empty_path = STOCK_EMPTY_PATH

    def __init__(self, http_: Http, fixture: dict, db: str, login: str, password: str):
        self.http, self.fx = http_, fixture
        self.db, self.login, self.password = db, login, password
        self.cookie = ""
        self._ids = iter(range(1, 10**9))
        self._lock = threading.Lock()

    def prepare(self) -> str | None:
        reply = self.http.request(
            "POST",
            "/web/session/authenticate",
            self._rpc(
                {
                    "db": self.db,
                    "login": self.login,
                    "password": self.password,
                }
            ),
        )
        result = (reply.json() or {}).get("result") or {}
        cookie = re.search(r"session_id=([^;]+)", reply.headers.get("Set-Cookie", ""))
        if reply.status != 200 or not result.get("uid") or not cookie:
            return f"login failed: HTTP {reply.status} {reply.body[:300]!r}"
        self.cookie = f"session_id={cookie.group(1)}"
        return None

    def _rpc(self, params: dict) -> dict:
        with self._lock:
            rpc_id = next(self._ids)
        return {"jsonrpc": "2.0", "method": "call", "id": rpc_id, "params": params}

    def _context(self) -> dict:
        fx = self.fx
        # The user context the web client adds to every call, plus what
        # pos_restaurant's getSyncAllOrdersContext sends with a table selected.
        context = {
            "lang": "en_US",
            "tz": "UTC",
            "uid": fx["user_id"],
            "allowed_company_ids": [fx["company_id"]],
            "config_id": fx["config_id"],
            "login_number": fx["login_number"],
            "cancel_table_notification": False,
        }
        if fx.get("table_id"):
            context["table_ids"] = [fx["table_id"]]
        return context

    def order(self) -> dict:
        """An order as ``serialize({orm: true})`` sends it (cf. create_ui_order_data)."""
        fx = self.fx
        order_uuid = str(uuid.uuid4())
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        lines = [
            [
                0,
                0,
                {
                    "product_id": line["product_id"],
                    "qty": line["qty"],
                    "price_unit": line["price_unit"],
                    "discount": 0.0,
                    "price_subtotal": line["price_subtotal"],
                    "price_subtotal_incl": line["price_subtotal_incl"],
                    "tax_ids": [[6, 0, line["tax_ids"]]],
                    "pack_lot_ids": [],
                    "uuid": str(uuid.uuid4()),
                },
            ]
            for line in fx["lines"]
        ]
        payments = [
            [
                0,
                0,
                {
                    "amount": fx["amount_total"],
                    "name": now,
                    "payment_method_id": fx["cash_payment_method_id"],
                    "uuid": str(uuid.uuid4()),
                },
            ]
        ]
        return {
            "uuid": order_uuid,
            "name": f"Order {order_uuid}",
            "session_id": fx["session_id"],
            "user_id": fx["user_id"],
            "pricelist_id": fx["pricelist_id"],
            "fiscal_position_id": fx["fiscal_position_id"],
            "table_id": fx.get("table_id") or False,
            "customer_count": 2,
            "sequence_number": 1,
            "date_order": now,
            "lines": lines,
            "payment_ids": payments,
            "amount_paid": fx["amount_total"],
            "amount_return": 0.0,
            "amount_tax": fx["amount_tax"],
            "amount_total": fx["amount_total"],
            "state": "paid",
            "partner_id": False,
            "last_order_preparation_change": "{}",
            "to_invoice": False,
        }

    def _call_sync(self, orders: list[dict]) -> tuple[Reply, dict, str]:
        """One ``sync_from_ui`` call: the reply, its result, an error or ""."""
        body = self._rpc(
            {
                "model": "pos.order",
                "method": "sync_from_ui",
                "args": [orders],
                "kwargs": {"context": self._context()},
            }
        )
        reply = self.http.request("POST", STOCK_SYNC_PATH, body, {"Cookie": self.cookie})
        if reply.error:
            return reply, {}, reply.error
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict):
            return reply, {}, f"HTTP {reply.status}"
        if "error" in data:
            err = data["error"].get("data", {}) or {}
            message = str(err.get("message", data["error"]))
            return reply, {}, f"{err.get('name', '')}: {message}"[:300]
        return reply, data.get("result") or {}, ""

    def _sync(self, orders: list[dict]) -> tuple[Reply, int, str]:
        reply, result, error = self._call_sync(orders)
        if error:
            return reply, 0, error
        created = len(result.get("pos.order", []))
        if created != len(orders):
            return reply, created, f"{created} of {len(orders)} orders came back"
        return reply, created, ""

    @staticmethod
    def _returned(result: dict, order_uuid: str) -> dict | None:
        # pos_restaurant adds the other draft orders of the context's tables.
        for record in result.get("pos.order", []):
            if record.get("uuid") == order_uuid:
                return record
        return None

    def draft(self) -> tuple[Reply, dict | None, str]:
        """The order synced unpaid (``state: "draft"``, no payment), as the
        restaurant UI syncs a table's order before it is paid."""
        order = self.order()
        order.update(state="draft", payment_ids=[], amount_paid=0.0)
        reply, result, error = self._call_sync([order])
        if error:
            return reply, None, error
        record = self._returned(result, order["uuid"])
        if not record or record.get("state") != "draft":
            return reply, None, "the draft order did not come back as a draft"
        return reply, {"order": order, "record": record}, ""

    def pay(self, draft: dict) -> tuple[Reply, str]:
        """The same uuid pushed again, paid: what the POS UI sends when it
        validates the payment of an order it synced as a draft. The order
        carries its server id (``_process_order`` updates that record); lines
        the UI did not change since the last sync are not sent again, and the
        new payment line is the only new record."""
        fx, record = self.fx, draft["record"]
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        order = {
            **draft["order"],
            "id": record["id"],
            "name": record.get("name") or draft["order"]["name"],
            "lines": [],
            "payment_ids": [
                [
                    0,
                    0,
                    {
                        "amount": fx["amount_total"],
                        "name": now,
                        "payment_method_id": fx["cash_payment_method_id"],
                        "uuid": str(uuid.uuid4()),
                    },
                ]
            ],
            "amount_paid": fx["amount_total"],
            "amount_return": 0.0,
            "state": "paid",
        }
        reply, result, error = self._call_sync([order])
        if error:
            return reply, error
        paid = self._returned(result, order["uuid"])
        if not paid or paid.get("state") != "paid":
            state = paid.get("state") if paid else "missing"
            return reply, f"the order came back {state}, not paid"
        return reply, ""

    def create(self) -> tuple[Reply, int, str]:
        return self._sync([self.order()])

    def create_batch(self, size: int) -> tuple[Reply, int, str]:
        return self._sync([self.order() for _ in range(size)])

    def empty(self) -> Reply:
        return self.http.request("POST", STOCK_EMPTY_PATH, self._rpc({}))


class OursSide:
    """The addon's JSON API, authenticated as the demo waiter tablet."""

    name = "ours"
    order_path = OURS_ORDER_PATH
    batch_path = OURS_BATCH_PATH
    empty_path = OURS_EMPTY_PATH

    def __init__(self, http_: Http, fixture: dict):
        self.http, self.fx = http_, fixture
        tokens = fixture.get("tokens") or {}
        self.headers = {"Authorization": f"Bearer {tokens.get('access_token', '')}"}
        self.batch_available = False

    def prepare(self) -> str | None:
        """None when the API takes orders, else why "ours" is not available."""
        if not (self.fx.get("tokens") or {}).get("access_token"):
            return "not available (no demo waiter device token)"
        reply, _, error = self.create()
        if reply.status == 404:
            return "not available (404)"
        if error:
            return f"not available (first order: {error}; {reply.body[:200]!r})"
        probe = self.http.request("POST", OURS_BATCH_PATH, {"orders": []}, self.headers)
        self.batch_available = probe.status not in (404, 405, 0)
        return None

    def order(self) -> dict:
        fx, decimals = self.fx, self.fx["currency_decimals"]
        return {
            "uuid": str(uuid.uuid4()),
            "table_id": fx.get("table_id"),
            "lines": [
                {
                    "product_id": line["product_id"],
                    "qty": str(line["qty"]),
                    "uuid": str(uuid.uuid4()),
                }
                for line in fx["lines"]
            ],
            "payments": [
                {
                    "payment_method_id": fx["cash_payment_method_id"],
                    "amount": _money(fx["amount_total"], decimals),
                }
            ],
            "state": "paid",
        }

    def create(self) -> tuple[Reply, int, str]:
        reply = self.http.request("POST", OURS_ORDER_PATH, self.order(), self.headers)
        if reply.error:
            return reply, 0, reply.error
        if reply.status != 201:
            return reply, 0, f"HTTP {reply.status} {_api_error(reply)}"
        return reply, 1, ""

    def create_batch(self, size: int) -> tuple[Reply, int, str]:
        body = {"orders": [self.order() for _ in range(size)]}
        reply = self.http.request("POST", OURS_BATCH_PATH, body, self.headers)
        if reply.error:
            return reply, 0, reply.error
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict):
            return reply, 0, f"HTTP {reply.status} {_api_error(reply)}"
        results = data.get("results") or []
        created = sum(1 for r in results if r.get("status") in (200, 201))
        if created != size:
            statuses = Counter(r.get("status") for r in results)
            return reply, created, f"{created} of {size} orders created ({dict(statuses)})"
        return reply, created, ""

    def empty(self) -> Reply:
        return self.http.request("GET", OURS_EMPTY_PATH)

    def draft(self) -> tuple[Reply, dict | None, str]:
        """The same order created unpaid (``state: "draft"``, no payment)."""
        body = self.order()
        body.pop("payments")
        body["state"] = "draft"
        reply = self.http.request("POST", OURS_ORDER_PATH, body, self.headers)
        if reply.error:
            return reply, None, reply.error
        order = (reply.json() or {}).get("order") if reply.status == 201 else None
        if not isinstance(order, dict) or not order.get("id"):
            return reply, None, f"HTTP {reply.status} {_api_error(reply)}"
        amount = _money(float(order["amount_total"]), self.fx["currency_decimals"])
        return reply, {"id": order["id"], "amount": amount}, ""

    def _pay_request(self, draft: dict) -> Reply:
        headers = {**self.headers, "Idempotency-Key": draft["key"]}
        path = OURS_PAYMENTS_PATH.format(order_id=draft["id"])
        return self.http.request("POST", path, draft["body"], headers)

    def pay(self, draft: dict) -> tuple[Reply, str]:
        """One cash tender for the full amount, with a fresh Idempotency-Key."""
        draft["key"] = str(uuid.uuid4())
        draft["body"] = {
            "payments": [
                {
                    "payment_method_id": self.fx["cash_payment_method_id"],
                    "amount": draft["amount"],
                }
            ]
        }
        reply = self._pay_request(draft)
        if reply.error:
            return reply, reply.error
        data = reply.json()
        if reply.status != 200 or not isinstance(data, dict):
            return reply, f"HTTP {reply.status} {_api_error(reply)}"
        state = (data.get("order") or {}).get("odoo_state")
        if state != "paid":
            return reply, f"the order came back {state}, not paid"
        draft["response"] = data
        return reply, ""

    def replay(self, draft: dict) -> tuple[Reply, str]:
        """The same call again, same key and body: the saved response, no new payment."""
        reply = self._pay_request(draft)
        if reply.error:
            return reply, reply.error
        if reply.status != 200:
            return reply, f"HTTP {reply.status} {_api_error(reply)}"
        if reply.json() != draft["response"]:
            return reply, "the replay's response differs from the first one"
        return reply, ""

    def payments_count(self, draft: dict) -> int | None:
        reply = self.http.request("GET", f"{OURS_ORDER_PATH}/{draft['id']}", None, self.headers)
        order = (reply.json() or {}).get("order") if reply.status == 200 else None
        return len(order.get("payments") or []) if isinstance(order, dict) else None


def _api_error(reply: Reply) -> str:
    data = reply.json()
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("code", ""))[:100]
    return ""


# --------------------------------------------------------------------------
# measuring


def percentile(values: list[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 2),
        "p90": round(percentile(ms, 90), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2),
        "mean": round(statistics.fmean(ms), 2),
    }


class AccessLog:
    """Reads what the server logged between two points of the run."""

    def __init__(self, path: Path | None):
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path and self.path.exists() else 0

    def since(self, offset: int) -> list[str]:
        if not self.path or not self.path.exists():
            return []
        time.sleep(0.3)  # workers write their access line as the response starts
        with self.path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace").splitlines()

    def windows(self, offsets: list[int]) -> list[list[str]]:
        """The lines between consecutive marks, the last window to the end."""
        if not offsets or not self.path or not self.path.exists():
            return [[] for _ in offsets]
        time.sleep(0.3)  # as in since()
        with self.path.open("rb") as fh:
            fh.seek(offsets[0])
            data = fh.read()
        bounds = [offset - offsets[0] for offset in offsets] + [len(data)]
        return [
            data[start:end].decode("utf-8", "replace").splitlines()
            for start, end in zip(bounds, bounds[1:])
        ]

    @staticmethod
    def requests(lines: list[str], path: str | re.Pattern) -> list[dict]:
        """Access lines of ``path`` (a string, or a pattern the whole path matches)."""
        out = []
        for line in lines:
            m = ACCESS_RE.search(line)
            request_path = m["path"].split("?")[0] if m else ""
            if isinstance(path, re.Pattern):
                matches = bool(m) and path.fullmatch(request_path) is not None
            else:
                matches = bool(m) and request_path == path
            if matches:
                out.append(
                    {
                        "status": int(m["status"]),
                        "queries": int(m["queries"]),
                        "server_s": float(m["query_time"]) + float(m["other_time"]),
                        "query_s": float(m["query_time"]),
                    }
                )
        return out

    @staticmethod
    def problems(lines: list[str]) -> dict:
        retries = sum(1 for line in lines if RETRY_RE.search(line))
        socket_timeouts = sum(1 for line in lines if SOCKET_TIMEOUT_RE.search(line))
        levels = Counter()
        samples = []
        for line in lines:
            m = LOG_LEVEL_RE.match(line)
            if m:
                levels[m["level"]] += 1
                if m["level"] != "WARNING" and len(samples) < 5:
                    samples.append(line[:400])
        return {
            "serialization_retries": retries,
            "socket_timeouts": socket_timeouts,
            "log_levels": dict(levels),
            "error_samples": samples,
        }


@dataclass
class Phase:
    name: str
    requests: int = 0
    orders: int = 0
    errors: int = 0
    connection_errors: int = 0
    wall_s: float = 0.0
    truncated: bool = False
    latencies: list[float] = field(default_factory=list)
    failed_latencies: list[float] = field(default_factory=list)
    connects: list[float] = field(default_factory=list)
    error_kinds: Counter = field(default_factory=Counter)
    server: dict = field(default_factory=dict)

    def record(self, reply: Reply, orders: int, error: str) -> None:
        """One request's outcome; latencies are of successful requests only."""
        self.requests += 1
        if not error:
            self.latencies.append(reply.total_s)
            return
        self.failed_latencies.append(reply.total_s)
        self.errors += orders
        if reply.error:  # no HTTP response at all
            self.connection_errors += orders
        self.error_kinds[error[:160]] += 1

    def to_json(self, orders_per_request: int = 1) -> dict:
        out = {
            "requests": self.requests,
            "orders_created": self.orders,
            "errors": self.errors,
            "application_errors": self.errors - self.connection_errors,
            "connection_errors": self.connection_errors,
            "error_kinds": dict(self.error_kinds.most_common(5)),
            "wall_s": round(self.wall_s, 3),
            "orders_per_s": round(self.orders / self.wall_s, 2) if self.wall_s else None,
            "latency_ms": summary_ms(self.latencies),
            "failed_latency_ms": summary_ms(self.failed_latencies),
            "truncated_by_deadline": self.truncated,
            "server": self.server,
        }
        if self.connects:
            out["connect_ms"] = summary_ms(self.connects)
        if orders_per_request > 1:
            out["orders_per_request"] = orders_per_request
        return out


def run_phase(
    name,
    side,
    log: AccessLog,
    *,
    count: int,
    concurrency: int,
    deadline_s: float,
    batch: int = 0,
    path: str | None = None,
) -> Phase:
    """``count`` requests, ``concurrency`` at a time, none started after the deadline."""
    phase = Phase(name)
    lock = threading.Lock()
    start = time.perf_counter()
    stop_at = start + deadline_s
    mark = log.mark()

    def one(_):
        if time.perf_counter() > stop_at:
            with lock:
                phase.truncated = True
            return
        reply, created, error = side.create_batch(batch) if batch else side.create()
        with lock:
            phase.orders += created
            phase.connects.append(reply.connect_s)
            phase.record(reply, (batch - created) if batch else 1, error)

    if concurrency == 1:
        for i in range(count):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(count)))
    phase.wall_s = time.perf_counter() - start
    lines = log.since(mark)
    phase.server = server_stats(
        lines, path or (side.batch_path if batch else side.order_path), batch or 1
    )
    return phase


def run_empty(side, log: AccessLog, count: int, warmup: int) -> Phase:
    phase = Phase(f"{side.name}_empty")
    for _ in range(warmup):
        side.empty()
    mark = log.mark()
    start = time.perf_counter()
    for _ in range(count):
        reply = side.empty()
        error = reply.error or ("" if reply.status == 200 else f"HTTP {reply.status}")
        phase.record(reply, 1, error)
    phase.wall_s = time.perf_counter() - start
    phase.server = server_stats(log.since(mark), side.empty_path, 1)
    return phase


def server_stats(lines: list[str], path, orders_per_request: int, reqs=None) -> dict:
    """What the server logged: query counts and times of ``path``'s requests
    (or of the given access lines ``reqs``), and the problems among ``lines``."""
    if reqs is None:
        reqs = AccessLog.requests(lines, path)
    stats = AccessLog.problems(lines)
    stats["access_lines"] = len(reqs)
    if reqs:
        queries = [r["queries"] for r in reqs]
        stats["queries_per_request"] = {
            "median": statistics.median(queries),
            "min": min(queries),
            "max": max(queries),
        }
        stats["queries_per_order"] = round(statistics.median(queries) / orders_per_request, 1)
        stats["server_ms"] = summary_ms([r["server_s"] for r in reqs])
        stats["sql_ms"] = summary_ms([r["query_s"] for r in reqs])
        stats["status"] = dict(Counter(r["status"] for r in reqs))
    return stats


class CpuMeter:
    """CPU used during a phase: by the whole machine, and by this run's processes.

    The machine is shared; what other processes burn while a phase runs is
    recorded next to the figures (``other_cores``) so that a noisy run shows.
    "This run" is this client plus the process trees of the given roots (the
    Odoo master, the postmaster, Redis); the CPU of exited descendants is
    counted through their parents' ``cutime``/``cstime``.
    """

    def __init__(self, roots: list[int]):
        self.roots = [pid for pid in roots if pid]
        self.tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _stat(pid) -> list[str] | None:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return raw[raw.rindex(")") + 2 :].split()

    def _ours(self) -> float:
        parents, times = {}, {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = self._stat(entry)
                if st:
                    parents[int(entry)] = int(st[1])
                    times[int(entry)] = sum(int(x) for x in st[11:15])
        members = set()
        for pid in parents:
            node, seen = pid, 0
            while node > 1 and seen < 64:
                if node in self.roots or node == os.getpid():
                    members.add(pid)
                    break
                node, seen = parents.get(node, 0), seen + 1
        return sum(times[pid] for pid in members) / self.tick

    def _machine(self) -> float:
        fields_ = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
        values = [int(x) for x in fields_]
        return (sum(values) - values[3] - values[4]) / self.tick

    def sample(self) -> tuple[float, float, float]:
        return time.monotonic(), self._machine(), self._ours()

    @staticmethod
    def usage(before, after) -> dict:
        wall = after[0] - before[0]
        if wall <= 0:
            return {}
        machine = (after[1] - before[1]) / wall
        ours = (after[2] - before[2]) / wall
        return {
            "machine_busy_cores": round(machine, 2),
            "this_run_cores": round(ours, 2),
            "other_cores": round(max(0.0, machine - ours), 2),
            "load_average_after": round(os.getloadavg()[0], 2),
        }


PHASES = ("empty", "single", "throughput", "batch", "load")


def _plan(scale: dict, args) -> dict:
    """What each order phase does: what it announces, and its run_phase arguments."""
    batch_requests = max(1, scale["batch_orders"] // args.batch_size)
    return {
        "single": (
            f"{scale['single']} single orders, sequentially",
            {"count": scale["single"], "concurrency": 1},
        ),
        "throughput": (
            f"{scale['throughput']} orders over {args.clients} clients",
            {"count": scale["throughput"], "concurrency": args.clients},
        ),
        "batch": (
            f"batch ingestion, {batch_requests} requests of {args.batch_size} orders "
            f"over {args.clients} clients",
            {"count": batch_requests, "concurrency": args.clients, "batch": args.batch_size},
        ),
        "load": (
            f"load test, {scale['load']} orders over {args.connections} connections",
            {"count": scale["load"], "concurrency": args.connections},
        ),
    }


def measure(sides: list, log: AccessLog, scale: dict, args, cpu: CpuMeter) -> dict:
    """Each phase for every side in turn, so that both meet the same machine."""
    plan = _plan(scale, args)
    out = {side.name: {} for side in sides}
    for side in sides:
        print(f"[bench] {side.name}: warm-up, {scale['warmup']} orders", file=sys.stderr)
        run_phase(
            "warmup",
            side,
            log,
            count=scale["warmup"],
            concurrency=1,
            deadline_s=args.phase_timeout,
        )
    for phase in PHASES:
        for side in sides:
            if phase == "batch" and not getattr(side, "batch_available", True):
                out[side.name][phase] = {"not_available": f"POST {OURS_BATCH_PATH} → 404"}
                continue
            before = cpu.sample()
            if phase == "empty":
                print(f"[bench] {side.name}: empty request x{scale['empty']}", file=sys.stderr)
                result = run_empty(side, log, scale["empty"], scale["warmup"]).to_json()
            else:
                what, kwargs = plan[phase]
                print(f"[bench] {side.name}: {what}", file=sys.stderr)
                result = run_phase(
                    phase, side, log, deadline_s=args.phase_timeout, **kwargs
                ).to_json(kwargs.get("batch", 1))
            result["cpu"] = CpuMeter.usage(before, cpu.sample())
            out[side.name][phase] = result
    return out


# --------------------------------------------------------------------------
# payments


def _payment_json(phase: Phase, unit: str) -> dict:
    """A payment phase's figures, named after what it counts."""
    out = phase.to_json()
    out[f"{unit}s"] = out.pop("orders_created")
    out.pop("orders_per_s")  # one payment after another, each after its draft
    out.pop("wall_s")
    server = out["server"]
    if "queries_per_order" in server:
        server[f"queries_per_{unit}"] = server.pop("queries_per_order")
    return out


def run_payments(side, log: AccessLog, *, count: int, warmup: int, deadline_s: float) -> dict:
    """``warmup`` then ``count`` payments, one after another, each of a draft
    order made just before it (not timed); then, for a side that has replays,
    each measured payment sent again with its key.

    Stock's draft and payment go to the same URL: the server figures of the
    payment ``k`` are those of the first access line of its path logged
    between the mark taken just before it and the mark of payment ``k + 1``
    (its access line is written before its response, the next draft is sent
    after that response).
    """
    drafts = Phase(f"{side.name}_payment_drafts")
    pays = Phase(f"{side.name}_payment")
    warmup_errors: Counter = Counter()
    measured = []  # (log mark before the payment, the draft, its error)
    path = STOCK_SYNC_PATH if side.name == "stock" else OURS_PAYMENTS_RE
    stop_at = time.perf_counter() + deadline_s
    for i in range(warmup + count):
        if time.perf_counter() > stop_at:
            pays.truncated = True
            break
        reply, draft, error = side.draft()
        drafts.record(reply, 1, error)
        if error:
            if drafts.errors >= 5 and not drafts.latencies:
                break  # the drafts do not work at all: say so, do not insist
            continue
        offset = log.mark()
        reply, error = side.pay(draft)
        if i < warmup:
            if error:
                warmup_errors[error[:160]] += 1
            continue
        pays.connects.append(reply.connect_s)
        pays.record(reply, 1, error)
        measured.append((offset, draft, error))
        if not error:
            pays.orders += 1
    windows = log.windows([offset for offset, _draft, _error in measured])
    reqs, unattributed = [], 0
    for (_offset, _draft, error), lines in zip(measured, windows):
        found = AccessLog.requests(lines, path)[:1]
        if not error:
            reqs += found
            unattributed += not found
    pays.server = server_stats([line for lines in windows for line in lines], path, 1, reqs)
    pays.server["figures_of"] = "successful payments"
    if unattributed:
        pays.server["payments_without_access_line"] = unattributed
    out = {
        "payment": _payment_json(pays, "payment"),
        "warmup": {"payments": warmup, "error_kinds": dict(warmup_errors)},
        "drafts": {
            "requests": drafts.requests,
            "errors": drafts.errors,
            "error_kinds": dict(drafts.error_kinds.most_common(5)),
            "latency_ms": summary_ms(drafts.latencies),
        },
    }
    paid = [draft for _offset, draft, error in measured if not error]
    if hasattr(side, "replay") and paid:
        replays = Phase(f"{side.name}_payment_replay")
        mark = log.mark()
        for draft in paid:
            reply, error = side.replay(draft)
            replays.connects.append(reply.connect_s)
            replays.record(reply, 1, error)
            replays.orders += not error
        replays.server = server_stats(log.since(mark), path, 1)
        out["replay"] = _payment_json(replays, "replay")
        # Not timed: the replays took no second payment.
        counts = Counter(side.payments_count(draft) for draft in paid)
        out["replay"]["payments_per_order_after"] = {str(k): n for k, n in counts.items()}
    return out


def measure_payments(sides: list, log: AccessLog, scale: dict, args, cpu: CpuMeter) -> dict:
    """The payment phase of every side in turn, warm-up first."""
    out = {}
    for side in sides:
        print(
            f"[bench] {side.name}: payments, {scale['payment_warmup']} warm-up then "
            f"{scale['payments']}, each of a draft made just before",
            file=sys.stderr,
        )
        before = cpu.sample()
        try:
            result = run_payments(
                side,
                log,
                count=scale["payments"],
                warmup=scale["payment_warmup"],
                deadline_s=args.phase_timeout,
            )
        except Exception as exc:  # noqa: BLE001 - keep the order figures of the run
            traceback.print_exc()
            result = {"failed": f"{type(exc).__name__}: {exc}"[:300]}
        result["cpu"] = CpuMeter.usage(before, cpu.sample())
        out[side.name] = result
    return out


# --------------------------------------------------------------------------
# report


def _get(data, *keys):
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value, unit=""):
    if value is None:
        return "—"
    if isinstance(value, float):
        value = f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{value}{unit}"


def _ratio(stock, ours, higher_is_better: bool) -> str:
    if not stock or not ours:
        return "—"
    ratio = ours / stock if higher_is_better else stock / ours
    return f"{ratio:.1f}{TIMES}"


def markdown(results: dict) -> str:
    stock, ours = results["stock"] or {}, results.get("ours") or {}
    ours_note = results.get("ours_status") or ""
    c = results["conditions"]
    load = f"load, {c['load_orders']} orders over {c['load_connections']} connections"
    rows = [
        # label, keys, how to compare (time | rate | count | None), target
        (
            "single order create, p50 (ms)",
            ("single", "latency_ms", "p50"),
            "time",
            f"ours ≤ 1/5 of stock (ratio ≥ 5{TIMES})",
        ),
        ("single order create, p99 (ms)", ("single", "latency_ms", "p99"), "time", "—"),
        ("empty request, p50 (ms)", ("empty", "latency_ms", "p50"), "time", "—"),
        ("SQL queries per order", ("single", "server", "queries_per_order"), "count", "—"),
        (
            f"throughput, {c['clients']} clients, 1 order per request (orders/s)",
            ("throughput", "orders_per_s"),
            "rate",
            "—",
        ),
        (
            f"batch ingestion, {c['clients']} clients, {c['batch_size']} orders per request "
            "(orders/s)",
            ("batch", "orders_per_s"),
            "rate",
            f"≥ 20{TIMES}",
        ),
        (f"{load}: p50 (ms)", ("load", "latency_ms", "p50"), "time", "—"),
        (f"{load}: p90 (ms)", ("load", "latency_ms", "p90"), "time", "—"),
        (f"{load}: p99 (ms)", ("load", "latency_ms", "p99"), "time", "—"),
        (f"{load}: max (ms)", ("load", "latency_ms", "max"), "time", "—"),
        (
            f"{load}: of which waiting to connect, max (ms)",
            ("load", "connect_ms", "max"),
            None,
            "—",
        ),
        (f"{load}: orders/s", ("load", "orders_per_s"), "rate", "—"),
        (f"{load}: errors, application (HTTP error)", ("load", "application_errors"), None, "0"),
        (
            f"{load}: errors, connection (no HTTP response)",
            ("load", "connection_errors"),
            None,
            "0",
        ),
    ]
    out = ["| measure | stock Odoo 18 | ours | ratio | target |", "|---|---:|---:|---:|---|"]
    for label, keys, kind, target in rows:
        s, o = _get(stock, *keys), _get(ours, *keys)
        if kind == "count":
            ratio = f"{s / o:.1f}{TIMES} fewer" if s and o else "—"
        elif kind:
            ratio = _ratio(s, o, kind == "rate")
        else:
            ratio = "—"
        out.append(f"| {label} | {_fmt(s)} | {_fmt(o) if ours else 'n/a'} | {ratio} | {target} |")
    out.append("")
    pg = c["postgres"]
    out.append(
        f"Conditions: {c['date']}; {c['cpu_count']} cores ({c['cpu_model']}), shared; "
        f"Odoo {c['odoo_version']}, {c['workers']} HTTP workers, no cron thread, "
        f"worker socket timeout {c.get('socket_timeout_s', 2):g} s "
        "(`ODOO_HTTP_SOCKET_TIMEOUT`); "
        f"PostgreSQL {pg['version'].split()[0]} (fsync {pg['fsync']}, synchronous_commit "
        f"{pg['synchronous_commit']}); client and servers on one machine over loopback. "
        f"Order: {c['order']}. Company stock update: {c['update_stock_quantities']} "
        "(Odoo's default: a picking per paid order). Ratios are stock/ours for times and "
        "ours/stock for rates. Latency is client-side, connect included, of successful "
        "requests; SQL queries are the `query_count` Odoo appends to each request's "
        "access-log line (median, divided by orders per request)."
    )
    backlog = 8 * c["workers"]
    if c["load_connections"] > backlog + c["workers"]:
        out.append("")
        out.append(
            f"The load test opens more connections ({c['load_connections']}) than Odoo's "
            f"prefork server queues (listen backlog 8 {TIMES} workers = {backlog}, plus one per "
            "worker): the kernel drops the excess connection attempts and the client retries "
            "them after 1 s, 3 s, 7 s…, so waiting to connect is part of the load-test "
            "latency, as it is for any Odoo served without a proxy in front. A connection the "
            "kernel accepted while the queue was full may deliver its request only with a "
            "retransmission: the worker socket timeout must outlast that wait."
        )
    noise = []
    for name, side in (("stock", stock), ("ours", ours)):
        others = [_get(side, p, "cpu", "other_cores") for p in PHASES]
        others = [x for x in others if x is not None]
        if others:
            noise.append(f"{name} phases {statistics.fmean(others):.2f} (max {max(others):.2f})")
    if noise:
        out.append("")
        out.append(
            "Other processes on the machine used on average, in cores: " + "; ".join(noise) + "."
        )
    if ours_note:
        out.append("")
        out.append(f"Ours: {ours_note}.")
    errors = []
    for name, side in (("stock", stock), ("ours", ours)):
        for phase in PHASES:
            kinds = _get(side, phase, "error_kinds")
            if kinds:
                timeouts = _get(side, phase, "server", "socket_timeouts")
                note = (
                    f", {timeouts} of them server-side socket timeouts on half-open connections"
                    if timeouts
                    else ""
                )
                errors.append(
                    f"{name} {phase}: "
                    + "; ".join(f"{n} {TIMES} {kind}" for kind, n in kinds.items())
                    + note
                )
    if errors:
        out.append("")
        out.append("Errors: " + " | ".join(errors) + ".")
    return "\n".join(out)


def markdown_payments(results: dict, alone: bool = False) -> str:
    """The payment table; ``alone``: without the order table and its conditions."""
    pay = results.get("payment") or {}
    c = pay.get("conditions") or {}
    stock, ours = pay.get("stock") or {}, pay.get("ours") or {}
    rows = [
        # label, keys, how to compare (time | count | None)
        ("payment of a draft order, p50 (ms)", ("payment", "latency_ms", "p50"), "time"),
        ("payment of a draft order, p99 (ms)", ("payment", "latency_ms", "p99"), "time"),
        ("SQL queries per payment", ("payment", "server", "queries_per_payment"), "count"),
        (
            "server time per payment, p50 (ms, access log)",
            ("payment", "server", "server_ms", "p50"),
            "time",
        ),
        ("payments measured", ("payment", "payments"), None),
        ("payment errors", ("payment", "errors"), None),
        (
            "replay, same Idempotency-Key, p50 (ms)",
            ("replay", "latency_ms", "p50"),
            None,
        ),
        ("replay, same Idempotency-Key, p99 (ms)", ("replay", "latency_ms", "p99"), None),
        ("SQL queries per replay", ("replay", "server", "queries_per_replay"), None),
    ]
    out = ["| payment | stock Odoo 18 | ours | ratio |", "|---|---:|---:|---:|"]
    for label, keys, kind in rows:
        s, o = _get(stock, *keys), _get(ours, *keys)
        if kind == "count":
            ratio = f"{s / o:.1f}{TIMES} fewer" if s and o else "—"
        elif kind:
            ratio = _ratio(s, o, False)
        else:
            ratio = "—"
        s_txt = _fmt(s) if stock else "n/a"
        o_txt = _fmt(o) if ours else "n/a"
        out.append(f"| {label} | {s_txt} | {o_txt} | {ratio} |")
    out.append("")
    out.append(
        f"Payment: per side, {c.get('payments')} payments one after another after "
        f"{c.get('warmup')} warm-up ones, each of the benchmark order made a draft just "
        "before it (not timed), at the same table. Stock: the draft pushed through "
        '`sync_from_ui` (`state: "draft"`, no payment), then the same uuid again with '
        'its id, one cash payment line for the total and `state: "paid"`, as the POS UI '
        "finalizes an order it synced as a draft; only that second call is timed. Ours: the "
        "draft created by `POST /pos_api/v1/orders`, then `POST /pos_api/v1/orders/{id}/"
        "payments` with a fresh `Idempotency-Key` and one cash tender for the total, as the "
        "demo waiter tablet; a replay is the same call sent again (same key, same body) after "
        "all payments, answered from the saved response. Stock makes the paid order's picking "
        "and costs inside the request; ours flags them for its "
        "follow-up cron step (`api_followup_pending`), off the request path, which does not "
        "run during the benchmark (no cron thread). Latency is client-side, connect included, "
        "of successful payments; SQL queries and server time are those of the payment's own "
        "access-log line, median over successful payments."
    )
    if alone:
        rc = results["conditions"]
        pg = rc["postgres"]
        out.append("")
        out.append(
            f"Conditions: {rc['date']}; {rc['cpu_count']} cores ({rc['cpu_model']}), shared; "
            f"Odoo {rc['odoo_version']}, {rc['workers']} HTTP workers, no cron thread; "
            f"PostgreSQL {pg['version'].split()[0]} (fsync {pg['fsync']}, synchronous_commit "
            f"{pg['synchronous_commit']}); client and servers on one machine over loopback. "
            f"Order: {rc['order']}. Company stock update: {rc['update_stock_quantities']}."
        )
    noise = []
    for name, side in (("stock", stock), ("ours", ours)):
        other = _get(side, "cpu", "other_cores")
        if other is not None:
            noise.append(f"{name} {other:.2f}")
    if noise:
        out.append("")
        out.append(
            "Other processes on the machine during the payment phase, in cores: "
            + "; ".join(noise)
            + "."
        )
    problems = []
    for name, side in (("stock", stock), ("ours", ours)):
        if side.get("failed"):
            problems.append(f"{name}: the phase failed: {side['failed']}")
        for part in ("drafts", "payment", "replay"):
            kinds = _get(side, part, "error_kinds")
            if kinds:
                problems.append(
                    f"{name} {part}: "
                    + "; ".join(f"{n} {TIMES} {kind}" for kind, n in kinds.items())
                )
        after = _get(side, "replay", "payments_per_order_after")
        if after and set(after) != {"1"}:
            problems.append(f"{name} replay: payments per order afterwards {after}")
    if problems:
        out.append("")
        out.append("Errors: " + " | ".join(problems) + ".")
    logged = []
    for name, side in (("stock", stock), ("ours", ours)):
        for part in ("payment", "replay"):
            levels = _get(side, part, "server", "log_levels") or {}
            count = levels.get("ERROR", 0) + levels.get("CRITICAL", 0)
            if count:
                sample = (_get(side, part, "server", "error_samples") or [""])[0]
                sample = re.sub(r"^\S+ \S+ \d+ ", "", sample)[:120]
                logged.append(f"{name} {part}: {count} (first: `{sample}`)")
    if logged:
        out.append("")
        out.append(
            "ERROR lines in the server log while the requests above succeeded: "
            + " | ".join(logged)
            + "."
        )
    return "\n".join(out)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="Odoo base URL (loopback only)")
    ap.add_argument("--db", required=True)
    ap.add_argument("--fixture", required=True, type=Path)
    ap.add_argument("--log", type=Path, help="the server's log file, for query counts")
    ap.add_argument("--login", default="admin")
    ap.add_argument("--password", default="admin")
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--load", type=int, help="orders in the load test (scale default)")
    ap.add_argument("--workers", type=int, default=4, help="the server's, for the report")
    ap.add_argument(
        "--phase-timeout",
        type=float,
        default=300,
        help="no request of a phase starts after this many seconds",
    )
    ap.add_argument("--request-timeout", type=float, default=180)
    ap.add_argument("--only", choices=["stock", "ours", "both"], default="both")
    ap.add_argument(
        "--payments",
        type=int,
        help="payments measured per side (scale default; 0: no payment phase)",
    )
    ap.add_argument("--payment-warmup", type=int, help="warm-up payments (scale default)")
    ap.add_argument(
        "--only-payments", action="store_true", help="the payment phase alone, no order phase"
    )
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument(
        "--own-pids",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[],
        help="roots of this run's server processes, for CPU shares",
    )
    ap.add_argument("--stamp", help="results file name (default: the current time)")
    args = ap.parse_args(argv)

    fixture = json.loads(args.fixture.read_text())
    scale = dict(SCALES[args.scale])
    if args.load:
        scale["load"] = args.load
    if args.payments is not None:
        scale["payments"] = max(0, args.payments)
    if args.payment_warmup is not None:
        scale["payment_warmup"] = max(0, args.payment_warmup)
    if args.only_payments and not scale["payments"]:
        ap.error("--only-payments with no payment to measure")
    http_ = Http(args.url, args.request_timeout)
    log = AccessLog(args.log)
    lines = fixture["lines"]
    order_desc = ", ".join(f"{line['qty']} {TIMES} {line['product_name']}" for line in lines)
    conditions = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "odoo_version": fixture["odoo_version"],
        "python": fixture["python"],
        "postgres": fixture["postgres"],
        "workers": args.workers,
        # bench/run sets it for the server and passes it on to this client.
        "socket_timeout_s": float(os.environ.get("ODOO_HTTP_SOCKET_TIMEOUT") or 2),
        "scale": args.scale,
        "clients": args.clients,
        "batch_size": args.batch_size,
        "load_orders": scale["load"],
        "load_connections": args.connections,
        "counts": scale,
        "pos_config": f"{fixture['config_name']} (id {fixture['config_id']}, "
        f"{fixture['config_source']})",
        "session_id": fixture["session_id"],
        "table_id": fixture.get("table_id"),
        "update_stock_quantities": fixture["update_stock_quantities"],
        "update_stock_at_closing": fixture["update_stock_at_closing"],
        "order": f"{order_desc}; paid in cash {fixture['amount_total']}"
        f" at table id {fixture.get('table_id')}",
    }
    if fixture["update_stock_quantities"] != "real":
        print(
            "[bench] warning: the company does not update stock in real time; the issue "
            "asks for Odoo's default (real)",
            file=sys.stderr,
        )
    results = {"conditions": conditions, "stock": {}, "ours": None, "ours_status": None}

    sides = []
    if args.only in ("stock", "both"):
        stock = StockSide(http_, fixture, args.db, args.login, args.password)
        problem = stock.prepare()
        if problem:
            print(f"[bench] stock: {problem}", file=sys.stderr)
            return 1
        sides.append(stock)
    if args.only in ("ours", "both"):
        ours = OursSide(http_, fixture)
        problem = ours.prepare()
        if problem:
            results["ours_status"] = problem.replace("\n", " ")
            print(f"[bench] ours: {problem}", file=sys.stderr)
        else:
            sides.append(ours)
    if args.only == "stock":
        results["ours_status"] = "not measured (--only stock)"
    cpu = CpuMeter(args.own_pids)
    conditions["phases"] = (["orders"] if not args.only_payments else []) + (
        ["payments"] if scale["payments"] else []
    )
    if not args.only_payments:
        results.update(measure(sides, log, scale, args, cpu))
    if scale["payments"]:
        results["payment"] = {
            "conditions": {
                "payments": scale["payments"],
                "warmup": scale["payment_warmup"],
                "order": conditions["order"],
                "stock": "sync_from_ui of the order as a draft (state draft, no payment; "
                "not timed), then of the same uuid with its id, one cash payment line for "
                "the total and state paid (timed)",
                "ours": f"POST {OURS_ORDER_PATH} as a draft (not timed), then POST "
                f"{OURS_PAYMENTS_PATH} with a fresh Idempotency-Key and one cash tender for "
                "the total (timed), as the demo waiter tablet; replay: each measured call "
                "sent again with its key and body after all payments (timed)",
                "stock_followup": "picking and costs made inside the request "
                f"(update_stock_quantities {fixture['update_stock_quantities']})",
                "ours_followup": "picking and costs flagged for the follow-up cron step "
                "(api_followup_pending), which does not run during the benchmark "
                "(--max-cron-threads 0)",
                "server_figures": "query_count and times of each successful payment's own "
                "access-log line; medians",
            },
            **measure_payments(sides, log, scale, args, cpu),
        }
    conditions["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    args.results.mkdir(parents=True, exist_ok=True)
    stamp = args.stamp or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parts = [] if args.only_payments else [markdown(results)]
    if results.get("payment"):
        parts.append(markdown_payments(results, alone=args.only_payments))
        if args.only_payments and results.get("ours_status"):
            parts.append(f"Ours: {results['ours_status']}.")
    table = "\n\n".join(parts)
    results["markdown"] = table
    out = args.results / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table)
    print(f"\n[bench] results: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
