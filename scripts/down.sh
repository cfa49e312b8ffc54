#!/usr/bin/env bash
# Stops what scripts/up.sh started (and only that).
source "$(dirname "$0")/lib.sh"

stop_pid() {
  local name="$1" f="$RUN_DIR/$1.pid"
  [[ -f "$f" ]] || return 0
  local pid; pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
stop_pid dev
stop_pid versitygw
if [[ -f "$RUN_DIR/postgres.started-by-us" ]]; then
  ver="$(ls /etc/postgresql | sort -n | tail -1)"
  log "stopping PostgreSQL $ver (started by make up)"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main stop || true
  rm -f "$RUN_DIR/postgres.started-by-us"
fi
log "stopped"
