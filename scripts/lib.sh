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
  [ ${#missing[@]} -eq 0 ] || apt_install "the test and run commands" "${missing[@]}"
}

apt_install() {  # apt_install WHAT-FOR PACKAGES...
  local why=$1; shift
  command -v apt-get >/dev/null 2>&1 || die "$why need $*, and there is no apt-get to install them"
  log "installing Debian packages for $why: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
    || die "apt-get update failed (are you root or a sudoer?)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$@" >/dev/null || die "apt-get install $* failed"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The project-local virtualenv. It sees the system site-packages so that an
# Odoo 18 installed for the system Python (Odoo's own documented way) is
# importable. The Odoo source root, from ODOO_PATH or found wherever the
# importable Odoo lives, is put on the venv's path through a .pth file, so
# that it wins over the `odoo` namespace folder the OCA addons install into
# the venv (an editable install's finder would otherwise lose to it). With
# ODOO_PATH, Odoo's own requirements.txt is installed into the venv too.
ensure_venv() {  # ensure_venv [requirement files...]
  if [ ! -x "$PY" ]; then
    log "creating virtualenv $VENV"
    python3 -m venv --system-site-packages "$VENV" || die "python3 -m venv failed"
  fi
  local site stamp want root reqs=()
  site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rm -f "$site/_pos_api_odoo.pth"
  if [ -n "${ODOO_PATH:-}" ]; then
    [ -f "$ODOO_PATH/odoo/release.py" ] || die "ODOO_PATH=$ODOO_PATH is not an Odoo source checkout (no odoo/release.py)"
    root=$(cd "$ODOO_PATH" && pwd)
    [ -f "$root/requirements.txt" ] && reqs+=("$root/requirements.txt")
  else
    root=$(odoo_source_root)
  fi
  [ -n "$root" ] && printf '%s\n' "$root" > "$site/_pos_api_odoo.pth"
  local f
  for f in "$@"; do reqs+=("$ROOT/$f"); done
  stamp="$VENV/.pos_api_requirements"
  want=$( (cat "${reqs[@]}"; "$PY" -V) | sha256sum | cut -c1-16)
  if ! "$PY" -c 'import psycopg2' >/dev/null 2>&1 && [ -z "${ODOO_PATH:-}" ]; then
    log "installing psycopg2-binary (no psycopg2 importable)"
    "$PY" -m pip install -q --disable-pip-version-check psycopg2-binary || die "pip failed"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    local args=() constraint
    for f in "${reqs[@]}"; do args+=(-r "$f"); done
    constraint="$VENV/.pos_api_build_constraints.txt"
    # Old sdists among Odoo's pins import pkg_resources from setup.py.
    printf 'setuptools<70\n' > "$constraint"
    if [ -n "${ODOO_PATH:-}" ]; then
      ensure_odoo_build_packages
      log "installing Odoo's requirements ($root/requirements.txt) into .venv"
      PIP_CONSTRAINT="$constraint" "$PY" -m pip install -q --disable-pip-version-check \
        wheel 'setuptools<70' || die "pip install wheel failed"
    fi
    log "installing Python packages into .venv: ${reqs[*]}"
    PIP_CONSTRAINT="$constraint" "$PY" -m pip install -q --disable-pip-version-check \
      "${args[@]}" || die "pip install failed"
    printf '%s' "$want" > "$stamp"
  fi
}

# Debian packages that Odoo's pinned sdists build against (psycopg2:
# libpq; python-ldap: OpenLDAP and SASL; both: the Python headers).
ensure_odoo_build_packages() {
  local missing=() inc
  command -v pg_config >/dev/null 2>&1 || missing+=(libpq-dev)
  [ -f /usr/include/ldap.h ] || missing+=(libldap2-dev)
  [ -f /usr/include/sasl/sasl.h ] || missing+=(libsasl2-dev)
  inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$inc/Python.h" ] || missing+=(python3-dev)
  command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  [ ${#missing[@]} -eq 0 ] || apt_install "building Odoo's requirements" "${missing[@]}"
}

# Prints the source root (the folder holding odoo/ and odoo-bin or setup.py)
# of the Odoo the venv can see, or nothing: a regular package on the path,
# an editable install (its direct_url.json, or setuptools' editable finder),
# or an odoo/ portion holding release.py.
odoo_source_root() {
  "$PY" - <<'PY' 2>/dev/null || true
import importlib.metadata, importlib.util, json, os, sys, urllib.parse

def is_root(path):
    return bool(path) and os.path.isfile(os.path.join(path, "odoo", "release.py"))

def find():
    try:
        spec = importlib.util.find_spec("odoo")
    except Exception:  # noqa: BLE001
        spec = None
    if spec and spec.origin and spec.origin.endswith("__init__.py"):
        return os.path.dirname(os.path.dirname(spec.origin))
    try:
        text = importlib.metadata.distribution("odoo").read_text("direct_url.json") or ""
        url = json.loads(text).get("url", "") if text else ""
        if url.startswith("file://"):
            path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
            if is_root(path):
                return path
    except importlib.metadata.PackageNotFoundError:
        pass
    for finder in sys.meta_path:
        mapping = getattr(sys.modules.get(type(finder).__module__), "MAPPING", None)
        if isinstance(mapping, dict) and is_root(os.path.dirname(mapping.get("odoo", ""))):
            return os.path.dirname(mapping["odoo"])
    for portion in (spec.submodule_search_locations or []) if spec else []:
        if is_root(os.path.dirname(portion)):
            return os.path.dirname(portion)
    return ""

print(find())
PY
}

# Prints the Odoo version importable by the venv, or nothing.
odoo_version() {
  "$PY" -c 'import odoo.release as r; print(r.major_version)' 2>/dev/null || true
}

# Why Odoo cannot be imported by the venv: the import error's last line.
odoo_import_error() {
  { "$PY" -c 'import odoo.release, odoo.service.server' 2>&1 || true; } | tail -n 1
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
  local root; root=$(odoo_source_root)
  [ -n "$root" ] && [ -d "$root/addons/point_of_sale" ] && printf '%s' "$root/addons"
  return 0
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
    # resolve the OCA addons' "odoo" requirement against: those alone go
    # without their dependencies (Odoo's requirements cover them).
    local oca=() other=() line
    while IFS= read -r line; do
      line=${line%%#*}; line=${line//[[:space:]]/}
      [ -n "$line" ] || continue
      case $line in odoo-addon-*) oca+=("$line") ;; *) other+=("$line") ;; esac
    done < "$ROOT/requirements-odoo.txt"
    [ ${#other[@]} -eq 0 ] || "$PY" -m pip install -q --disable-pip-version-check "${other[@]}" \
      || die "pip install (Odoo-tier test packages) failed"
    [ ${#oca[@]} -eq 0 ] || "$PY" -m pip install -q --disable-pip-version-check --no-deps "${oca[@]}" \
      || die "pip install (OCA addons) failed"
  fi
  printf '%s' "$want" > "$stamp"
}

# schemathesis, for the Odoo tier's fuzz run, in a virtualenv of its own
# (its dependencies are newer than Odoo's pins); exports its command.
ensure_fuzz_venv() {
  local venv="$ROOT/.venv-fuzz" stamp want
  stamp="$venv/.pos_api_requirements"
  want=$(sha256sum < "$ROOT/requirements-fuzz.txt" | cut -c1-16)
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing schemathesis into .venv-fuzz (the fuzz run of the OpenAPI document)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
      -r "$ROOT/requirements-fuzz.txt" || die "pip install -r requirements-fuzz.txt failed"
    printf '%s' "$want" > "$stamp"
  fi
  export POS_API_SCHEMATHESIS="$venv/bin/schemathesis"
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
      apt_install "the browser tours of the Odoo tier" chromium
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
