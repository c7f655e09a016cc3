"""Random keys kept in files outside the database.

A key derived from something in the database (``database.secret``) is in
every dump of it. A key in Odoo's data directory, outside the filestore that
Odoo's backups include, is not: whoever restores a dump elsewhere cannot sign
tokens that this server accepts.
"""

from __future__ import annotations

import contextlib
import os
import secrets

KEY_BYTES = 48  # 64 url-safe characters


def read_or_create(path: str, nbytes: int = KEY_BYTES) -> str:
    """Return the key stored at ``path``, creating it (mode 0600) when missing.

    Safe when several workers race for the first key: the key is written to a
    private temporary file, then hard-linked into place, which fails for all
    but one of them; the others read the winner's key. Nobody ever reads a
    half-written file.
    """
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # Another process may have created it first: then use theirs.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return _read(path)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        key = handle.read().strip()
    if not key:
        raise ValueError(f"the key file {path} is empty")
    return key


def key_path(data_dir: str, dbname: str, purpose: str) -> str:
    """Where the key for ``purpose`` of database ``dbname`` is kept:
    ``<data_dir>/point_of_sale_api/<dbname>/<purpose>.key``, next to Odoo's
    filestore (``<data_dir>/filestore``) but not in it."""
    for part in (dbname, purpose):
        if not part or "/" in part or part.startswith("."):
            raise ValueError(f"not a plain name: {part!r}")
    return os.path.join(state_dir(data_dir, dbname), f"{purpose}.key")


def state_dir(data_dir: str, dbname: str) -> str:
    """The addon's directory for database ``dbname`` in Odoo's data directory."""
    return os.path.join(data_dir, "point_of_sale_api", dbname)
