#!/usr/bin/env bash
# Build the non-Kubernetes binaries of the single-node cluster (T4-local) from
# upstream sources: containerd + shim + ctr, the CNI plugins, CoreDNS, crictl,
# local-path-provisioner, KEDA (operator and metrics adapter),
# kube-network-policies, Prometheus Operator (operator and config reloader), Prometheus, and Kubernetes' own pause binary; install Debian's runc.
# The Kubernetes binaries themselves come from scripts/build-control-plane.sh.
#
#   scripts/build-node.sh [COMPONENT...]     (default: all of them)
#
# COMPONENT is one of: containerd cni-plugins coredns crictl local-path-provisioner
# keda kube-network-policies prometheus-operator prometheus runc pause
#
# Every Go program is built from its module at a pinned version, fetched
# through the Go module proxy, with CGO_ENABLED=0, in one of two ways:
#   dep: a throw-away main module that requires MODULE@VERSION, so the binary's
#        build info records the module version (`go version -m BINARY`);
#   src: inside a copy of the module's own directory, so its go.mod `replace`
#        and `exclude` lines apply (they do not when it is a dependency). KEDA
#        needs this.
# One `go build -o DIR/ pkg...` per table row, so packages shared by the
# binaries of a row are compiled once.
#
# Output (cached per component and version; a recipe change rebuilds):
#   ~/.cache/celery-harder/node/<component>/<version>/<binary>
# Go caches: ~/.cache/celery-harder/go/{build,mod} (shared with the other scripts)
#
# Environment:
#   GO                   go binary (default: go on PATH, else /usr/local/go/bin/go)
#   CELERY_HARDER_CACHE  cache root (default ~/.cache/celery-harder)
#   K8S_VERSION          Kubernetes release whose build/pause/linux/pause.c is used (v1.35.4)
#   FORCE=1              rebuild even if cached
#
# Prints one NAME=path line per binary on stdout (CONTAINERD=..., CNI_BIN_DIR=...,
# KEDA_ADAPTER=..., RUNC=..., PAUSE=...); progress on stderr.
set -euo pipefail

CACHE_ROOT="${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}"
NODE="$CACHE_ROOT/node"
WORK="$NODE/work"
K8S_VERSION="${K8S_VERSION:-v1.35.4}"

