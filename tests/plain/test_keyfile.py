import os
import stat
import threading

from pos_core import keyfile, tokens


def test_a_missing_key_is_created_private_and_then_reused(tmp_path):
    path = str(tmp_path / "point_of_sale_api" / "db1.jwt.key")
    key = keyfile.read_or_create(path)
    assert len(key) >= tokens.MIN_SECRET_LENGTH
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert keyfile.read_or_create(path) == key
    assert keyfile.read_or_create(str(tmp_path / "point_of_sale_api" / "db2.jwt.key")) != key
    assert sorted(os.listdir(os.path.dirname(path))) == ["db1.jwt.key", "db2.jwt.key"]


def test_racing_workers_agree_on_one_key(tmp_path):
    path = str(tmp_path / "keys" / "db.jwt.key")
    barrier = threading.Barrier(8)
    keys = []

    def create():
        barrier.wait(timeout=10)
        keys.append(keyfile.read_or_create(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(keys) == 8
    assert len(set(keys)) == 1
    assert os.listdir(os.path.dirname(path)) == ["db.jwt.key"]  # no temporary file left
