"""Fixtures of the plain tier: the engines against real PostgreSQL and Redis.

``scripts/test`` starts throwaway servers and exports their addresses in
POS_API_TEST_PG_DSN and POS_API_TEST_REDIS_URL. There are no mocks: a test
that needs a server and finds none is skipped with the reason.
"""

import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The engine package is imported as a top-level package, the way the plain
# tier sees it: without the addon's __init__ (which imports odoo).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def free_port():
    """A loopback TCP port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _require_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: run the suite through scripts/test")
    return value


@pytest.fixture(scope="session")
def pg_dsn():
    """DSN of a fresh database on the throwaway server, dropped afterwards."""
    import psycopg2
    from psycopg2 import sql

    admin_dsn = _require_env("POS_API_TEST_PG_DSN")
    name = f"pos_api_plain_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cr:
        cr.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg2.extensions.make_dsn(admin_dsn, dbname=name)
    try:
        yield dsn
    finally:
        with admin.cursor() as cr:
            cr.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def pg_conn(pg_dsn):
    """A connection to the session database; whatever a test leaves is rolled back."""
    import psycopg2

    conn = psycopg2.connect(pg_dsn)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture
def redis_client():
    """A client on a real Redis server, on a database flushed before and after."""
    import redis

    client = redis.Redis.from_url(_require_env("POS_API_TEST_REDIS_URL"), socket_timeout=5)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