START=$(date +%s)
log() { printf '[build-node +%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die() { printf '[build-node] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ the table
# One row per `go build`:
#   component | module | version | mode (dep|src) | tags | ldflags | package=>binary ...
# A package is relative to the module root ("." is the root package).
# @VERSION@ in ldflags is replaced by the row's version, @V@ by it without the "v".
CONTAINERD_TAGS="urfave_cli_no_docs osusergo netgo static_build no_btrfs no_devmapper no_zfs"
CONTAINERD_LDFLAGS="-X github.com/containerd/containerd/v2/version.Version=@VERSION@ -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
ROWS=(
  "containerd|github.com/containerd/containerd/v2|v2.4.2|dep|$CONTAINERD_TAGS|$CONTAINERD_LDFLAGS|cmd/containerd=>containerd cmd/ctr=>ctr"
  "containerd|github.com/containerd/containerd/v2|v2.4.2|dep|$CONTAINERD_TAGS no_grpc|$CONTAINERD_LDFLAGS|cmd/containerd-shim-runc-v2=>containerd-shim-runc-v2"
  "cni-plugins|github.com/containernetworking/plugins|v1.10.0|dep||-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=@VERSION@|plugins/main/bridge=>bridge plugins/ipam/host-local=>host-local plugins/main/loopback=>loopback plugins/meta/portmap=>portmap"
  # src: its plugins are chosen at compile time (prepare_coredns)
  "coredns|github.com/coredns/coredns|v1.15.0|src||-X github.com/coredns/coredns/coremain.GitCommit=@VERSION@|.=>coredns"
  "crictl|sigs.k8s.io/cri-tools|v1.37.0|dep||-X sigs.k8s.io/cri-tools/pkg/version.Version=@VERSION@|cmd/crictl=>crictl"
  # v0.0.30 is the newest version the module proxy lists; v0.0.33 is served but
  # its go.mod is not in the checksum database (go: verifying go.mod: ... 404 Not Found).
  "local-path-provisioner|github.com/rancher/local-path-provisioner|v0.0.30|dep||-X main.VERSION=@VERSION@|.=>local-path-provisioner"
  "keda|github.com/kedacore/keda/v2|v2.21.0|src||-X github.com/kedacore/keda/v2/version.Version=@V@|cmd/operator=>keda cmd/adapter=>keda-adapter"
  "kube-network-policies|sigs.k8s.io/kube-network-policies|v0.8.0|dep|||cmd=>netpol"
  # Prometheus Operator and its config reloader, for the T4-local ServiceMonitor scrape test;
  # dep, not src: its go.mod replaces pkg/apis and pkg/client with directories its module zip lacks.
  "prometheus-operator|github.com/prometheus-operator/prometheus-operator|v0.85.0|dep||-X github.com/prometheus/common/version.Version=@V@|cmd/operator=>prometheus-operator cmd/prometheus-config-reloader=>prometheus-config-reloader"
  # Prometheus 3.5.0 (module v0.305.0, the version that operator release requires), with
  # Kubernetes service discovery only (prepare_prometheus): Debian's build has none.
  "prometheus|github.com/prometheus/prometheus|v0.305.0|src||-X github.com/prometheus/common/version.Version=3.5.0|cmd/prometheus=>prometheus"
)
# prepare_<component> BUILD_DIR: edits a src row's copy before `go build`; part of its recipe.
# Prometheus' documented way to choose its service discoveries is plugins.yml + `make
# plugins`, which writes plugins/plugins.go; this writes that file for Kubernetes alone.
prepare_prometheus() {
  printf '%s\n' '// Written by scripts/build-node.sh: Kubernetes service discovery only.' '' \
    'package plugins' '' 'import (' \
    '	_ "github.com/prometheus/prometheus/discovery/kubernetes" // Register kubernetes plugin.' \
    ')' >"$1/plugins/plugins.go"
}

# CoreDNS's documented way to choose its plugins is plugin.cfg + `go generate`, which
# writes core/plugin/zplugin.go and core/dnsserver/zdirectives.go. This keeps the plugins
# the node's Corefile uses (cluster/manifests/coredns.yaml; tests/cluster_build checks
# them against `coredns -plugins`), and log, reload and prometheus for a debugging
# session: the cloud and etcd back ends, about half of the build, are left out.
# The list is in the function, so that the row's recipe (and its cache key) holds it.
prepare_coredns() {
  local keep="^(errors|health|ready|kubernetes|cache|loop|loadbalance|log|reload|prometheus):"
  grep -E "$keep" "$1/plugin.cfg" >"$1/plugin.cfg.kept"
  mv "$1/plugin.cfg.kept" "$1/plugin.cfg"
  (cd "$1" && "$GO" generate coredns.go)
}

# KEDA has no build-time choice of scalers: buildScaler's switch (between its
# TRIGGERS-START and TRIGGERS-END markers) names all 70-odd, and pkg/scalers imports
# every cloud SDK they use (Elasticsearch's typed API alone is some 960 packages, a
# third of the operator's). This keeps the switch's cases for the trigger types below
# and deletes the scaler files no kept case constructs: the chart's `redis` trigger
# (tests/cluster_build checks the chart against the list), the rest of its Redis family
# in the same two files, and the cpu and memory triggers. Any other type gets KEDA's own
# "no scaler found for type" error. The operator and the adapter compile about half of
# the packages they did.
prepare_keda() {
  local keep="cpu|memory|redis|redis-streams|redis-cluster|redis-cluster-streams|redis-sentinel|redis-sentinel-streams"
  local builder="$1/pkg/scaling/scalers_builder.go"
  grep -q 'TRIGGERS-END' "$builder" || die "KEDA's scalers_builder.go has no TRIGGERS markers"
  awk -v keep="^($keep)\$" '
    /TRIGGERS-START/ { inside = 1; kept = 1; print; next }
    /TRIGGERS-END/   { inside = 0 }
    inside && /^\tcase "[^"]+":$/ {
      name = $0; sub(/^\tcase "/, "", name); sub(/":$/, "", name); kept = (name ~ keep)
    }
    inside && /^\tdefault:$/ { kept = 1 }
    !inside || kept
  ' "$builder" >"$builder.kept"
  mv "$builder.kept" "$builder"
  # The kept scalers use three constants that upstream defines in files deleted below:
  # copied from those files first, so that their values stay upstream's.
  local shared="externalMetricType|stringEnable|stringDisable"
  local constants
  constants="$(grep -hE "^[[:space:]]($shared)[[:space:]]+=" "$1"/pkg/scalers/*_scaler.go)"
  (($(wc -l <<<"$constants") == 3)) || die "KEDA's scalers define $shared other than once each"
  printf '%s\n' '// Written by scripts/build-node.sh (prepare_keda).' '' 'package scalers' '' \
    'const (' "$constants" ')' >"$1/pkg/scalers/pruned_scalers_constants.go"
  local file constructor used
  for file in "$1"/pkg/scalers/*_scaler.go; do
    used=0
    while read -r constructor; do
      grep -q "scalers\.$constructor(" "$builder" && used=1
    done < <(sed -nE 's/^func (New[A-Za-z0-9]+)\(.*/\1/p' "$file")
    ((used)) || rm "$file"
  done
}

