# Shared settings for the project's scripts. Source it; don't run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Built tools are cached here across runs and clones (never cleaned by scripts).
HS_CACHE="${HYPERSPACE_CACHE:-$HOME/.cache/hyperspace}"
HS_BIN="$HS_CACHE/bin"
RUN_DIR="$ROOT/.run"
VERSITYGW_VERSION="v1.8.0"
PG_HOST="${HYPERSPACE_PG_HOST:-127.0.0.1}"
PG_PORT="${HYPERSPACE_PG_PORT:-5432}"
PG_ADMIN_URL="${HYPERSPACE_PG_ADMIN_URL:-postgres://postgres@$PG_HOST:$PG_PORT/postgres?sslmode=disable}"
S3_ADDR="${HYPERSPACE_S3_ADDR:-127.0.0.1:7070}"
# The domain data: $HYPERSPACE_DATA_DIR when set; otherwise hyperspace looks in
# ../shared/data, then ~/.cache/hyperspace/data (`hyperspace data fetch` fills it).
export GOFLAGS="${GOFLAGS:-}"
mkdir -p "$HS_BIN" "$RUN_DIR"

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND until it succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local i
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "$what did not come up within ${secs}s"
}

# wait_for_pid PID LOGFILE DESCRIPTION SECONDS COMMAND...: like wait_for, but
# gives up at once if process PID exits first, printing the last 40 lines of
# LOGFILE.
wait_for_pid() {
  local pid="$1" logf="$2" what="$3" secs="$4"; shift 4
  local i rc
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rc=0; wait "$pid" 2>/dev/null || rc=$?
      printf 'error: %s: process %s exited (status %s) before it was ready; the last 40 lines of %s:\n' "$what" "$pid" "$rc" "$logf" >&2
      tail -n 40 "$logf" >&2
      exit 1
    fi
    sleep 0.25
  done
  die "$what did not come up within ${secs}s (see $logf)"
}
