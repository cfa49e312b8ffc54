#!/usr/bin/env bash
# Makes sure the official openai npm package the e2e tests drive the /v1 API
# with is installed: Node.js (Debian's nodejs and npm when `node` is missing)
# and `npm ci` in e2e/openai-client from its lockfile (openai pinned there).
# Idempotent: npm ci runs only when node_modules is missing or older than
# the lockfile.
source "$(dirname "$0")/lib.sh"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  log "installing Node.js (Debian nodejs, npm)"
  SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$major" -ge 18 ]] || die "Node.js $major is too old for the openai package (need >= 18)"

dir="$ROOT/e2e/openai-client"
stamp="$dir/node_modules/.hs-installed"
if [[ ! -f "$stamp" || "$dir/package-lock.json" -nt "$stamp" ]]; then
  log "npm ci in e2e/openai-client (the official openai client, pinned)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi
log "openai npm package $(node -p "require('$dir/node_modules/openai/package.json').version") with Node.js $(node --version)"
