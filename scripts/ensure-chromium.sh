#!/usr/bin/env bash
# Makes sure headless Chromium is here for the browser tests (the dashboard
# and the browser mesh peer): Debian's chromium package, installed when
# /usr/bin/chromium is missing. Prints the path. Tests find it through
# HYPERSPACE_CHROMIUM (set by scripts/test.sh) or /usr/bin/chromium.
source "$(dirname "$0")/lib.sh"

bin="${HYPERSPACE_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$bin" ]]; then
  log "installing Chromium (Debian chromium) for the browser tests"
  SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  bin=/usr/bin/chromium
fi
[[ -x "$bin" ]] || die "Chromium is not at $bin after installing it"
log "$("$bin" --version 2>/dev/null | head -1) at $bin"
