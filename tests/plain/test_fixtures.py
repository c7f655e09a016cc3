"""The plain tier's servers are real: PostgreSQL and Redis, not stand-ins."""


def test_postgres_is_a_real_server(pg_conn):
    with pg_conn.cursor() as cr:
        cr.execute("SHOW server_version_num")
        assert int(cr.fetchone()[0]) >= 120000
        cr.execute("CREATE TEMP TABLE t (id serial PRIMARY KEY, uuid text UNIQUE)")
        cr.execute("INSERT INTO t (uuid) VALUES ('a'), ('b') RETURNING id")
        assert [row[0] for row in cr.fetchall()] == [1, 2]
        # A real server enforces constraints: the idempotency design relies on it.
        cr.execute("SAVEPOINT dup")
        try:
            cr.execute("INSERT INTO t (uuid) VALUES ('a')")
        except Exception as exc:  # noqa: BLE001 - the driver's IntegrityError
            assert type(exc).__name__ == "UniqueViolation"
            cr.execute("ROLLBACK TO SAVEPOINT dup")
        else:
            raise AssertionError("duplicate uuid was accepted")


def test_postgres_database_is_isolated(pg_dsn, pg_conn):
    with pg_conn.cursor() as cr:
        cr.execute("SELECT current_database()")
        assert cr.fetchone()[0].startswith("pos_api_plain_")
        assert "pos_api_plain_" in pg_dsn


def test_redis_is_a_real_server(redis_client):
    info = redis_client.info("server")
    assert int(info["redis_version"].split(".")[0]) >= 5
    assert redis_client.set("k", "v", ex=30)
    assert redis_client.get("k") == b"v"
    assert 0 < redis_client.ttl("k") <= 30
    pipe = redis_client.pipeline(transaction=True)
    pipe.incr("n").incr("n").get("n")
    assert pipe.execute()[-1] == b"2"
