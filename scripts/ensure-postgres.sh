#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on $PG_HOST:$PG_PORT with trust auth
# for local TCP connections: uses the one that is running, starts an
# installed cluster, or installs PostgreSQL from Debian's packages.
source "$(dirname "$0")/lib.sh"

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }

if command -v pg_isready >/dev/null && pg_up; then
  log "PostgreSQL is answering on $PG_HOST:$PG_PORT"
else
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  ver="$(ls /etc/postgresql | sort -n | tail -1)"
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! grep -q "hyperspace: trust loopback" "$hba"; then
    log "allowing trust auth on loopback for development ($hba)"
    sed -i '1i # hyperspace: trust loopback (development only)\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  touch "$RUN_DIR/postgres.started-by-us"
  wait_for "PostgreSQL" 60 pg_up
fi
psql "$PG_ADMIN_URL" -qtAc "select 1" >/dev/null || die "cannot connect as $PG_ADMIN_URL (set HYPERSPACE_PG_ADMIN_URL)"
