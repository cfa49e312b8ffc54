#!/usr/bin/env bash
# One command: installs and starts what is missing (PostgreSQL, the S3
# server), builds hyperspace, starts `hyperspace dev` (embedded Temporal +
# UI, migrations, workers, API) with a demo ML campaign, and prints the URLs.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

API_LISTEN="${HYPERSPACE_LISTEN:-127.0.0.1:8080}"
STATE_DIR="${HYPERSPACE_STATE_DIR:-$ROOT/.hyperspace}"
export HYPERSPACE_STATE_DIR="$STATE_DIR"
mkdir -p "$STATE_DIR"

bash scripts/ensure-postgres.sh
DB_URL="${HYPERSPACE_DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/hyperspace?sslmode=disable}"
if ! psql "$PG_ADMIN_URL" -qtAc "select 1 from pg_database where datname='hyperspace'" | grep -q 1; then
  log "creating database hyperspace"
  psql "$PG_ADMIN_URL" -qc "create database hyperspace" >/dev/null
fi

bash scripts/ensure-tools.sh
if curl -s -o /dev/null "http://$S3_ADDR/"; then
  log "an S3 server is answering on $S3_ADDR"
else
  log "starting versitygw on $S3_ADDR (data in $STATE_DIR/s3)"
  mkdir -p "$STATE_DIR/s3"
  ROOT_ACCESS_KEY=hyperspace ROOT_SECRET_KEY=hyperspace-secret \
    nohup "$HS_BIN/versitygw" --port "$S3_ADDR" posix "$STATE_DIR/s3" >"$RUN_DIR/versitygw.log" 2>&1 &
  echo $! >"$RUN_DIR/versitygw.pid"
  wait_for "versitygw" 30 curl -s -o /dev/null "http://$S3_ADDR/"
fi

log "building hyperspace"
go build -o bin/hyperspace ./cmd/hyperspace

# The domain data: used where it is complete ($HYPERSPACE_DATA_DIR,
# ../shared/data, ~/.cache/hyperspace/data), else downloaded and verified.
if data_dir="$(bin/hyperspace data path 2>/dev/null)"; then
  log "domain data in $data_dir"
else
  log "fetching the domain data (bin/hyperspace data fetch)"
  bin/hyperspace data fetch
fi

if [[ -f "$RUN_DIR/dev.pid" ]] && kill -0 "$(cat "$RUN_DIR/dev.pid")" 2>/dev/null; then
  log "hyperspace dev is already running (pid $(cat "$RUN_DIR/dev.pid")); make down stops it"
else
  log "starting hyperspace dev (log: $RUN_DIR/dev.log)"
  # The log shows the admin token: readable by this user only.
  (umask 077; : >"$RUN_DIR/dev.log"); chmod 600 "$RUN_DIR/dev.log"
  HYPERSPACE_DATABASE_URL="$DB_URL" HYPERSPACE_S3_ENDPOINT="http://$S3_ADDR" \
    nohup bin/hyperspace dev --listen "$API_LISTEN" --demo >"$RUN_DIR/dev.log" 2>&1 &
  dev_pid=$!
  echo "$dev_pid" >"$RUN_DIR/dev.pid"
  wait_for_pid "$dev_pid" "$RUN_DIR/dev.log" "hyperspace dev" 180 curl -sf "http://$API_LISTEN/readyz"
  wait_for_pid "$dev_pid" "$RUN_DIR/dev.log" "demo campaign" 30 grep -q "Follow it:\|Start one:\|demo campaign did not start" "$RUN_DIR/dev.log"
  # The starter chat model trains once (about ten seconds; cached in the
  # state dir) before /v1 lists it.
  log "waiting for the starter chat model on /v1/models"
  wait_for_pid "$dev_pid" "$RUN_DIR/dev.log" "the starter model" 240 sh -c \
    "curl -sf -H \"Authorization: Bearer \$(cat '$STATE_DIR/admin.token')\" http://$API_LISTEN/v1/models | grep -q hyperspace-starter"
fi
echo
# hyperspace dev's banner: API, dashboard (http://$API_LISTEN/), Temporal UI, ...
sed -n '/Hyperspace is running/,/^$/p' "$RUN_DIR/dev.log" | grep -v '^time='
echo "  Token file:   $STATE_DIR/admin.token  (bin/hyperspace campaign ... reads it; curl -H \"Authorization: Bearer \$(cat $STATE_DIR/admin.token)\" ...)"
echo "  Train:        bin/hyperspace train start --workers 4 --inner-steps 50 --rounds 10 --watch   (DiLoCo; README, \"DiLoCo\")"
echo "  OpenAI:       OPENAI_BASE_URL=http://$API_LISTEN/v1 OPENAI_API_KEY=\$(cat $STATE_DIR/admin.token)  (models hyperspace-starter, hyperspace-embed-lsa; README, \"Inference\")"
echo "  Logs:         $RUN_DIR/dev.log"
echo "  Stop:         make down"
