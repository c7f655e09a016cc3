"""One autocommit PostgreSQL connection per process and database, for the
short statements of the real-time path (sequencing, broadcast reads, the bus
wake-up): each is one round trip, with no BEGIN/COMMIT around it and no
borrowing from Odoo's pool.

A connection is owned by the process that opened it (a forked worker opens
its own) and used by one caller at a time; a caller that finds it busy uses
a pooled cursor of Odoo's instead of waiting. A broken connection is dropped
and reopened on next use.
"""

import contextlib
import os
import threading

import psycopg2

from odoo import sql_db

_CONNECTIONS = {}
_CONNECTIONS_LOCK = threading.Lock()


class _Dedicated:
    __slots__ = ("cnx", "dbname", "lock", "pid")

    def __init__(self, dbname):
        self.dbname = dbname
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.cnx = None

    def open(self):
        if self.cnx is None or self.cnx.closed:
            _name, info = sql_db.connection_info_for(self.dbname)
            self.cnx = psycopg2.connect(**info)
            self.cnx.autocommit = True
        return self.cnx

    def drop(self):
        cnx, self.cnx = self.cnx, None
        if cnx is not None:
            with contextlib.suppress(psycopg2.Error):
                cnx.close()


def _dedicated(dbname):
    key = (os.getpid(), dbname)
    with _CONNECTIONS_LOCK:
        entry = _CONNECTIONS.get(key)
        if entry is None:
            entry = _CONNECTIONS[key] = _Dedicated(dbname)
        return entry


def execute(dbname, query, params=None, *, fetch=True):
    """Run one statement in a transaction of its own (autocommit, READ
    COMMITTED: it sees every transaction committed before it started) and
    return its rows (``fetch``)."""
    entry = _dedicated(dbname)
    if entry.lock.acquire(blocking=False):
        try:
            cr = entry.open().cursor()
            try:
                cr.execute(query, params)
                return cr.fetchall() if fetch else None
            finally:
                cr.close()
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            entry.drop()
            raise
        finally:
            entry.lock.release()
    with sql_db.db_connect(dbname).cursor() as cr:
        cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        cr.execute(query, params)
        return cr.fetchall() if fetch else None
