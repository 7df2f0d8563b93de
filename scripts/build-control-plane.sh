#!/usr/bin/env bash
# Build the Kubernetes binaries from upstream Go modules: kube-apiserver + etcd for
# the T2 tests, and kube-controller-manager, kube-scheduler, kubelet and kube-proxy
# for the single-node cluster (T4-local; the rest of the node comes from
# scripts/build-node.sh).
#
# No Debian package, PyPI wheel or npm package carries kube-apiserver, so it is
# built from the Go module k8s.io/kubernetes through the Go module proxy. That
# module can only be used as a dependency with a `replace` for every staging
# module (k8s.io/api, k8s.io/apiserver, ...) pinned to v0.X.Y for v1.X.Y
# (kubernetes#79384); the list is taken from the release's own go.mod
# (its `=> ./staging/...` lines), so it follows the version.
#
# etcd is built the same way from go.etcd.io/etcd/server/v3 (its main package),
# by default at the version k8s.io/kubernetes itself depends on. That needs only
# the Go proxy, which this script needs anyway, and gives the etcd the apiserver
# release was tested with (Debian bookworm's etcd-server is 3.4). ETCD_SOURCE=apt
# uses Debian's etcd-server instead.
#
# The five Kubernetes binaries come from one `go build -o DIR/ pkg...`, so the
# packages they share are compiled once (about 5 min cold on 2 cores, ~2 GB peak).
# A cache that lacks some of them (e.g. one made when this script built only
# kube-apiserver) gets only the missing ones built.
#
# Output (cached, keyed by version; a warm machine skips the build):
#   ~/.cache/celery-harder/control-plane/<K8S_VERSION>/{kube-apiserver,kube-controller-manager,
#       kube-scheduler,kubelet,kube-proxy,etcd,VERSIONS}
# Go caches: ~/.cache/celery-harder/go/{build,mod}
#
# Environment:
#   K8S_VERSION   default v1.35.4 (matches kubectl v1.35)
#   ETCD_VERSION  default: the go.etcd.io/etcd/server/v3 version in that release's go.mod
#   ETCD_SOURCE   go (default) | apt
#   GO            go binary (default: go on PATH, else /usr/local/go/bin/go)
#   CELERY_HARDER_CACHE  cache root (default ~/.cache/celery-harder)
#   FORCE=1       rebuild even if cached
# Prints the binary paths on stdout, one NAME=path a line (KUBE_APISERVER, ETCD,
# KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KUBELET, KUBE_PROXY); progress on stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_SOURCE="${ETCD_SOURCE:-go}"
CACHE_ROOT="${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}"
OUT="$CACHE_ROOT/control-plane/$K8S_VERSION"
WORK="$CACHE_ROOT/control-plane/work-$K8S_VERSION"

START=$(date +%s)
log() { printf '[build-control-plane +%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die() { printf '[build-control-plane] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "K8S_VERSION must look like v1.X.Y, got '$K8S_VERSION'"
K8S_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

# shellcheck source-path=SCRIPTDIR source=lib/build-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/build-common.sh"
go_env  # Kubernetes $K8S_VERSION needs Go >= 1.25

# The Kubernetes binaries, each with the env-var name printed on stdout.
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
var_name() { printf '%s' "$1" | tr 'a-z-' 'A-Z_'; }

print_paths() {
  printf 'KUBE_APISERVER=%s\nETCD=%s\n' "$OUT/kube-apiserver" "$OUT/etcd"
  local b
  for b in "${K8S_BINARIES[@]:1}"; do printf '%s=%s\n' "$(var_name "$b")" "$OUT/$b"; done
}

# the Kubernetes binaries that are absent or not of $K8S_VERSION (all of them with FORCE=1)
missing_k8s() {
  local b
  for b in "${K8S_BINARIES[@]}"; do
    if [[ "${FORCE:-0}" == 1 || ! -x "$OUT/$b" ]] \
        || ! "$OUT/$b" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION"; then
      echo "$b"
    fi
  done
}

etcd_ok() {
  [[ "${FORCE:-0}" != 1 && -x "$OUT/etcd" && -f "$OUT/VERSIONS" ]] || return 1
  "$OUT/etcd" --version >/dev/null 2>&1 || return 1
  if [[ "$ETCD_SOURCE" == apt ]]; then
    grep -qx "etcd=apt" "$OUT/VERSIONS" || return 1
  elif [[ -n "${ETCD_VERSION:-}" ]]; then
    grep -qx "etcd=$ETCD_VERSION" "$OUT/VERSIONS" || return 1
  else
    ! grep -qx "etcd=apt" "$OUT/VERSIONS" || return 1
  fi
  return 0
}

cached_ok() { [[ -z "$(missing_k8s)" ]] && etcd_ok; }

if cached_ok; then
  log "cached: $OUT ($(tr '\n' ' ' < "$OUT/VERSIONS"))"
  print_paths
  exit 0
fi

mkdir -p "$OUT" "$WORK"
# one build per version at a time (two `make test` runs may start together)
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_ROOT/control-plane/.lock-$K8S_VERSION"
  if ! flock -n 9; then
    log "another build of $K8S_VERSION is running; waiting for it"
    flock 9
  fi
  if cached_ok; then
    log "built meanwhile by another run: $OUT"
    print_paths
    exit 0
  fi
fi
log "go: $("$GO" version)"
log "GOCACHE=$GOCACHE GOMODCACHE=$GOMODCACHE GOFLAGS='$GOFLAGS'"

# ------------------------------------------------ k8s.io/kubernetes go.mod
# Sets K8S_GOMOD (the release's go.mod), STAGING (its staging modules) and
# ETCD_FROM_K8S (the etcd server version it requires).
K8S_GOMOD="" STAGING="" ETCD_FROM_K8S=""
read_k8s_gomod() {
  local dir="$WORK/kubernetes"
  mkdir -p "$dir"
  log "fetching k8s.io/kubernetes@$K8S_VERSION go.mod"
  local modjson
  modjson="$(cd "$dir" && "$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" 2>&1)" \
    || die "go mod download k8s.io/kubernetes@$K8S_VERSION failed: $modjson"
  K8S_GOMOD="$(printf '%s' "$modjson" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "$K8S_GOMOD" ]] || die "could not find the go.mod of k8s.io/kubernetes@$K8S_VERSION in: $modjson"
  # every `k8s.io/foo => ./staging/src/k8s.io/foo` line of the release's go.mod
  STAGING="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._/-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$K8S_GOMOD")"
  [[ -n "$STAGING" ]] || die "no ./staging replace lines found in $K8S_GOMOD"
  ETCD_FROM_K8S="$(sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/server/v3[[:space:]]\{1,\}\(v[0-9.]*\).*#\1#p' "$K8S_GOMOD" | head -n1)"
}

