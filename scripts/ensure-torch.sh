#!/usr/bin/env bash
# Makes sure the PyTorch backend of the ML domain (domains/ml/torchml,
# scripts/torch/hs_torch.py) can run: Debian's python3-torch for
# /usr/bin/python3, with OpenBLAS (OpenMP build) selected as the system
# BLAS.
#
# Debian's libtorch links the generic libblas.so.3, which the alternatives
# system points at the reference BLAS (libblas3) unless told otherwise; that
# trains at about 0.4x the Go trainer's speed. The OpenMP build of OpenBLAS
# shares libgomp with PyTorch's intra-op threads (the -pthread build starts
# its own pool and the two fight over the cores), so this script installs
# libopenblas0-openmp and selects it for libblas.so.3 and liblapack.so.3.
#
# Idempotent and fast when everything is in place (no apt-get call then).
# The installed Debian versions are logged and written to
# $HS_CACHE/torch.versions. Set HYPERSPACE_TORCH_BLAS=reference to select the
# reference BLAS instead (for measuring; scripts default to openblas-openmp).
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
# Pinned Debian bookworm versions (what this was measured with). When the
# mirror no longer carries exactly these, the candidate version is installed
# and the difference is reported.
TORCH_PKG_VERSION="1.13.1+dfsg-4"
OPENBLAS_PKG_VERSION="0.3.21+ds-4"
ARCH_TRIPLET="$(uname -m)-linux-gnu"
BLAS_ALT="libblas.so.3-$ARCH_TRIPLET"
LAPACK_ALT="liblapack.so.3-$ARCH_TRIPLET"
WANT_BLAS="${HYPERSPACE_TORCH_BLAS:-openblas-openmp}"
case "$WANT_BLAS" in
  openblas-openmp) BLAS_PATH="/usr/lib/$ARCH_TRIPLET/openblas-openmp/libblas.so.3"; LAPACK_PATH="/usr/lib/$ARCH_TRIPLET/openblas-openmp/liblapack.so.3" ;;
  reference) BLAS_PATH="/usr/lib/$ARCH_TRIPLET/blas/libblas.so.3"; LAPACK_PATH="/usr/lib/$ARCH_TRIPLET/lapack/liblapack.so.3" ;;
  *) die "HYPERSPACE_TORCH_BLAS=$WANT_BLAS: want openblas-openmp or reference" ;;
esac

have_pkg() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }
pkg_version() { local v; v="$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true)"; echo "${v:-none}"; }
torch_ok() { "$PY" -c 'import torch' >/dev/null 2>&1; }

need=()
if [[ ! -x "$PY" ]] || ! have_pkg python3-torch; then need+=(python3-torch); fi
if ! have_pkg libopenblas0-openmp; then need+=(libopenblas0-openmp); fi
if [[ "$WANT_BLAS" == reference ]] && ! have_pkg libblas3; then need+=(libblas3 liblapack3); fi

if ((${#need[@]})); then
  command -v apt-get >/dev/null || die "PyTorch backend: ${need[*]} missing and apt-get is not available (install Debian's python3-torch and libopenblas0-openmp, or set HYPERSPACE_PYTHON to a python3 with torch)"
  [[ "$(id -u)" == 0 ]] || die "PyTorch backend: ${need[*]} missing; installing needs root (apt-get install python3-torch libopenblas0-openmp)"
  log "installing ${need[*]} (apt-get; once)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  pinned=()
  for p in "${need[@]}"; do
    case "$p" in
      python3-torch) pinned+=("python3-torch=$TORCH_PKG_VERSION") ;;
      libopenblas0-openmp) pinned+=("libopenblas0-openmp=$OPENBLAS_PKG_VERSION") ;;
      *) pinned+=("$p") ;;
    esac
  done
  if ! apt-get install -y -qq --no-install-recommends "${pinned[@]}" >/dev/null; then
    log "pinned versions (${pinned[*]}) not installable; installing the mirror's candidates"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
  fi
  torch_ok || die "python3-torch installed but '$PY -c \"import torch\"' fails"
fi

# Select the BLAS libtorch loads (libblas.so.3 and liblapack.so.3 via the
# alternatives system).
select_alt() {
  local name="$1" path="$2" cur
  [[ -e "$path" ]] || die "$path missing (package for $WANT_BLAS BLAS not installed?)"
  cur="$(readlink -f "/etc/alternatives/$name" 2>/dev/null || true)"
  # Manual mode, so that a later package with a higher priority does not
  # switch it back.
  if [[ "$cur" != "$(readlink -f "$path")" ]] || update-alternatives --query "$name" | grep -q '^Status: auto'; then
    if [[ "$(id -u)" != 0 ]]; then
      log "warning: $name is not set to $path in manual mode and this is not root; run: sudo update-alternatives --set $name $path"
      return 0
    fi
    log "selecting $path for $name (update-alternatives)"
    update-alternatives --quiet --set "$name" "$path" || die "update-alternatives --set $name $path failed"
  fi
}
if update-alternatives --list "$BLAS_ALT" >/dev/null 2>&1; then
  select_alt "$BLAS_ALT" "$BLAS_PATH"
  if update-alternatives --list "$LAPACK_ALT" >/dev/null 2>&1 && [[ -e "$LAPACK_PATH" ]]; then
    select_alt "$LAPACK_ALT" "$LAPACK_PATH"
  fi
else
  die "no $BLAS_ALT alternative (is libtorch's BLAS dependency installed?)"
fi

versions="python3-torch $(pkg_version python3-torch); libtorch1.13 $(pkg_version libtorch1.13); libopenblas0-openmp $(pkg_version libopenblas0-openmp); libblas3 $(pkg_version libblas3); $BLAS_ALT -> $(readlink -f "/etc/alternatives/$BLAS_ALT")"
if [[ "$(cat "$HS_CACHE/torch.versions" 2>/dev/null)" != "$versions" ]]; then
  echo "$versions" > "$HS_CACHE/torch.versions"
fi
tv="$(pkg_version python3-torch)"
[[ "$tv" == "$TORCH_PKG_VERSION" ]] || log "note: python3-torch $tv installed, pinned $TORCH_PKG_VERSION"
log "PyTorch backend: $versions"
