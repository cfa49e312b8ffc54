#!/usr/bin/env bash
# Runs every Go fuzz target of the module (or of the packages given as
# arguments, e.g. ./p2p ./internal/crdt) for a bounded time each:
#
#   HYPERSPACE_FUZZTIME          time per target (default 3s; 0 skips fuzzing)
#   HYPERSPACE_FUZZMINIMIZETIME  time spent minimising each new input
#                                (default 100x, i.e. 100 runs: Go's own
#                                default of 60s would eat short runs)
#   HYPERSPACE_FUZZCACHE         corpus directory to keep and grow across
#                                runs (default: a fresh .run/fuzz-cache per
#                                run, so that each run starts from the seed
#                                corpora and testdata/fuzz only: replaying a
#                                grown corpus would use up a short run)
#
# Targets are found, not listed by hand: every package with a
# `func Fuzz...` in a _test.go file is built once as a fuzzing test binary
# (go test -c -fuzz=.), which lists its targets (-test.list '^Fuzz'); each
# target then runs on its own (Go fuzzes one target per invocation) in the
# package directory, as go test -fuzz would. The seed corpora already ran
# as ordinary tests in go test.
#
# One line per target goes to stdout and to .run/fuzz-summary.txt:
#   <package> <target>: <executions> execs in <elapsed> (<rate>/s)
# (executions as Go's fuzzer counts them, on all its workers). A failing
# input is written to <package>/testdata/fuzz/<target>/: fix the decoder
# and commit that file, and plain `go test` replays it forever. The script
# fails if any target fails, after running all of them; a run that ends
# only with Go's own "context deadline exceeded" at the fuzztime boundary
# (a race in its coordinator, no input involved) is reported, not failed.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

T="${HYPERSPACE_FUZZTIME:-3s}"
M="${HYPERSPACE_FUZZMINIMIZETIME:-100x}"
if [[ "$T" == "0" || "$T" == "0s" ]]; then
  log "fuzzing skipped (HYPERSPACE_FUZZTIME=$T)"
  exit 0
fi

summary="$RUN_DIR/fuzz-summary.txt"
logs="$RUN_DIR/fuzz-logs"
bins="$RUN_DIR/fuzz-bin"
cache="${HYPERSPACE_FUZZCACHE:-}"
if [[ -z "$cache" ]]; then
  cache="$RUN_DIR/fuzz-cache"
  rm -rf "$cache"
fi
rm -rf "$logs"
mkdir -p "$logs" "$bins" "$cache"
cache="$(cd "$cache" && pwd)"

# Packages (as ./dir) with fuzz targets.
if [[ $# -gt 0 ]]; then
  pkgs=("$@")
else
  mapfile -t pkgs < <(git ls-files --cached --others --exclude-standard '*_test.go' | xargs -r grep -l '^func Fuzz[A-Za-z0-9_]*(' |
    xargs -r -n1 dirname | sort -u | sed 's|^|./|')
fi
[[ ${#pkgs[@]} -gt 0 ]] || die "no fuzz targets found"

# secs converts a Go duration as the fuzzer prints it (1m2s, 3s) to seconds.
secs() {
  awk -v d="$1" 'BEGIN { s = 0; if (match(d, /[0-9.]+m/)) { s += 60 * substr(d, RSTART, RLENGTH - 1) }
    if (match(d, /[0-9.]+s$/)) { s += substr(d, RSTART, RLENGTH - 1) } ; print (s > 0 ? s : 1) }'
}

echo "# go test -fuzz, $T per target (minimise $M), $(go env GOOS)/$(go env GOARCH), $(nproc 2>/dev/null || echo '?') CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$summary"

# shutdown_race LOG TARGET: the run failed only by the race in Go's fuzzing
# coordinator at the end of a duration -fuzztime (golang/go internal/fuzz:
# the deadline can reach the coordinator before its workers' context, and
# it reports "context deadline exceeded"), seen on loaded machines. It
# writes no failing input, and the whole failure is that one line.
shutdown_race() {
  ! grep -q 'Failing input written\|panic:\|fuzz_test.go:' "$1" &&
    grep -A1 -- "^--- FAIL: $2 " "$1" | tail -n 1 | grep -qx '[[:space:]]*context deadline exceeded'
}

failed=()
flaked=()
total=0
start=$SECONDS
for pkg in "${pkgs[@]}"; do
  name="${pkg#./}"
  bin="$bins/${name//\//_}.test"
  if ! go test -c -fuzz=. -o "$bin" "$pkg" > "$logs/${name//\//_}.build.log" 2>&1; then
    cat "$logs/${name//\//_}.build.log" >&2
    failed+=("$name (build)")
    continue
  fi
  mapfile -t targets < <(cd "$pkg" && "$bin" -test.list '^Fuzz' | grep '^Fuzz' || true)
  [[ ${#targets[@]} -gt 0 ]] || die "$name: -test.list found no fuzz targets"
  for target in "${targets[@]}"; do
    out="$logs/${name//\//_}.$target.log"
    if (cd "$pkg" && "$bin" -test.run '^$' -test.fuzz "^${target}\$" -test.fuzztime "$T" -test.fuzzminimizetime "$M" \
      -test.fuzzcachedir "$cache/$name" -test.timeout 10m) > "$out" 2>&1; then
      status=ok
    elif shutdown_race "$out" "$target"; then
      status=flake
      flaked+=("$name $target")
    else
      status=FAIL
      failed+=("$name $target")
    fi
    total=$((total + 1))
    last="$(grep -o 'elapsed: [^,]*, execs: [0-9]*' "$out" | tail -n 1 || true)"
    execs="${last##*execs: }"
    elapsed="${last#elapsed: }"
    elapsed="${elapsed%%,*}"
    if [[ -n "$last" ]]; then
      rate="$(awk -v n="$execs" -v s="$(secs "$elapsed")" 'BEGIN { printf "%d", n / s }')"
      line="$name $target: $execs execs in $elapsed (${rate}/s)"
    else
      line="$name $target: no executions reported"
    fi
    case "$status" in
      flake) line="$line (ended by Go's fuzzing shutdown race, no failing input: not counted as a failure)" ;;
      FAIL) line="$line FAILED (${out#"$ROOT"/})" ;;
    esac
    echo "$line" | tee -a "$summary"
    if [[ "$status" == FAIL ]]; then
      tail -n 40 "$out" >&2
      crasher="$(grep -o 'testdata/fuzz/[^ ]*' "$out" | head -n 1 || true)"
      [[ -z "$crasher" ]] || log "failing input: $name/$crasher (fix the decoder, then commit it: go test replays it)"
    fi
  done
done
log "fuzzed $total targets in $((SECONDS - start))s; summary in ${summary#"$ROOT"/}, logs in ${logs#"$ROOT"/}"
[[ ${#flaked[@]} -eq 0 ]] || log "ended by Go's fuzzing shutdown race (no failing input; not failures): ${flaked[*]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  die "fuzz targets failed: ${failed[*]}"
fi
