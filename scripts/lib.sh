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
export HYPERSPACE_DATA_DIR="${HYPERSPACE_DATA_DIR:-$(cd "$ROOT/.." && pwd)/shared/data}"
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
