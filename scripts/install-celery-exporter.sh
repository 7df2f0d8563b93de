#!/usr/bin/env bash
# celery-exporter for the tests and `make dev PROMETHEUS=1`: PyPI prometheus-exporter-celery
# at the chart's image tag (scripts/lib/celery-exporter-version.sh), in a venv of its own.
# It pins prometheus-client<0.22 and redis<6 and ships a top-level package named `src`,
# so it never shares the project's venv. Its dependencies are pinned as in the image
# (scripts/lib/celery-exporter-<version>.constraints.txt, upstream's poetry.lock).
#
# Result (cached; a warm run only compares a stamp):
#   ~/.cache/celery-harder/celery-exporter/<version>/venv/bin/python
# Started as: python -c 'from src.cli import cli; cli(auto_envvar_prefix="CE")' --broker-url ...
# (celery_harder_dev.exporter does that).
#
# Environment:
#   CELERY_HARDER_CACHE  cache root (default ~/.cache/celery-harder)
#   PYTHON               the interpreter for the venv (default python3.11, else python3)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}"
VERSION="$(bash "$REPO_ROOT/scripts/lib/celery-exporter-version.sh")"
CONSTRAINTS="$REPO_ROOT/scripts/lib/celery-exporter-$VERSION.constraints.txt"
DEST="$CACHE_ROOT/celery-exporter/$VERSION"
VENV="$DEST/venv"
STAMP="$DEST/installed"

log() { printf '[install-celery-exporter] %s\n' "$*" >&2; }
die() { printf '[install-celery-exporter] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -f "$CONSTRAINTS" ]] || die "no constraints for celery-exporter $VERSION: $CONSTRAINTS"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
[[ -n "$PYTHON" ]] || die "no python3 to make the exporter's venv with"
want="prometheus-exporter-celery==$VERSION $(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/python" ]]; then
  echo "CELERY_EXPORTER_PYTHON=$VENV/bin/python"
  exit 0
fi

log "pip install prometheus-exporter-celery==$VERSION into $VENV"
rm -rf "$DEST"
mkdir -p "$DEST"
"$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed"
if ! PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      -c "$CONSTRAINTS" "prometheus-exporter-celery==$VERSION" >"$DEST/pip.log" 2>&1; then
  cat "$DEST/pip.log" >&2
  die "pip install prometheus-exporter-celery==$VERSION failed (see above)"
fi
# The entry point the image uses, and the pins that make it need a venv of its own.
"$VENV/bin/python" -c '
import importlib.metadata as m, sys
import src.cli  # noqa: F401  (the exporter'"'"'s top-level package)
got = m.version("prometheus-exporter-celery")
assert got == sys.argv[1], (got, sys.argv[1])
print("prometheus-exporter-celery", got, "prometheus-client", m.version("prometheus-client"),
      "redis", m.version("redis"), "celery", m.version("celery"), file=sys.stderr)
' "$VERSION" || die "the installed exporter does not import as src.cli at $VERSION"
echo "$want" >"$STAMP"
echo "CELERY_EXPORTER_PYTHON=$VENV/bin/python"
