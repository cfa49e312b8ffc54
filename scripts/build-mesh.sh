#!/usr/bin/env bash
# Builds the browser peer (web/mesh) into internal/webmesh/dist, which is
# committed so that `go build` needs no npm. Reproducible: the same
# package-lock.json gives the same bytes.
#
#   scripts/build-mesh.sh          rebuild internal/webmesh/dist
#   scripts/build-mesh.sh --check  rebuild into a temporary directory from
#                                  the lockfile (npm ci) and fail unless it is
#                                  byte-identical to the committed bundle
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/web/mesh
dist=$root/internal/webmesh/dist
check=0
[[ ${1:-} == --check ]] && check=1

cd "$src"
if [[ $check == 1 || ! -d node_modules ]]; then
	npm ci --no-audit --no-fund --ignore-scripts >/dev/null
fi
out=$dist
if [[ $check == 1 ]]; then
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
# Paths in the bundle are relative to web/mesh; no timestamps, no source
# maps: the output depends on the sources and the lockfile only.
./node_modules/.bin/esbuild src/main.js --bundle --format=esm --platform=browser \
	--target=chrome120 --minify --legal-comments=none --charset=utf8 \
	--log-level=warning --outfile="$out/mesh.js"
cp index.html "$out/index.html"
if [[ $check == 1 ]]; then
	for f in mesh.js index.html; do
		if ! cmp -s "$out/$f" "$dist/$f"; then
			echo "build-mesh: internal/webmesh/dist/$f differs from a rebuild from web/mesh (run scripts/build-mesh.sh and commit)" >&2
			exit 1
		fi
	done
	echo "build-mesh: internal/webmesh/dist is reproducible from web/mesh/package-lock.json"
fi
