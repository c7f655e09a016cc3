"""Commit order of the sync log, with real transactions that really commit:
separate cursors (own connections), the post-commit sequencer of each
commit, readers on cursors of their own. Every row the tests write is
marked in its payload and deleted afterwards (the heads keep their numbers:
seqs are never reused)."""

import json
import select
import threading
import uuid

import psycopg2

from odoo import api, sql_db
from odoo.tests import TransactionCase, tagged

from ..models.pos_api_device import api_settings
from ..pos_core import events, sync_wake
from .common import DEMO_CONFIG_XMLID
from .threads import thread_env

K = 6


@tagged("post_install", "-at_install")
class TestSyncLogCommitOrder(TransactionCase):
    def setUp(self):
        super().setUp()
        self.marker = uuid.uuid4().hex
        self.config_id = self.env.ref(DEMO_CONFIG_XMLID).id
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self._cursor() as cr:
            cr.execute("DELETE FROM pos_sync_log WHERE payload->>'test' = %s", [self.marker])

    def _cursor(self):
        """A real cursor of its own (a connection and transaction of its own)."""
        return sql_db.db_connect(self.env.cr.dbname).cursor()

    def _env(self, cr):
        return thread_env(self.registry, cr, api.SUPERUSER_ID)

    def _emit(self, cr, label):
        env = self._env(cr)
        config = env["pos.config"].browse(self.config_id)
        env["pos.sync.log"]._emit(
            config, events.ORDER_UPDATED, [], {"test": self.marker, "label": label}
        )
        cr.flush()  # precommit: the row is inserted, without a seq

    def _seqs(self, cr=None):
        """{label: seq} of this test's rows, as a fresh reader sees them."""
        own = cr is None
        cr = cr or self._cursor()
        try:
            cr.execute(
                "SELECT payload->>'label', seq FROM pos_sync_log WHERE payload->>'test' = %s",
                [self.marker],
            )
            return dict(cr.fetchall())
        finally:
            if own:
                cr.close()

    def test_later_commit_gets_the_higher_seq(self):
        first, second = self._cursor(), self._cursor()
        try:
            # "first" writes first (lower id) but commits last.
            self._emit(first, "first")
            self._emit(second, "second")
            self.assertEqual(self._seqs(), {}, "nothing is visible before commit")
            second.commit()
            seen = self._seqs()
            self.assertEqual(list(seen), ["second"])
            reader_max = seen["second"]
            self.assertIsNotNone(reader_max, "sequenced by the post-commit hook")
            first.commit()
        finally:
            first.close()
            second.close()
        seqs = self._seqs()
        self.assertEqual(seqs["first"], seqs["second"] + 1)
        # The reader that saw reader_max sees only higher seqs appear.
        with self._cursor() as reader:
            env = self._env(reader)
            envelopes, last, resync = env["pos.sync.log"]._read_since(
                self.config_id, reader_max, None, 50
            )
            self.assertFalse(resync)
            self.assertTrue(all(env["seq"] > reader_max for env in envelopes))
            self.assertIn(seqs["first"], [env["seq"] for env in envelopes])
            self.assertGreaterEqual(last, seqs["first"])

    def test_rolled_back_writer_leaves_no_row_and_no_gap(self):
        with self._cursor() as cr:
            self._emit(cr, "before")
        rolled = self._cursor()
        try:
            self._emit(rolled, "rolled back")
            rolled.rollback()
        finally:
            rolled.close()
        with self._cursor() as cr:
            self._emit(cr, "after")
        seqs = self._seqs()
        self.assertNotIn("rolled back", seqs)
        self.assertEqual(seqs["after"], seqs["before"] + 1)

    def test_concurrent_writers_get_unique_gap_free_seqs_in_commit_order(self):
        barrier = threading.Barrier(K)
        errors = []
        committed = []
        lock = threading.Lock()

        def writer(index):
            try:
                with self._cursor() as cr:
                    self._emit(cr, f"w{index}")
                    barrier.wait(timeout=30)
                # (committed on leaving the block: the post-commit sequencer ran)
                with lock:
                    committed.append(f"w{index}")
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(index,)) for index in range(K)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(len(committed), K)
        seqs = self._seqs()
        self.assertEqual(len(seqs), K)
        values = sorted(seqs.values())
        self.assertEqual(values, list(range(values[0], values[0] + K)), "gap-free, unique")

    def test_backstop_sequences_rows_whose_writer_died_after_commit(self):
        with self._cursor() as cr:
            self._emit(cr, "orphan")
            cr.postcommit.clear()  # the writer dies between commit and post-commit
            cr.execute(
                "UPDATE pos_sync_log SET create_date = create_date - interval '1 minute'"
                " WHERE payload->>'test' = %s",
                [self.marker],
            )
        self.assertEqual(self._seqs(), {"orphan": None})
        with self._cursor() as cr:
            heads = self._env(cr)["pos.sync.log"]._sequence_orphans()
        seq = self._seqs()["orphan"]
        self.assertIsNotNone(seq)
        self.assertEqual(heads[self.config_id], seq)

    def test_readers_are_woken_by_notify_and_redis(self):
        dsn = sql_db.connection_info_for(self.env.cr.dbname)[1]
        listener = psycopg2.connect(**dsn)
        listener.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        redis_url = api_settings().redis_url
        pubsub = None
        if redis_url:
            import redis

            pubsub = redis.Redis.from_url(redis_url, socket_timeout=5).pubsub()
            pubsub.subscribe(sync_wake.REDIS_CHANNEL)
            pubsub.get_message(timeout=2)  # the subscription's confirmation
        try:
            with listener.cursor() as lcr:
                lcr.execute(f"LISTEN {sync_wake.NOTIFY_CHANNEL}")
            with self._cursor() as cr:
                self._emit(cr, "woken")
            seq = self._seqs()["woken"]
            self.assertTrue(select.select([listener], [], [], 5)[0], "NOTIFY received")
            listener.poll()
            notices = [json.loads(n.payload) for n in listener.notifies]
            self.assertIn({"db": self.env.cr.dbname, "heads": {str(self.config_id): seq}}, notices)
            if pubsub is not None:
                message = pubsub.get_message(timeout=5)
                self.assertIsNotNone(message, "Redis PUBLISH received")
                self.assertEqual(
                    sync_wake.parse_wake_message(message["data"].decode()),
                    (self.env.cr.dbname, {self.config_id: seq}),
                )
        finally:
            listener.close()
            if pubsub is not None:
                pubsub.close()