# components that are not a Go build
OTHER_COMPONENTS=(runc pause)

all_components() {
  local r
  for r in "${ROWS[@]}"; do printf '%s\n' "${r%%|*}"; done
  printf '%s\n' "${OTHER_COMPONENTS[@]}"
}
mapfile -t ALL < <(all_components | awk '!seen[$0]++')

case "${1:-}" in
  -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
esac
SELECTED=("$@")
((${#SELECTED[@]})) || SELECTED=("${ALL[@]}")
for c in "${SELECTED[@]}"; do
  printf '%s\n' "${ALL[@]}" | grep -x -- "$c" >/dev/null || die "unknown component '$c' (one of: ${ALL[*]})"
done
# grep without -q reads all its input: with -q it may exit first, and under pipefail
# the SIGPIPE of printf would fail the pipeline (a component taken for unknown).
selected() { printf '%s\n' "${SELECTED[@]}" | grep -x -- "$1" >/dev/null; }

# shellcheck source-path=SCRIPTDIR source=lib/build-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/build-common.sh"
go_env
GO_VERSION="$("$GO" env GOVERSION)"
mkdir -p "$NODE" "$WORK"
one_at_a_time "$NODE/.lock"

# timed WHAT CMD...: like run, under /usr/bin/time -v when it exists; logs the
# wall time and the largest resident set of any one process of CMD
timed() {
  local what="$1"; shift
  local t0=$SECONDS tf="$WORK/${what//[^a-zA-Z0-9._-]/_}.time"
  if [[ -x /usr/bin/time ]]; then
    run "$what" /usr/bin/time -v -o "$tf" "$@"
    local kb; kb="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tf")"
    log "$what: $((SECONDS - t0))s, peak RSS of one process $((kb / 1024)) MiB"
  else
    run "$what" "$@"
    log "$what: $((SECONDS - t0))s"
  fi
}

modcache_dir() {  # MODULE VERSION -> its directory in GOMODCACHE (case-encoded)
  printf '%s/%s@%s' "$GOMODCACHE" "$(printf '%s' "$1" | sed 's/[A-Z]/!\L&/g')" "$2"
}

PRINT=()   # NAME=path lines, printed at the end
add_output() { PRINT+=("$(printf '%s' "$1" | tr 'a-z-' 'A-Z_')=$2"); }

# build_row ROW: build the row's binaries into $NODE/<component>/<version>/,
# unless a stamp with the same recipe says they are there already
build_row() {
  local component module version mode tags ldflags outputs
  IFS='|' read -r component module version mode tags ldflags outputs <<<"$1"
  ldflags="${ldflags//@VERSION@/$version}"
  ldflags="${ldflags//@V@/${version#v}}"
  local out="$NODE/$component/$version"
  local prepare="prepare_${component//-/_}"
  declare -F "$prepare" >/dev/null || prepare=""
  local recipe="$1|$GO_VERSION|$GOFLAGS${prepare:+|$(declare -f "$prepare")}"
  local key; key="$(printf '%s' "$recipe" | sha256sum | cut -c1-16)"

  local pkgs=() bins=() pair
  for pair in $outputs; do pkgs+=("${pair%%=>*}"); bins+=("${pair##*=>}"); done
  # one stamp per row (containerd has two rows in one directory)
  local stamp="$out/.stamp-${bins[0]}-$key"

  local ok=1 b
  for b in "${bins[@]}"; do [[ -x "$out/$b" ]] || ok=0; done
  if [[ "${FORCE:-0}" != 1 && $ok == 1 && -f "$stamp" ]]; then
    log "cached: $component $version (${bins[*]})"
  else
    mkdir -p "$out"
    local src build_dir targets=()
    case "$mode" in
      dep)
        build_dir="$WORK/$component-$key"
        rm -rf "$build_dir"; mkdir -p "$build_dir"
        printf 'module celery-harder.local/node/%s\n\ngo %s\n\nrequire %s %s\n' \
          "$component" "$(printf '%s' "$GO_VERSION" | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')" \
          "$module" "$version" >"$build_dir/go.mod"
        local p
        for p in "${pkgs[@]}"; do
          if [[ "$p" == . ]]; then targets+=("$module"); else targets+=("$module/$p"); fi
        done
        log "resolving $module@$version"
        (cd "$build_dir" && run "go-get-$component-$key" "$GO" get "${targets[@]/%/@$version}")
        ;;
      src)
        src="$(modcache_dir "$module" "$version")"
        if [[ ! -d "$src" ]]; then
          log "go mod download $module@$version"
          (cd "$WORK" && run "go-mod-download-$component" "$GO" mod download "$module@$version")
        fi
        build_dir="$WORK/$component-$key"
        rm -rf "$build_dir"
        cp -r "$src" "$build_dir"
        chmod -R u+w "$build_dir"
        [[ -z "$prepare" ]] || "$prepare" "$build_dir"
        local p
        for p in "${pkgs[@]}"; do targets+=("./$p"); done
        ;;
      *) die "row for $component: mode must be dep or src, got '$mode'" ;;
    esac
    local tmp="$out/.new-$key"
    rm -rf "$tmp"; mkdir -p "$tmp"
    log "compiling $component $version: ${bins[*]}${tags:+ (tags: $tags)}"
    (cd "$build_dir" && timed "go-build-$component-$key" \
        "$GO" build -v -tags "$tags" -ldflags "-s -w $ldflags" -o "$tmp/" "${targets[@]}")
    # `go build -o DIR/` names each binary after its package's last path element
    # (the module path's, without a /vN suffix, for the root package)
    local i name
    for i in "${!pkgs[@]}"; do
      if [[ "${pkgs[$i]}" == . ]]; then
        name="$(basename "$(printf '%s' "$module" | sed -E 's#/v[0-9]+$##')")"
      else
        name="$(basename "${pkgs[$i]}")"
      fi
      [[ -x "$tmp/$name" ]] || die "go build did not produce $tmp/$name (it made: $(ls "$tmp"))"
      mv -f "$tmp/$name" "$out/${bins[$i]}"
    done
    rm -rf "$tmp" "$build_dir"
    rm -f "$out/.stamp-${bins[0]}-"*
    printf '%s\n' "$recipe" >"$stamp"
    for b in "${bins[@]}"; do log "built $out/$b ($(du -h "$out/$b" | cut -f1))"; done
  fi
  for b in "${bins[@]}"; do add_output "$b" "$out/$b"; done
  if [[ "$component" == cni-plugins ]]; then add_output CNI_BIN_DIR "$out"; fi
}

