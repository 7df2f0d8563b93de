#!/usr/bin/env bash
# The peer task queues `make bench` compares with (B2: Dramatiq and taskiq on the same
# Redis), in a venv of their own so that none of their dependencies reaches the project's.
# Nothing to do when the venv already has them. Prints the venv's python on stdout.
set -euo pipefail

log() { printf '[install-bench-peers] %s\n' "$*" >&2; }
die() { printf '[install-bench-peers] ERROR: %s\n' "$*" >&2; exit 1; }

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
