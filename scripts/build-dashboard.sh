#!/usr/bin/env bash
# Builds the dashboard (web/dashboard) into internal/dashboard/dist, which
# `go build` embeds. The build is reproducible: pinned packages from the
# lockfile (npm ci), a pinned esbuild, no timestamps or absolute paths in the
# output. The built files are committed so the Go build needs no npm.
#
#   scripts/build-dashboard.sh          rebuild into internal/dashboard/dist
#   scripts/build-dashboard.sh --check  rebuild into a temporary folder and
#                                       fail unless it equals the committed one
source "$(dirname "$0")/lib.sh"
cd "$ROOT/web/dashboard"

command -v npm >/dev/null || die "npm is needed to build the dashboard (Node 20+; scripts/ensure-node.sh)"
# node_modules is (re)installed from the lockfile whenever the lockfile changed.
lock="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ ! -x node_modules/.bin/esbuild || "$(cat node_modules/.hyperspace-lock 2>/dev/null)" != "$lock" ]]; then
  log "dashboard: npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$lock" > node_modules/.hyperspace-lock
fi

out="$ROOT/internal/dashboard/dist"
check=""
if [[ "${1:-}" == "--check" ]]; then
  check="$out"
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
rm -rf "$out"
mkdir -p "$out/assets"
node_modules/.bin/esbuild src/main.js src/login.js --bundle --minify --format=iife --target=es2020 \
  --legal-comments=none --charset=utf8 --log-level=warning \
  --entry-names='[name]' --outdir="$out/assets"
mv "$out/assets/main.js" "$out/assets/app.js"
mv "$out/assets/main.css" "$out/assets/app.css"
# login.js imports no CSS; the login page uses app.css.
rm -f "$out/assets/login.css"
cp src/index.html src/login.html "$out/"

if [[ -n "$check" ]]; then
  if ! diff -r "$check" "$out" >/dev/null; then
    diff -r "$check" "$out" | head -20 >&2 || true
    die "internal/dashboard/dist differs from a fresh build of web/dashboard: run scripts/build-dashboard.sh and commit the result"
  fi
  log "dashboard: internal/dashboard/dist matches a fresh build from the lockfile"
else
  log "dashboard: built into ${out#$ROOT/}"
fi
