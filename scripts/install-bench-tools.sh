#!/usr/bin/env bash
# What `make bench` (python -m bench, which calls this) needs beside the project's venv:
#   - hey, the HTTP load generator (Debian's, through install-load-tools.sh);
#   - redis-benchmark (Debian's redis-tools), for B0;
#   - the peer task queues of B2 (Dramatiq, taskiq with taskiq-redis), from PyPI into a
#     venv of their own, so that none of their dependencies reaches the project's.
# Each step does nothing when its tool is there already. Prints the peers' python on stdout.
set -euo pipefail

log() { printf '[install-bench-tools] %s\n' "$*" >&2; }
die() { printf '[install-bench-tools] ERROR: %s\n' "$*" >&2; exit 1; }

bash "$(dirname "$0")/install-load-tools.sh" >&2

if ! command -v redis-benchmark >/dev/null 2>&1; then
  [[ $(id -u) == 0 ]] || die "installing redis-tools needs root (or: apt-get install redis-tools)"
  log "apt-get install redis-tools"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends redis-tools >/dev/null \
    || die "apt-get install redis-tools failed"
fi

CACHE_ROOT="${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}"
VENV="$CACHE_ROOT/bench-peers"
PYTHON="${PYTHON:-python3.11}"
PACKAGES=("dramatiq[redis]==2.2.1" "taskiq==0.13.0" "taskiq-redis==1.2.4")

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import dramatiq, taskiq, taskiq_redis" 2>/dev/null; then
  echo "$VENV/bin/python"
  exit 0
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON on PATH"
log "creating $VENV"
"$PYTHON" -m venv "$VENV" || die "venv failed"
log "pip install ${PACKAGES[*]}"
PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -q --upgrade pip >&2 || die "pip upgrade failed"
PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -q "${PACKAGES[@]}" >&2 || die "pip install failed"
"$VENV/bin/python" -c "import dramatiq, taskiq, taskiq_redis" || die "peers still not importable"
echo "$VENV/bin/python"
