#!/usr/bin/env bash
# The HTTP load generator of the API soak (`make chaos`, and its smoke in `make test`):
# Debian's `hey`. Nothing to do when it is on PATH already.
set -euo pipefail

log() { printf '[install-load-tools] %s\n' "$*" >&2; }
die() { printf '[install-load-tools] ERROR: %s\n' "$*" >&2; exit 1; }

command -v hey >/dev/null 2>&1 && exit 0
[[ $(id -u) == 0 ]] || die "installing hey needs root (or: apt-get install hey)"
log "apt-get install hey"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || die "apt-get update failed"
apt-get install -y -qq --no-install-recommends hey >/dev/null || die "apt-get install hey failed"
command -v hey >/dev/null 2>&1 || die "hey is still not on PATH"
