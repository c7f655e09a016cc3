# Shared helpers of scripts/run and scripts/test. Sourced, never executed.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
ADDON=point_of_sale_api

log() { printf '[pos_api] %s\n' "$*" >&2; }
die() { printf '[pos_api] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1
  fi
}

pg_bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && best="$d"
  done
  if [ -z "$best" ] && command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null) && [ -x "$d/initdb" ] && best="$d"
  fi
  printf '%s' "$best"
}

# PostgreSQL refuses to run as root: run its binaries as the postgres user then.
pg_as_owner() {
  if [ "$(id -u)" != 0 ]; then "$@"; return; fi
  local runuser
  runuser=$(PATH="$PATH:/usr/sbin:/sbin" command -v runuser) || die "runuser not found"
  "$runuser" -u postgres -- "$@"
}

# Debian packages the scripts need: PostgreSQL server and client, Redis, venv.
ensure_debian_packages() {
  local missing=()
  [ -n "$(pg_bindir)" ] || missing+=(postgresql)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
    || die "apt-get update failed (are you root or a sudoer?)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The project-local virtualenv. It sees the system site-packages so that an
# Odoo 18 installed for the system Python (Odoo's own documented way) is
# importable; ODOO_PATH (a source checkout) is added through a .pth file.
ensure_venv() {  # ensure_venv [requirement files...]
  if [ ! -x "$PY" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv --system-site-packages "$VENV" || die "python3 -m venv failed"
  fi
  local site stamp want
  site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  if [ -n "${ODOO_PATH:-}" ]; then
    [ -d "$ODOO_PATH/odoo" ] || die "ODOO_PATH=$ODOO_PATH has no odoo/ package"
    (cd "$ODOO_PATH" && pwd) > "$site/_pos_api_odoo.pth"
  else
    rm -f "$site/_pos_api_odoo.pth"
  fi
  stamp="$VENV/.pos_api_requirements"
  want=$(cd "$ROOT" && cat "$@" | sha256sum | cut -c1-16)
  if ! "$PY" -c 'import psycopg2' >/dev/null 2>&1; then
    log "installing psycopg2-binary (no psycopg2 importable)"
    "$PY" -m pip install -q --disable-pip-version-check psycopg2-binary || die "pip failed"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing Python packages into .venv: $*"
    local args=() f
    for f in "$@"; do args+=(-r "$ROOT/$f"); done
    "$PY" -m pip install -q --disable-pip-version-check "${args[@]}" || die "pip install failed"
    printf '%s' "$want" > "$stamp"
  fi
}

# Prints the Odoo version importable by the venv, or nothing.
odoo_version() {
  "$PY" -c 'import odoo.release as r; print(r.major_version)' 2>/dev/null || true
}

# Prints the Python script that starts Odoo's command line, for "$PY" to run:
# odoo-bin next to the odoo package of a source checkout, else the "odoo"
# script of an installed distribution; nothing when there is neither. Odoo
# with workers starts its gevent process as `sys.executable sys.argv[0]
# gevent ...`, so it must be started through such a file (`python -m odoo`
# leaves sys.argv[0] pointing at odoo/__main__.py, which cannot be re-run).
odoo_entry_point() {
  "$PY" - <<'PY'
import os, shutil, sys, sysconfig
import odoo
root = os.path.dirname(os.path.dirname(os.path.abspath(odoo.__file__)))
candidates = [os.path.join(root, "odoo-bin")]
for d in (os.path.dirname(sys.executable), sysconfig.get_path("scripts"),
          os.path.join(sys.base_prefix, "bin")):
    candidates.append(os.path.join(d, "odoo"))
candidates.append(shutil.which("odoo") or "")
for path in candidates:
    if not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        head = f.readline()
    # A Python script (not, say, a pyenv shell shim), run by the venv's python.
    if path.endswith("odoo-bin") or (head.startswith(b"#!") and b"python" in head):
        print(path)
        break
PY
}

odoo_addons_dir() {
  "$PY" - <<'PY'
import os, odoo
root = os.path.dirname(os.path.dirname(odoo.__file__))
path = os.path.join(root, "addons")
print(path if os.path.isdir(os.path.join(path, "point_of_sale")) else "")
PY
}

# Python packages for the Odoo tier: pytest-odoo and the OCA addons (PyPI).
ensure_odoo_test_packages() {
  local stamp="$VENV/.pos_api_odoo_requirements" want
  want=$(cat "$ROOT/requirements-odoo.txt" | sha256sum | cut -c1-16)
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  log "installing Odoo-tier packages: pytest-odoo and OCA addons"
  if "$PY" -c 'import importlib.metadata as m; m.version("odoo")' >/dev/null 2>&1; then
    "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-odoo.txt" \
      || die "pip install -r requirements-odoo.txt failed"
  else
    # Odoo from a bare source path has no distribution metadata for pip to
    # resolve the OCA addons' "odoo" requirement against.
    "$PY" -m pip install -q --disable-pip-version-check --no-deps -r "$ROOT/requirements-odoo.txt" \
      || die "pip install -r requirements-odoo.txt failed"
  fi
  printf '%s' "$want" > "$stamp"
}

# The headless browser of the Odoo tier's tours (Odoo's HttpCase looks for
# google-chrome, chromium, chromium-browser or google-chrome-stable on PATH),
# and websocket-client, with which Odoo drives it, in .venv. Without apt-get
# the tours are skipped by Odoo itself, with a warning here.
ensure_chromium() {
  local bin found=""
  for bin in google-chrome chromium chromium-browser google-chrome-stable; do
    if command -v "$bin" >/dev/null 2>&1; then found=$bin; break; fi
  done
  if [ -z "$found" ]; then
    if command -v apt-get >/dev/null 2>&1; then
      log "installing Debian package: chromium (browser tours of the Odoo tier)"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
        || die "apt-get update failed (are you root or a sudoer?)"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium >/dev/null || die "apt-get install chromium failed"
    else
      log "warning: no Chrome/Chromium and no apt-get to install it; browser tours will be skipped"
    fi
  fi
}

# Starts (creating if needed) a PostgreSQL cluster in DIR on PORT with a
# superuser role "odoo" (Odoo refuses to run as "postgres").
start_postgres() {  # start_postgres DIR PORT [durable]
  local dir=$1 port=$2 durable=${3:-} bindir opts
  bindir=$(pg_bindir)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    pg_as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null \
      || die "initdb failed in $dir"
  fi
  opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200"
  [ -n "$durable" ] || opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if ! pg_as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$opts" start \
      >/dev/null || die "PostgreSQL did not start; see $dir/server.log"
  fi
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAqc \
    "SELECT 1 FROM pg_roles WHERE rolname = 'odoo'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc \
      "CREATE ROLE odoo SUPERUSER LOGIN" >/dev/null
}

stop_postgres() {  # stop_postgres DIR
  local bindir; bindir=$(pg_bindir)
  [ -f "$1/data/PG_VERSION" ] || return 0
  pg_as_owner "$bindir/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null 2>&1 || true
}

start_redis() {  # start_redis DIR PORT [durable]
  local dir=$1 port=$2 durable=${3:-}
  mkdir -p "$dir"
  local persist=(--save "" --appendonly no)
  [ -n "$durable" ] && persist=(--appendonly yes)
  if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "${persist[@]}" \
      || die "Redis did not start; see $dir/redis.log"
    local i
    for i in $(seq 50); do
      redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return 0
      sleep 0.1
    done
    die "Redis did not answer on port $port; see $dir/redis.log"
  fi
}

stop_redis() {  # stop_redis PORT
  redis-cli -h 127.0.0.1 -p "$1" shutdown nosave >/dev/null 2>&1 || true
}

# Writes an odoo.conf for the given database server.
write_odoo_conf() {  # write_odoo_conf FILE PGHOST PGPORT ADDONS_PATH DATA_DIR REDIS_URL
  cat > "$1" <<CONF
[options]
db_host = $2
db_port = $3
db_user = odoo
db_password = False
addons_path = $4
data_dir = $5
admin_passwd = admin
list_db = True

[point_of_sale_api]
redis_url = $6
CONF
}