# -------------------------------------------------------------------- runc
install_runc() {
  if ! command -v runc >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "runc is missing and there is no apt-get to install it"
    [[ $(id -u) == 0 ]] || die "runc is missing; installing it needs root (apt-get install runc)"
    log "apt-get install runc"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends runc >"$WORK/apt-runc.log" 2>&1; then
      run "apt-get-update" apt-get update -qq
      run "apt-get-install-runc" apt-get install -y -qq --no-install-recommends runc
    fi
  fi
  local v; v="$(runc --version 2>&1 | head -n1)" || die "runc does not run: $v"
  log "runc: $(command -v runc) ($v)"
  add_output runc "$(command -v runc)"
}

# ------------------------------------------------------------------- pause
# Kubernetes' own build/pause/linux/pause.c, from the k8s.io/kubernetes module,
# compiled as its build/pause/Makefile does (static, -DVERSION=v$(TAG)-$(REV)),
# with REV = the Kubernetes release the source comes from.
build_pause() {
  local out="$NODE/pause/$K8S_VERSION"
  local src; src="$(modcache_dir k8s.io/kubernetes "$K8S_VERSION")"
  if [[ ! -f "$src/build/pause/linux/pause.c" ]]; then
    log "go mod download k8s.io/kubernetes@$K8S_VERSION (for build/pause/linux/pause.c)"
    (cd "$WORK" && run "go-mod-download-kubernetes" "$GO" mod download "k8s.io/kubernetes@$K8S_VERSION")
  fi
  [[ -f "$src/build/pause/linux/pause.c" ]] || die "no build/pause/linux/pause.c in $src"
  local tag
  tag="$(sed -n 's/^TAG ?= *\([0-9.]*\).*/\1/p' "$src/build/pause/Makefile")"
  [[ -n "$tag" ]] || die "no 'TAG ?=' line in $src/build/pause/Makefile"
  local version="v$tag-$K8S_VERSION"
  local cflags=(-static -O2 -Wall -Werror "-DVERSION=$version")
  local recipe
  recipe="pause|$src|${cflags[*]}|$(gcc --version | head -n1)"
  local key; key="$(printf '%s' "$recipe" | sha256sum | cut -c1-16)"
  if [[ "${FORCE:-0}" != 1 && -x "$out/pause" && -f "$out/.stamp-$key" ]]; then
    log "cached: pause ($version)"
  else
    command -v gcc >/dev/null 2>&1 || die "gcc is missing (apt-get install gcc libc6-dev)"
    mkdir -p "$out"
    log "compiling pause.c with gcc ${cflags[*]}"
    run "gcc-pause" gcc "${cflags[@]}" -o "$out/pause.new" "$src/build/pause/linux/pause.c"
    mv -f "$out/pause.new" "$out/pause"
    rm -f "$out"/.stamp-*
    printf '%s\n' "$recipe" >"$out/.stamp-$key"
  fi
  local v; v="$("$out/pause" -v 2>&1)" || die "pause -v failed: $v"
  log "pause: $out/pause ($v)"
  add_output pause "$out/pause"
}

log "go: $GO_VERSION; GOCACHE=$GOCACHE GOMODCACHE=$GOMODCACHE GOFLAGS='$GOFLAGS'"
log "components: ${SELECTED[*]}"
for row in "${ROWS[@]}"; do
  if selected "${row%%|*}"; then build_row "$row"; fi
done
if selected runc; then install_runc; fi
if selected pause; then build_pause; fi
log "done in $(( $(date +%s) - START ))s"
printf '%s\n' "${PRINT[@]}"
