# shellcheck shell=bash
# The local services Protea's tests and local stack need: PostgreSQL, Redis, moto (a
# local AWS: Secrets Manager, DynamoDB) and nginx. Sourced by scripts/test and
# scripts/stack; each ensure_* starts the service, or installs it from the Debian or
# PyPI registry and starts it, when it does not answer, and exits with a message naming
# what failed when it cannot be made ready. Nothing here ever skips a service.
#
# The sourcing script sets `services_who` (its name, for messages) and may set
# `moto_url`; a moto started here records its pid in `moto_pid` and its log in
# `moto_log`, for the caller to stop (services_cleanup) or keep.

services_who="${services_who:-scripts}"
moto_url="${moto_url:-http://127.0.0.1:5055}"
moto_pid=""
moto_log=""

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "$services_who: '$1' is required but not installed" >&2; exit 1; }
}

# PostgreSQL: started, or installed and started, when it is not running.
pg_ready() {
  pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null
}

ensure_postgres() {
  pg_ready && return 0
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "$services_who: installing PostgreSQL" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  for _ in $(seq 1 60); do
    pg_ready && return 0
    sleep 0.5
  done
  echo "$services_who: PostgreSQL did not become ready on 127.0.0.1:5432" >&2
  exit 1
}

# Clients connect over TCP as postgres. A stock Debian server asks for a password on
# TCP, so give the user one and say so in the URL (ignored where auth is trust).
postgres_url() {
  local url="host=127.0.0.1 port=5432 user=postgres dbname=postgres"
  if ! psql "$url" -tAc 'select 1' >/dev/null 2>&1; then
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    url="$url password=postgres"
  fi
  psql "$url" -tAc 'select 1' >/dev/null || { echo "$services_who: cannot log in to PostgreSQL as postgres" >&2; exit 1; }
  echo "$url"
}

# moto: started, or installed and started, when it does not answer. One started here
# runs in a session of its own (moto_pid is that session's leader).
moto_ready() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null --max-time 2 "$moto_url/" 2>/dev/null
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$moto_url/" >/dev/null 2>&1
  fi
}

# ensure_moto [LOG]: LOG is where a moto started here writes (default: a temporary file).
ensure_moto() {
  moto_ready && return 0
  if ! command -v moto_server >/dev/null 2>&1; then
    need python3
    echo "$services_who: installing moto[server]" >&2
    python3 -m pip install -q 'moto[server]' >&2
    hash -r
    command -v moto_server >/dev/null 2>&1 \
      || { echo "$services_who: moto_server is not on PATH after installing moto[server]" >&2; exit 1; }
  fi
  local hostport host port
  hostport="${moto_url#*://}"
  hostport="${hostport%%/*}"
  host="${hostport%:*}"
  port="${hostport##*:}"
  [[ "$hostport" == *:* ]] || port=80
  moto_log="${1:-$(mktemp)}"
  # In a session of its own, so that stopping it stops whatever the launcher started.
  if command -v setsid >/dev/null 2>&1; then
    setsid nohup moto_server -H "$host" -p "$port" >"$moto_log" 2>&1 &
  else
    nohup moto_server -H "$host" -p "$port" >"$moto_log" 2>&1 &
  fi
  moto_pid=$!
  for _ in $(seq 1 60); do
    moto_ready && return 0
    kill -0 "$moto_pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "$services_who: moto did not answer at $moto_url within 30 s; its log:" >&2
  tail -n 20 "$moto_log" >&2 || true
  exit 1
}

# Redis: started, or installed and started, when it does not answer. It keeps no data
# on disk.
redis_ready() {
  redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
}

ensure_redis() {
  redis_ready && return 0
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "$services_who: installing redis-server" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  redis-server --daemonize yes --port 6379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null
  for _ in $(seq 1 60); do
    redis_ready && return 0
    sleep 0.5
  done
  echo "$services_who: Redis did not become ready on 127.0.0.1:6379" >&2
  exit 1
}

# nginx (the load balancer of scripts/stack): installed from Debian's nginx-light when
# missing. Only the binary is needed; scripts/stack runs its own instance with its own
# configuration, never the system service.
nginx_bin() {
  command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }
}

ensure_nginx() {
  [[ -n "$(nginx_bin)" ]] && return 0
  echo "$services_who: installing nginx-light" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null \
    || { echo "$services_who: nginx is missing and installing nginx-light failed" >&2; exit 1; }
  # The package starts the system service on port 80; this project does not use it.
  if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi
  [[ -n "$(nginx_bin)" ]] || { echo "$services_who: nginx is not installed after installing nginx-light" >&2; exit 1; }
}

# Stops a moto this script started (a session leader: its whole group goes).
stop_started_moto() {
  if [[ -n "$moto_pid" ]]; then
    kill -- "-$moto_pid" 2>/dev/null || kill "$moto_pid" 2>/dev/null || true
  fi
}

# Prometheus (the local stack's scraper, and the dashboards' tests): installed from
# Debian's `prometheus` when missing. Only the binary is needed; each user runs its own
# instance with its own configuration, never the system service.
ensure_prometheus() {
  local prometheus="${PROTEA_TEST_PROMETHEUS_BIN:-prometheus}" promtool="${PROTEA_TEST_PROMTOOL:-promtool}"
  command -v "$prometheus" >/dev/null 2>&1 && command -v "$promtool" >/dev/null 2>&1 && return 0
  echo "$services_who: installing prometheus" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null \
    || { echo "$services_who: prometheus is missing and installing it failed" >&2; exit 1; }
  if command -v service >/dev/null 2>&1; then service prometheus stop >/dev/null 2>&1 || true; fi
  for tool in "$prometheus" "$promtool"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$services_who: $tool is not on PATH after installing prometheus" >&2; exit 1; }
  done
}
