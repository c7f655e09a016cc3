"""An Odoo server process of a test's own, on the test's database.

Tests that need truly concurrent transactions over HTTP use it: the HTTP
server of Odoo's own test runner shares the test cursor while an HttpCase
runs, so requests from "separate connections" there would serialize. Data
such a test writes is committed: it cleans up after itself.
"""

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import odoo

from .common import API

STARTUP_TIMEOUT = 60
STOP_TIMEOUT = 10


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnServerMixin:
    """For a TransactionCase: ``_start_server()`` starts a prefork server
    (its own process group, stopped by a cleanup) and returns its API URL on
    the HTTP workers' port; ``self.gevent_base`` is the same API on the
    gevent process's port (``self.http_port``, ``self.gevent_port``)."""

    # Loopback only, whatever proxy the environment names (not HttpCase's
    # ``opener``, which talks to the test server).
    loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _odoo_command(self):
        odoo_bin = os.path.join(os.path.dirname(os.path.dirname(odoo.__file__)), "odoo-bin")
        if os.path.isfile(odoo_bin):
            return [sys.executable, odoo_bin]
        script = shutil.which("odoo")
        if script:
            return [script]
        self.skipTest(
            f"no odoo-bin next to the odoo package ({odoo_bin}) and no `odoo` script on "
            "PATH: cannot start a server process"
        )
        return None

    def _start_server(self, workers=2, extra_args=(), env=None, ports=None):
        """``extra_args`` go to odoo-bin; ``env`` overrides environment
        variables of the server (``POS_API_*`` settings); ``ports``, the
        (HTTP, gevent) ports of a server restarted where clients expect it."""
        dbname = self.env.cr.dbname
        port, gevent_port = ports or (free_port(), free_port())
        self.http_port, self.gevent_port = port, gevent_port
        command = [
            *self._odoo_command(),
            "-c",
            odoo.tools.config.rcfile,
            "-d",
            dbname,
            "--db-filter",
            f"^{dbname}$",
            "--workers",
            str(workers),
            "--max-cron-threads",
            "0",
            "--http-port",
            str(port),
            "--gevent-port",
            str(gevent_port),
            "--http-interface",
            "127.0.0.1",
            "--log-level",
            "warn",
            *extra_args,
        ]
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by a cleanup
        self.addCleanup(log.close)
        self.server_log = log
        self.server = subprocess.Popen(  # stopped by a cleanup
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.addCleanup(self._stop_server, self.server)
        base = f"http://127.0.0.1:{port}{API}"
        self._wait_healthy(base)
        self.gevent_base = f"http://127.0.0.1:{gevent_port}{API}"
        self._wait_healthy(self.gevent_base)
        return base

    def _stop_server(self, server=None):
        """Stop ``server`` (default: the last one started)."""
        server = server or self.server
        # The group: the master, its HTTP workers and the gevent process.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=STOP_TIMEOUT)
        # Whatever is left of it, the master included when it did not stop.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=STOP_TIMEOUT)

    def _server_output(self):
        self.server_log.seek(0)
        return self.server_log.read()[-4000:].decode(errors="replace")

    def _wait_healthy(self, base):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last_error = None
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                self.fail(
                    f"the Odoo server exited with {self.server.returncode}:\n"
                    f"{self._server_output()}"
                )
            try:
                with self.loopback.open(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        return
                last_error = response.status
            except (OSError, http.client.HTTPException) as exc:
                last_error = exc  # not listening yet, or a worker being replaced
            time.sleep(0.25)
        self.fail(
            f"the Odoo server did not answer within {STARTUP_TIMEOUT} s ({last_error!r}):\n"
            f"{self._server_output()}"
        )


class SyncLogMark:
    """A point of sale's sync log as a test found it (its last row and its
    head), put back by :meth:`restore` after the test committed events."""

    def __init__(self, cr, config_id):
        self.config_id = config_id
        cr.execute("SELECT COALESCE(max(id), 0) FROM pos_sync_log")
        self.first_log_id = cr.fetchone()[0]
        cr.execute(
            "SELECT last_seq, floor_seq FROM pos_sync_log_head WHERE config_id = %s",
            [config_id],
        )
        self.head = cr.fetchone()

    def restore(self, cr):
        cr.execute("DELETE FROM pos_sync_log WHERE id > %s", [self.first_log_id])
        if self.head:
            cr.execute(
                "UPDATE pos_sync_log_head SET last_seq = %s, floor_seq = %s WHERE config_id = %s",
                [*self.head, self.config_id],
            )
        else:
            cr.execute("DELETE FROM pos_sync_log_head WHERE config_id = %s", [self.config_id])


class OwnRedis:
    """A redis-server of a test's own, which it may stop and start again on
    the same port (``url``)."""

    def __init__(self):
        if not shutil.which("redis-server"):
            raise unittest.SkipTest("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = tempfile.mkdtemp(prefix="pos_api_redis_")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(  # stopped by stop()
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--dir", self.directory, "--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(STOP_TIMEOUT)

    def close(self):
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
