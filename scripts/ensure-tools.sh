#!/usr/bin/env bash
# Builds the tools the project runs (the S3 server) once into the cache bin
# folder and reuses them afterwards, and installs git when it is missing.
source "$(dirname "$0")/lib.sh"

if [[ ! -x "$HS_BIN/versitygw" ]] || [[ "$(cat "$HS_BIN/versitygw.version" 2>/dev/null)" != "$VERSITYGW_VERSION" ]]; then
  log "building versitygw $VERSITYGW_VERSION into $HS_BIN (once; cached afterwards)"
  (cd /tmp && GOFLAGS= GOBIN="$HS_BIN" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
  echo "$VERSITYGW_VERSION" > "$HS_BIN/versitygw.version"
fi

# The research archive drives the git command.
if ! command -v git >/dev/null; then
  log "installing git (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq git >/dev/null
fi
