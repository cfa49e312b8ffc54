#!/usr/bin/env bash
# The whole test suite, against a real PostgreSQL, a real S3 server
# (versitygw, started per test package on a free loopback port) and a real
# Temporal server (temporaltest, in-process), and with PyTorch (Debian's
# python3-torch, for the ML domain's torch backend), then every fuzz target for
# HYPERSPACE_FUZZTIME each (default 3s; scripts/fuzz.sh). .ci/run runs
# exactly this.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

bash scripts/ensure-postgres.sh
bash scripts/ensure-tools.sh
# The ML domain's PyTorch backend (domains/ml/torchml): Debian's python3-torch
# with OpenBLAS-openmp; its tests fail instead of skipping once installed.
bash scripts/ensure-torch.sh
export HYPERSPACE_TORCH_REQUIRED=1
# The official openai npm package (e2e/openai-client), for the /v1 tests.
bash scripts/ensure-node.sh
# Headless Chromium (Debian's chromium) for the browser tests.
bash scripts/ensure-chromium.sh
export HYPERSPACE_CHROMIUM="${HYPERSPACE_CHROMIUM:-/usr/bin/chromium}"
# The browser peer's committed bundle (internal/webmesh/dist) must be what
# web/mesh's lockfile builds, byte for byte.
log "browser peer bundle: rebuilt from web/mesh/package-lock.json, byte-identical"
bash scripts/build-mesh.sh --check
export HYPERSPACE_TEST_PG_ADMIN_URL="$PG_ADMIN_URL"
export HYPERSPACE_VERSITYGW="$HS_BIN/versitygw"
# The domain data: $HYPERSPACE_DATA_DIR if set, else the shared copy beside
# the checkout, else fetched (and verified) into ~/.cache/hyperspace/data.
if [[ -z "${HYPERSPACE_DATA_DIR:-}" && -f "$ROOT/../shared/data/cranfield/cran.all.1400" ]]; then
  export HYPERSPACE_DATA_DIR="$(cd "$ROOT/../shared/data" && pwd)"
else
  log "building hyperspace to find or fetch the domain data"
  go build -o bin/hyperspace ./cmd/hyperspace
  bin/hyperspace data path >/dev/null 2>&1 || bin/hyperspace data fetch
  HYPERSPACE_DATA_DIR="$(bin/hyperspace data path)"
  export HYPERSPACE_DATA_DIR
fi
log "domain data: $HYPERSPACE_DATA_DIR"

if command -v docker-compose >/dev/null; then
  log "docker-compose.yml: docker-compose config -q"
  HYPERSPACE_SITE_SECRET="${HYPERSPACE_SITE_SECRET:-validation-only-secret-0123456789}" docker-compose config -q
fi
# The dashboard's committed bundle (internal/dashboard/dist) must be what
# its lockfile builds, byte for byte.
log "dashboard: rebuild from web/dashboard/package-lock.json and compare"
bash scripts/build-dashboard.sh --check
log "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.hyperspace/*'))"
[[ -z "$unformatted" ]] || die "gofmt would change: $unformatted"
log "go vet"
go vet ./...
log "go test (timeout ${HYPERSPACE_TEST_TIMEOUT:-40m})"
go test -count=1 -p 2 -timeout "${HYPERSPACE_TEST_TIMEOUT:-40m}" "$@" ./...
log "go test -fuzz: every fuzz target for ${HYPERSPACE_FUZZTIME:-3s} (HYPERSPACE_FUZZTIME; 0 skips)"
bash scripts/fuzz.sh
