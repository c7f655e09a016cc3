"""Real-time benchmark: the stock Odoo bus against the addon's device channel.

Run by ``bench/run --realtime``, which starts PostgreSQL and Redis, installs
the addon with its demo restaurant, writes the fixture (devices and their
tokens) and calls this script; this script starts Odoo itself (so that it can
restart it in the resume phase) and measures, in the same run, on the same
server (``--workers 2`` and ``--gevent-port``, loopback only):

* latency: commit → receipt, one subscriber. A writer process (this file,
  ``writer`` sub-command, with Odoo's registry) commits one event at a time
  and records ``time.monotonic()`` just after ``COMMIT`` returns (Odoo's
  ``cr.commit()``, post-commit hooks included: stock's ``NOTIFY imbus``, our
  sequencer's ``NOTIFY pos_sync_log``); the receiver records it on receipt
  (Linux's monotonic clock is one clock for every process). Stock: a
  WebSocket on ``/websocket`` with a logged-in session, subscribed, fed by
  ``bus.bus._sendone("broadcast", ...)``. Ours: the reference client
  (``pos_core.client.EventClient``) over WebSocket and over long-poll, fed by
  ``pos.sync.log._emit``.
* fan-out to 100, 1,000 and 10,000 subscribers, held by a ``swarm``
  sub-process (gevent, one greenlet per socket): delivery latency over every
  (subscriber, event) pair, and the SQL statements the server ran per
  broadcast, counted by PostgreSQL itself (``log_statement = all`` for the
  window, with the process of each statement from its ``application_name``,
  which Odoo sets to ``odoo-<pid>``), less the same window without events.
* idle connections: the RSS of the gevent process before and after the
  swarm connected, per connection.
* resume after a server restart under a steady event stream: the reference
  client, the server stopped and started in the middle; every seq committed
  in the window is compared with what the application received.

Every phase is bounded by counts and deadlines; every socket is loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

STOCK_WS_VERSION = "18.0-2"  # bus.websocket.WebsocketConnectionHandler._VERSION
STOCK_TYPE = "pos_api_bench"
SCALES = {
    "small": {"latency": 30, "fanout": (100, 1000), "broadcasts": 5, "resume_seconds": 6},
    "full": {"latency": 200, "fanout": (100, 1000, 10000), "broadcasts": 10, "resume_seconds": 15},
}
# A read of the events themselves: stock's bus_bus, the sync log.
EVENT_READ_RE = re.compile(r"^\s*(WITH\b.*|SELECT\b.*)\bFROM\s+\"?(bus_bus|pos_sync_log)\b", re.I)
STATEMENT_RE = re.compile(
    r"^\S+ \S+ \S+ \[(?P<pid>\d+)\] (?P<app>\S*): LOG:  statement: (?P<sql>.*)"
)


def now() -> float:
    return time.monotonic()


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ==========================================================================
# writer (runs with Odoo importable: python bench_realtime.py writer ...)
def writer_main(args) -> int:
    import odoo
    from odoo import SUPERUSER_ID, api

    odoo.tools.config.parse_config(
        ["-c", args.conf, "-d", args.db, "--no-http", "--log-level=warn"]
    )
    registry = odoo.modules.registry.Registry(args.db)
    config_id = args.config_id
    out = sys.stdout
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "quit":
            break
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            if command == "buslast":
                out.write(f"ok {env['bus.bus'].sudo()._bus_last_id()}\n")
            elif command == "ourshead":
                if "pos.sync.log" not in env:
                    out.write("na\n")
                else:
                    head = env["pos.sync.log"]._heads([config_id]).get(config_id, (0, 0))
                    out.write(f"ok {head[0]}\n")
            elif command == "stock":
                env["bus.bus"]._sendone("broadcast", STOCK_TYPE, {"k": int(rest[0])})
                cr.commit()
                out.write(f"ok {now()!r}\n")
            elif command == "ours":
                if "pos.sync.log" not in env:
                    out.write("na\n")
                else:
                    config = env["pos.config"].browse(config_id)
                    env["pos.sync.log"]._emit(
                        config, "order.updated", [f"config:{config_id}"], {"k": int(rest[0])}
                    )
                    cr.commit()
                    out.write(f"ok {now()!r}\n")
            else:
                out.write("error unknown command\n")
        out.flush()
    return 0


class Writer:
    """The writer sub-process, driven line by line."""

    def __init__(self, py: str, conf: str, db: str, config_id: int):
        self.proc = subprocess.Popen(
            [py, __file__, "writer", "--conf", conf, "--db", db, "--config-id", str(config_id)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()

    def call(self, *words) -> str | None:
        with self._lock:
            self.proc.stdin.write(" ".join(map(str, words)) + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().split()
        if not answer:
            raise RuntimeError("the writer process died")
        if answer[0] == "na":
            return None
        if answer[0] != "ok":
            raise RuntimeError(f"writer: {answer}")
        return answer[1]

    def commit(self, side: str, k: int) -> float | None:
        value = self.call(side, k)
        return None if value is None else float(value)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


# ==========================================================================
# swarm (a gevent sub-process holding many sockets: python ... swarm ...)
def swarm_main(args) -> int:
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent.pool import Pool

    from pos_core.client import WebSocket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 1024
    try:  # a privileged process may raise its hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, want)), hard))
    received: dict[int, list[float]] = {}
    sockets, failures, connect_failures = [], [], []

    if args.side == "stock":
        cookie = Path(args.cookie_file).read_text().strip()
        headers_for = lambda index: {  # noqa: E731
            "Cookie": f"session_id={cookie}",
            "Origin": args.url,
        }
        url = f"{args.url}/websocket?version={STOCK_WS_VERSION}"
        subscribe = {"event_name": "subscribe", "data": {"channels": [], "last": args.after}}
    else:
        tokens = Path(args.tokens_file).read_text().split()
        per_device = args.per_device
        headers_for = lambda index: {  # noqa: E731
            "Authorization": f"Bearer {tokens[index // per_device]}"
        }
        url = f"{args.url}/pos_api/v1/ws"
        subscribe = {"type": "subscribe", "rooms": [f"config:{args.config_id}"]}

    def record(message):
        t = now()
        if args.side == "stock":
            for notification in message if isinstance(message, list) else ():
                body = notification.get("message") or {}
                if body.get("type") == STOCK_TYPE:
                    received.setdefault(body["payload"]["k"], []).append(t)
        elif isinstance(message, dict) and isinstance(message.get("payload"), dict):
            k = message["payload"].get("k")
            if isinstance(k, int):
                received.setdefault(k, []).append(t)

    def hold(ws):
        try:
            while True:
                text = ws.receive()
                if text is None:
                    failures.append(f"closed {ws.close_code}")
                    return
                record(json.loads(text))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures.append(type(exc).__name__)

    def open_one(index):
        # A refused handshake (stock's pool full, say) is retried a few times:
        # the phase measures broadcasts, not a connection storm.
        for attempt in range(4):
            try:
                ws = WebSocket.connect(url, headers_for(index), timeout=60, max_message=1 << 22)
                ws.sock.settimeout(None)
                ws.send_json(subscribe)
                sockets.append(ws)
                gevent.spawn(hold, ws)
                return
            except Exception as exc:  # noqa: BLE001 - counted and reported
                error = f"connect {type(exc).__name__}: {str(exc)[:60]}"
                gevent.sleep(0.5 * 2**attempt)
        connect_failures.append(error)

    started = now()
    pool = Pool(args.concurrency)
    for index in range(args.count):
        pool.spawn(open_one, index)
    pool.join(timeout=args.deadline)
    gevent.sleep(1.0)  # let the last subscriptions reach the server
    print(
        json.dumps(
            {
                "ready": len(sockets) - len(failures),
                "failed": len(connect_failures) + len(failures),
                "seconds": round(now() - started, 1),
                "errors": sorted(set(connect_failures + failures))[:5],
            }
        ),
        flush=True,
    )
    threadpool = gevent.get_hub().threadpool
    while True:
        line = threadpool.spawn(sys.stdin.readline).get()
        command = line.strip()
        if command == "report":
            print(
                json.dumps(
                    {
                        "received": received,
                        "open": len(sockets) - len(failures),
                        "lost": len(failures),
                    }
                )
            )
            sys.stdout.flush()
            received = {}
        elif command in ("close", ""):
            for ws in sockets:
                ws.close()
            return 0


class Swarm:
    def __init__(self, py: str, **options):
        argv = [py, __file__, "swarm"]
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the swarm process died while connecting")
        self.ready = json.loads(line)

    def report(self) -> dict:
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("close\n")
                self.proc.stdin.flush()
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)


# ==========================================================================
# the server
class Server:
    """ONE Odoo (prefork, ``--gevent-port``) in its own process group."""

    def __init__(self, py, conf, db, *, http_port, gevent_port, workers, logfile):
        self.argv = [
            py,
            str(BENCH / "odoo_server.py"),
            "-c",
            conf,
            "-d",
            db,
            "--no-database-list",
            f"--workers={workers}",
            "--max-cron-threads=0",
            "--http-interface=127.0.0.1",
            f"--http-port={http_port}",
            f"--gevent-port={gevent_port}",
            "--log-level=warn",
            f"--logfile={logfile}",
        ]
        self.http = f"http://127.0.0.1:{http_port}"
        self.gevent = f"http://127.0.0.1:{gevent_port}"
        self.proc = None

    def start(self, deadline=120):
        from pos_core.client import http_request

        self.proc = subprocess.Popen(self.argv, start_new_session=True)
        end = now() + deadline
        while now() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("Odoo exited at start-up")
            try:
                ok = http_request(
                    self.http, "POST", "/web/webclient/version_info", body={}, timeout=5
                )
                health = http_request(self.gevent, "GET", "/websocket/health", timeout=5)
                if ok.status == 200 and health.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"Odoo did not answer in {deadline} s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Workers and the gevent process may outlive the master for a moment.
        for _ in range(50):
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)

    def gevent_pid(self) -> int | None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if ppid == self.proc.pid and len(cmdline) > 2 and cmdline[2] == b"gevent":
                return int(entry)
        return None


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_files_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return 0


def sockets_that_fit(limit: int, in_use: int, per_socket: float) -> int:
    """How many sockets, in thousands, the descriptors left under ``limit``
    hold at ``per_socket`` each (stock's WebSocket takes three: the socket
    and a notification pair)."""
    return int((limit - in_use) / per_socket) // 1000 * 1000


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ==========================================================================
# statement counting on the bench's own PostgreSQL
class StatementLog:
    """Counts the statements PostgreSQL runs in a window, per process."""

    def __init__(self, dsn: str, logfile: str, exclude_pids: set[int]):
        import psycopg2

        self.conn = psycopg2.connect(dsn, application_name="bench_realtime")
        self.conn.autocommit = True
        self.logfile, self.exclude = logfile, exclude_pids
        self._offset = 0

    def _set(self, value: str):
        with self.conn.cursor() as cr:
            cr.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] %a: '")
            cr.execute(f"ALTER SYSTEM SET log_statement = '{value}'")
            cr.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)  # every backend rereads the configuration

    def start(self):
        self._set("all")
        self._offset = os.path.getsize(self.logfile)

    def stop(self) -> dict:
        time.sleep(0.5)
        self._set("none")
        with open(self.logfile, encoding="utf-8", errors="replace") as handle:
            handle.seek(self._offset)
            text = handle.read()
        statements, current = [], None
        for line in text.splitlines():
            match = STATEMENT_RE.match(line)
            if match:
                current = [match["app"], int(match["pid"]), match["sql"]]
                statements.append(current)
            elif current is not None and line[:1] in ("\t", " "):
                current[2] += " " + line.strip()  # a statement's next line
            else:
                current = None
        by_pid: dict[int, int] = {}
        reads: dict[int, int] = {}
        kinds: dict[str, int] = {}
        for app, backend_pid, sql in statements:
            if app == "bench_realtime":
                continue
            app_pid = app.removeprefix("odoo-")
            if app_pid.isdigit() and int(app_pid) in self.exclude:
                continue
            pid = int(app_pid) if app_pid.isdigit() else backend_pid
            by_pid[pid] = by_pid.get(pid, 0) + 1
            if EVENT_READ_RE.search(sql):
                reads[pid] = reads.get(pid, 0) + 1
            kind = " ".join(sql.split()[:4])[:60]
            kinds[kind] = kinds.get(kind, 0) + 1
        return {
            "by_process": by_pid,
            "total": sum(by_pid.values()),
            "reads_by_process": reads,
            "reads": sum(reads.values()),
            "kinds": kinds,
        }


# ==========================================================================
# phases
def stock_login(server: Server, db: str, login: str, password: str) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(server.http.rsplit(":", 1)[1]), timeout=30)
    body = json.dumps(
        {"jsonrpc": "2.0", "params": {"db": db, "login": login, "password": password}}
    )
    conn.request("POST", "/web/session/authenticate", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    cookie = resp.getheader("Set-Cookie") or ""
    match = re.search(r"session_id=([^;]+)", cookie)
    if resp.status != 200 or not match:
        raise RuntimeError(f"stock login failed: {resp.status}")
    return match.group(1)


def summary_ms(seconds):
    from bench_orders import summary_ms as summary

    return summary(seconds)


def _wait_for(received: dict, k: int, timeout: float) -> float | None:
    end = now() + timeout
    while now() < end:
        if k in received:
            return received[k]
        time.sleep(0.0005)
    return None


def latency_stock(server, writer, cookie, count) -> dict:
    from pos_core.client import WebSocket

    received: dict[int, float] = {}
    last = int(writer.call("buslast"))
    ws = WebSocket.connect(
        f"{server.gevent}/websocket?version={STOCK_WS_VERSION}",
        {"Cookie": f"session_id={cookie}", "Origin": server.gevent},
        timeout=10,
        max_message=1 << 22,
    )
    ws.send_json({"event_name": "subscribe", "data": {"channels": [], "last": last}})

    def reader():
        try:
            while True:
                text = ws.receive()
                if text is None:
                    return
                t = now()
                for notification in json.loads(text):
                    body = notification.get("message") or {}
                    if body.get("type") == STOCK_TYPE:
                        received[body["payload"]["k"]] = t
        except OSError:
            return

    threading.Thread(target=reader, daemon=True).start()
    return _latency_loop(writer, "stock", received, count, ws.close)


def latency_ours(server, writer, *, token, config_id, count, transport) -> dict:
    from pos_core.client import Backoff, EventClient

    received: dict[int, float] = {}
    head = writer.call("ourshead")
    if head is None:
        return {"available": False, "reason": "pos.sync.log is not installed"}

    def on_event(event):
        k = (event.get("payload") or {}).get("k")
        if isinstance(k, int):
            received[k] = now()

    client = EventClient(
        server.gevent,
        lambda refresh=False: token,
        [f"config:{config_id}"],
        after=int(head),
        on_event=on_event,
        transport=transport,
        backoff=Backoff(base=0.1, cap=2.0),
        longpoll_timeout=30,
    )
    thread = client.start()
    if not client.connected.wait(15):
        client.stop()
        return {"available": False, "reason": "the reference client did not connect"}
    result = _latency_loop(writer, "ours", received, count, client.stop)
    thread.join(5)
    return result


def _latency_loop(writer, side, received, count, close) -> dict:
    warmup, base = 10, 1_000_000 * (1 + int(time.time()) % 1000)
    latencies, lost = [], 0
    try:
        # Until one event arrives: the subscription is live (stock has no ack).
        for attempt in range(50):
            k = base - 1 - attempt
            if writer.commit(side, k) is None:
                return {"available": False, "reason": "the writer cannot emit"}
            if _wait_for(received, k, 0.5) is not None:
                break
        else:
            return {"available": False, "reason": "no event reached the subscriber"}
        for index in range(warmup + count):
            k = base + index
            committed = writer.commit(side, k)
            got = _wait_for(received, k, 5.0)
            if got is None:
                lost += 1
            elif index >= warmup:
                latencies.append(got - committed)
            time.sleep(0.02)
    finally:
        close()
    return {"available": True, "latency": summary_ms(latencies), "lost": lost}


def fanout(server, writer, *, py, args, side, count, stmt_log, fixture) -> dict:
    gevent_pid = server.gevent_pid()
    rss_before = rss_kib(gevent_pid) if gevent_pid else None
    fds_before = open_files(gevent_pid) if gevent_pid else None
    per_socket = args.fds_per_connection.get(side)
    asked = count
    if gevent_pid and per_socket:
        # At the largest size (in thousands) the descriptors left allow.
        limit = open_files_limit(gevent_pid)
        count = min(count, sockets_that_fit(limit, fds_before + 256, per_socket))
        if count <= 0:
            return {
                "available": False,
                "reason": f"{asked} sockets need about {round(per_socket * asked)} descriptors "
                f"in the gevent process ({per_socket} each, measured at the previous "
                f"size), over its limit of {limit} on this machine",
            }
    common = {
        "side": side,
        "url": server.gevent,
        "count": count,
        "concurrency": 10,
        "deadline": 600,
        "config_id": fixture["config_id"],
    }
    if side == "stock":
        common.update(cookie_file=args.cookie_file, after=int(writer.call("buslast")))
    else:
        if writer.call("ourshead") is None:
            return {"available": False, "reason": "pos.sync.log is not installed"}
        common.update(tokens_file=args.tokens, per_device=args.per_device)
    log(f"{side}: opening {count} WebSockets")
    swarm = Swarm(py, **common)
    try:
        ready = swarm.ready
        if ready["ready"] == 0:
            return {"available": False, "reason": f"no socket connected: {ready['errors']}"}
        time.sleep(2.0)
        rss_after = rss_kib(gevent_pid) if gevent_pid else None
        fds_after = open_files(gevent_pid) if gevent_pid else None
        if fds_before is not None and ready["ready"]:
            args.fds_per_connection[side] = round((fds_after - fds_before) / ready["ready"], 2)
        broadcasts = SCALES[args.scale]["broadcasts"]
        interval = 1.0 if count >= 10000 else 0.3
        # The same window without events: what the server runs anyway.
        stmt_log.start()
        time.sleep(broadcasts * interval)
        idle = stmt_log.stop()
        swarm.report()
        stmt_log.start()
        commits = {}
        base = 2_000_000 * (1 + int(time.time()) % 1000)
        for index in range(broadcasts):
            commits[base + index] = writer.commit(side, base + index)
            time.sleep(interval)
        settle_end = now() + (60 if count >= 10000 else 15)
        received = {}
        while now() < settle_end:
            time.sleep(1.0)
            part = swarm.report()["received"]
            for k, times in part.items():
                received.setdefault(int(k), []).extend(times)
            if all(len(received.get(k, ())) >= ready["ready"] for k in commits):
                break
        busy = stmt_log.stop()
        latencies = [t - committed for k, committed in commits.items() for t in received.get(k, ())]
        expected = ready["ready"] * len(commits)
        per_process = {
            pid: round(
                (busy["by_process"].get(pid, 0) - idle["by_process"].get(pid, 0)) / broadcasts, 1
            )
            for pid in set(busy["by_process"]) | set(idle["by_process"])
        }
        return {
            "available": True,
            "subscribers": ready["ready"],
            "connect_failed": ready["failed"],
            "connect_errors": ready["errors"],
            "connect_seconds": ready["seconds"],
            "broadcasts": broadcasts,
            "delivered": len(latencies),
            "expected": expected,
            "delivery": summary_ms(latencies),
            "statements_per_broadcast": round((busy["total"] - idle["total"]) / broadcasts, 1),
            "statements_per_broadcast_by_process": {
                str(pid): value for pid, value in per_process.items() if value
            },
            "event_reads_per_broadcast": round((busy["reads"] - idle["reads"]) / broadcasts, 2),
            "event_reads_per_broadcast_by_process": {
                str(pid): round(count / broadcasts, 2)
                for pid, count in busy["reads_by_process"].items()
            },
            "statements_idle_window": idle["total"],
            "top_statements": sorted(busy["kinds"].items(), key=lambda kv: -kv[1])[:6],
            "gevent_rss_kib_before": rss_before,
            "gevent_rss_kib_after": rss_after,
            "descriptors_per_connection": args.fds_per_connection.get(side),
            "kib_per_connection": (
                round((rss_after - rss_before) / ready["ready"], 2)
                if rss_before and rss_after and ready["ready"]
                else None
            ),
        }
    finally:
        swarm.close()
        time.sleep(2.0)


def idle(server, writer, *, py, args, side, count, fixture) -> dict:
    """RSS of a freshly started gevent process before and after ``count``
    idle subscribed sockets: nothing freed by an earlier phase is reused."""
    server.stop()
    server.start()
    time.sleep(3.0)
    gevent_pid = server.gevent_pid()
    options = {
        "side": side,
        "url": server.gevent,
        "count": count,
        "concurrency": 10,
        "deadline": 600,
        "config_id": fixture["config_id"],
    }
    if side == "stock":
        options.update(cookie_file=args.cookie_file, after=int(writer.call("buslast")))
    else:
        options.update(tokens_file=args.tokens, per_device=args.per_device)
    rss_before, fds_before = rss_kib(gevent_pid), open_files(gevent_pid)
    swarm = Swarm(py, **options)
    try:
        time.sleep(5.0)
        rss_after, fds_after = rss_kib(gevent_pid), open_files(gevent_pid)
        ready = swarm.ready["ready"]
        return {
            "available": bool(ready),
            "connections": ready,
            "connect_failed": swarm.ready["failed"],
            "gevent_rss_kib_before": rss_before,
            "gevent_rss_kib_after": rss_after,
            "kib_per_connection": round((rss_after - rss_before) / ready, 2) if ready else None,
            "descriptors_per_connection": round((fds_after - fds_before) / ready, 2)
            if ready
            else None,
        }
    finally:
        swarm.close()


def resume(server, writer, *, token, config_id, seconds, transport, dsn) -> dict:
    """A steady stream of events; the server restarts in the middle."""
    import psycopg2

    from pos_core.client import Backoff, EventClient

    head = writer.call("ourshead")
    if head is None:
        return {"available": False, "reason": "pos.sync.log is not installed"}
    start_seq = int(head)
    seen, dropped = [], [0]

    class Counting(EventClient):
        def deliver(self, event):
            accepted = super().deliver(event)
            if not accepted:
                dropped[0] += 1
            return accepted

    client = Counting(
        server.gevent,
        lambda refresh=False: token,
        [f"config:{config_id}"],
        after=start_seq,
        on_event=lambda event: seen.append(event["seq"]),
        transport=transport,
        backoff=Backoff(base=0.2, cap=2.0),
        longpoll_timeout=10,
    )
    thread = client.start()
    if not client.connected.wait(15):
        client.stop()
        return {"available": False, "reason": "the reference client did not connect"}
    stop_writing = threading.Event()
    written = [0]

    def write():
        k = 3_000_000
        while not stop_writing.is_set():
            writer.commit("ours", k)
            written[0] += 1
            k += 1
            time.sleep(0.05)

    writing = threading.Thread(target=write, daemon=True)
    writing.start()
    time.sleep(seconds / 3)
    restart_started = now()
    server.stop()
    server.start()
    restart_seconds = now() - restart_started
    time.sleep(seconds / 3)
    stop_writing.set()
    writing.join(10)
    end_seq = int(writer.call("ourshead"))
    deadline = now() + 30
    while now() < deadline and (client.cursor.last or 0) < end_seq:
        time.sleep(0.2)
    client.stop()
    thread.join(5)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cr:
        cr.execute(
            "SELECT seq FROM pos_sync_log WHERE config_id = %s AND seq > %s AND seq <= %s",
            (config_id, start_seq, end_seq),
        )
        expected = sorted(row[0] for row in cr.fetchall())
    got = set(seen)
    return {
        "available": True,
        "transport": transport,
        "events_committed": len(expected),
        "events_received": len(seen),
        "gaps": len(set(expected) - got),
        "duplicates_delivered": len(seen) - len(got),
        "out_of_order": sum(1 for a, b in zip(seen, seen[1:], strict=False) if b <= a),
        "replayed_and_dropped_by_the_cursor": dropped[0],
        "restart_seconds": round(restart_seconds, 1),
        "writes_during_window": written[0],
    }


# ==========================================================================
def report_markdown(results: dict) -> str:
    lines = ["| measure | stock bus | ours (WebSocket) | ours (long-poll) |", "|---|---|---|---|"]
    lat = results.get("latency", {})

    def fmt(entry, key):
        if not entry or not entry.get("available"):
            return "n/a" + (f" ({entry.get('reason')})" if entry else "")
        figures = entry["latency"]
        return f"{figures.get(key)} ms"

    for key in ("p50", "p99"):
        lines.append(
            f"| commit → receipt {key}, 1 subscriber | {fmt(lat.get('stock'), key)} "
            f"| {fmt(lat.get('ours_websocket'), key)} | {fmt(lat.get('ours_longpoll'), key)} |"
        )
    lines += [
        "",
        "| fan-out | side | subscribers | SQL statements / broadcast | "
        "delivery p50 | delivery p99 | delivered | gevent KiB / connection |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in results.get("fanout", []):
        r = entry["result"]
        if not r.get("available"):
            lines.append(f"| {entry['n']} | {entry['side']} | n/a ({r.get('reason')}) |||||| ")
            continue
        lines.append(
            f"| {entry['n']} | {entry['side']} | {r['subscribers']} | "
            f"{r['event_reads_per_broadcast']} ({r['statements_per_broadcast']}) | "
            f"{r['delivery'].get('p50')} ms | "
            f"{r['delivery'].get('p99')} ms | {r['delivered']}/{r['expected']} | "
            f"{r['kib_per_connection']} |"
        )
    for entry in results.get("idle", []):
        if entry.get("available"):
            lines.append(
                f"\nidle ({entry['side']}): {entry['connections']} connections, "
                f"{entry['kib_per_connection']} KiB and {entry['descriptors_per_connection']} "
                f"descriptors each in the gevent process (RSS {entry['gevent_rss_kib_before']}"
                f" → {entry['gevent_rss_kib_after']} KiB)"
            )
    for entry in results.get("resume", []):
        if entry.get("available"):
            lines.append(
                f"\nresume ({entry['transport']}): {entry['events_committed']} events committed, "
                f"{entry['gaps']} gaps, {entry['duplicates_delivered']} duplicates, "
                f"restart {entry['restart_seconds']} s"
            )
        else:
            lines.append(f"\nresume: n/a ({entry.get('reason')})")
    return "\n".join(lines)


def orchestrate(args) -> int:
    from bench_orders import CpuMeter

    fixture = json.loads(Path(args.fixture).read_text())
    tokens = Path(args.tokens).read_text().split()
    scale = SCALES[args.scale]
    only = set(args.phases.split(","))
    sides = ("stock", "ours") if args.only == "both" else (args.only,)
    server = Server(
        args.py,
        args.conf,
        args.db,
        http_port=args.http_port,
        gevent_port=args.gevent_port,
        workers=args.workers,
        logfile=args.odoo_log,
    )
    results = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scale": args.scale,
        "conditions": {
            "workers": args.workers,
            "cores": os.cpu_count(),
            "odoo": fixture.get("odoo_version"),
            "devices": len(tokens),
            "per_device": args.per_device,
        },
    }
    args.fds_per_connection = {}
    writer = None
    # bench/run stops on TERM/INT: the server this script started goes too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cpu = CpuMeter([os.getpid()])
    before = cpu.sample()
    try:
        log("starting Odoo")
        server.start()
        writer = Writer(args.py, args.conf, args.db, fixture["config_id"])
        cookie = stock_login(server, args.db, fixture["login"], "admin")
        Path(args.cookie_file).write_text(cookie)
        stmt_log = StatementLog(args.dsn, args.pg_log, {writer.pid})
        if "latency" in only:
            lat = results["latency"] = {}
            if "stock" in sides:
                log(f"latency: stock bus, {scale['latency']} events")
                lat["stock"] = latency_stock(server, writer, cookie, scale["latency"])
            if "ours" in sides:
                for transport in ("websocket", "longpoll"):
                    log(f"latency: ours over {transport}, {scale['latency']} events")
                    lat[f"ours_{transport}"] = latency_ours(
                        server,
                        writer,
                        token=tokens[-2],
                        config_id=fixture["config_id"],
                        count=scale["latency"],
                        transport=transport,
                    )
        if "fanout" in only:
            results["fanout"] = []
            for n in scale["fanout"]:
                for side in sides:
                    try:
                        result = fanout(
                            server,
                            writer,
                            py=args.py,
                            args=args,
                            side=side,
                            count=n,
                            stmt_log=stmt_log,
                            fixture=fixture,
                        )
                    except (RuntimeError, OSError) as exc:
                        result = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
                    log(f"fan-out {n} {side}: {json.dumps(result)[:300]}")
                    results["fanout"].append({"n": n, "side": side, "result": result})
        if "idle" in only:
            results["idle"] = []
            for side in sides:
                n = scale["fanout"][-1]
                if side == "stock":
                    n = min(n, sockets_that_fit(open_files_limit(os.getpid()), 1024, 3))
                log(f"idle: {n} {side} WebSockets on a fresh server")
                try:
                    entry = idle(
                        server, writer, py=args.py, args=args, side=side, count=n, fixture=fixture
                    )
                except (RuntimeError, OSError) as exc:
                    entry = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
                log(f"idle {n} {side}: {json.dumps(entry)}")
                results["idle"].append(dict(entry, side=side, n=n))
        if "resume" in only and "ours" in sides:
            results["resume"] = []
            for transport in ("websocket", "longpoll"):
                log(f"resume over {transport}: {scale['resume_seconds']} s, restart in the middle")
                results["resume"].append(
                    resume(
                        server,
                        writer,
                        token=tokens[-1],
                        config_id=fixture["config_id"],
                        seconds=scale["resume_seconds"],
                        transport=transport,
                        dsn=args.dsn,
                    )
                )
    finally:
        results["cpu"] = CpuMeter.usage(before, cpu.sample())
        if writer:
            writer.close()
        server.stop()
    out = Path(args.results) / f"{args.stamp}-realtime.json"
    out.write_text(json.dumps(results, indent=2))
    print(report_markdown(results))
    log(f"results: {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--conf", required=True)
    w.add_argument("--db", required=True)
    w.add_argument("--config-id", type=int, required=True)
    s = sub.add_parser("swarm")
    s.add_argument("--side", choices=("stock", "ours"), required=True)
    s.add_argument("--url", required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--concurrency", type=int, default=50)
    s.add_argument("--deadline", type=float, default=600)
    s.add_argument("--config-id", type=int, default=0)
    s.add_argument("--cookie-file")
    s.add_argument("--after", type=int, default=0)
    s.add_argument("--tokens-file")
    s.add_argument("--per-device", type=int, default=8)
    o = sub.add_parser("run")
    o.add_argument("--py", default=sys.executable)
    o.add_argument("--conf", required=True)
    o.add_argument("--db", required=True)
    o.add_argument("--dsn", required=True)
    o.add_argument("--pg-log", required=True)
    o.add_argument("--fixture", required=True)
    o.add_argument("--tokens", required=True)
    o.add_argument("--cookie-file", required=True)
    o.add_argument("--http-port", type=int, required=True)
    o.add_argument("--gevent-port", type=int, required=True)
    o.add_argument("--workers", type=int, default=2)
    o.add_argument("--per-device", type=int, default=8)
    o.add_argument("--odoo-log", required=True)
    o.add_argument("--scale", choices=tuple(SCALES), default="full")
    o.add_argument("--only", choices=("stock", "ours", "both"), default="both")
    o.add_argument("--phases", default="latency,fanout,idle,resume")
    o.add_argument("--results", required=True)
    o.add_argument("--stamp", required=True)
    args = parser.parse_args(argv)
    if args.command == "writer":
        return writer_main(args)
    if args.command == "swarm":
        return swarm_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