# ------------------------------------------------- Kubernetes binaries
# build_kubernetes BIN... : one `go build` of k8s.io/kubernetes/cmd/BIN for each BIN
build_kubernetes() {
  local dir="$WORK/kubernetes" bins=("$@")
  log "$(echo "$STAGING" | wc -l) staging modules, pinned to $STAGING_VERSION"
  {
    echo "module celery-harder.local/control-plane/kubernetes"
    echo
    echo "go $(sed -n 's/^go \([0-9.]*\).*/\1/p' "$K8S_GOMOD")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m $STAGING_VERSION"; done <<<"$STAGING"
    echo ")"
  } > "$dir/go.mod"
  rm -f "$dir/go.sum"

  local pkgs=() b
  for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "resolving dependencies (go get ${pkgs[*]/%/@$K8S_VERSION})"
  (cd "$dir" && run "go get kubernetes" "$GO" get "${pkgs[@]/%/@$K8S_VERSION}")

  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  local new="$OUT/.new"
  rm -rf "$new"; mkdir -p "$new"
  log "compiling ${bins[*]} $K8S_VERSION in one go build (cold: about 5 min on 2 cores; log: $WORK/go_build_kubernetes.log)"
  local t0=$SECONDS
  (cd "$dir" && run "go build kubernetes" "$GO" build -v -ldflags "$ldflags" -o "$new/" "${pkgs[@]}")
  log "go build took $((SECONDS - t0))s"
  for b in "${bins[@]}"; do
    local v
    v="$("$new/$b" --version 2>&1)" || die "built $b does not run: $v"
    [[ "$v" == "Kubernetes $K8S_VERSION" ]] || die "built $b reports '$v', expected 'Kubernetes $K8S_VERSION'"
    mv -f "$new/$b" "$OUT/$b"
    log "built $OUT/$b: $v, $(du -h "$OUT/$b" | cut -f1)"
  done
  rm -rf "$new"
}

# --------------------------------------------------------------------- etcd
build_etcd_go() {
  local ver="$1" dir="$WORK/etcd"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module celery-harder.local/control-plane/etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ver" > "$dir/go.mod"
  log "resolving go.etcd.io/etcd/server/v3@$ver"
  (cd "$dir" && run "go get etcd" "$GO" get "go.etcd.io/etcd/server/v3@$ver")
  log "compiling etcd $ver"
  (cd "$dir" && run "go build etcd" "$GO" build -v -ldflags "-s -w" \
      -o "$OUT/etcd.new" go.etcd.io/etcd/server/v3)
  mv -f "$OUT/etcd.new" "$OUT/etcd"
}

install_etcd_apt() {
  if ! command -v etcd >/dev/null 2>&1 || [[ "$(command -v etcd)" != /usr/bin/etcd ]]; then
    command -v apt-get >/dev/null 2>&1 || die "ETCD_SOURCE=apt but there is no apt-get"
    log "apt-get update && apt-get install etcd-server"
    run "apt-get update" apt-get update
    run "apt-get install etcd-server" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server
    # the package starts a system etcd on :2379; the tests start their own on free ports
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
  fi
  ln -sfn /usr/bin/etcd "$OUT/etcd"
}

read_k8s_gomod
mapfile -t MISSING < <(missing_k8s)
if ((${#MISSING[@]})); then
  if ((${#MISSING[@]} < ${#K8S_BINARIES[@]})); then
    log "cached already: $(printf '%s\n' "${K8S_BINARIES[@]}" "${MISSING[@]}" | sort | uniq -u | paste -sd' ')"
  fi
  build_kubernetes "${MISSING[@]}"
fi

if etcd_ok; then
  ETCD_VERSION="$(sed -n 's/^etcd=//p' "$OUT/VERSIONS")"
  log "etcd cached: $ETCD_VERSION"
else
  case "$ETCD_SOURCE" in
    go)  ETCD_VERSION="${ETCD_VERSION:-${ETCD_FROM_K8S:-v3.6.5}}"; build_etcd_go "$ETCD_VERSION" ;;
    apt) install_etcd_apt; ETCD_VERSION="apt" ;;
    *)   die "ETCD_SOURCE must be go or apt, got '$ETCD_SOURCE'" ;;
  esac
fi
ev="$("$OUT/etcd" --version 2>&1)" || die "etcd does not run: $ev"
log "etcd: $(echo "$ev" | head -n1), $(du -hL "$OUT/etcd" | cut -f1)"

printf 'kubernetes=%s\netcd=%s\n' "$K8S_VERSION" "$ETCD_VERSION" > "$OUT/VERSIONS"
log "done in $(( $(date +%s) - START ))s: $OUT"
print_paths
