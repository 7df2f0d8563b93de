#!/usr/bin/env bash
# Build, with buildah, the container images a single-node cluster on this machine
# needs (T4-local), and export each one as an OCI archive that
# `ctr -n k8s.io images import ARCHIVE` loads under its fully qualified name.
#
#   scripts/build-cluster-images.sh [IMAGE-KEY...]     (default: all of them)
#
# IMAGE-KEY is one of: pause coredns keda keda-metrics-apiserver local-path-provisioner
# busybox kube-network-policies redis celery-exporter prometheus-operator
# prometheus-config-reloader prometheus api worker operator
#
# Images (names as the upstream manifests and the chart's values refer to them,
# fully qualified because kubelet normalises names to docker.io/...):
#   registry.k8s.io/pause:3.10.2            Kubernetes' pause.c (containerd 2.4's default sandbox image)
#   registry.k8s.io/coredns/coredns:v1.15.0
#   ghcr.io/kedacore/keda:2.21.0            entrypoints as in KEDA's Dockerfile and
#   ghcr.io/kedacore/keda-metrics-apiserver:2.21.0     Dockerfile.adapter
#   docker.io/rancher/local-path-provisioner:v0.0.30   (its deploy/local-path-storage.yaml)
#   docker.io/library/busybox:latest        the provisioner's helper pod (`image: busybox`):
#                                           Debian's busybox-static
#   registry.k8s.io/networking/kube-network-policies:v0.8.0
#   docker.io/library/redis:7.0.15          Debian bookworm's redis-server on the stand-in base
#   docker.io/danihodovic/celery-exporter:0.11.2   PyPI prometheus-exporter-celery==0.11.2
#   quay.io/prometheus-operator/prometheus-operator:v0.85.0         as its Dockerfiles,
#   quay.io/prometheus-operator/prometheus-config-reloader:v0.85.0  for the T4-local
#   quay.io/prometheus/prometheus:v3.5.0    (Kubernetes SD only)          monitoring test
#   docker.io/celery-harder/{api,worker,operator}:dev   scripts/build-images.sh's images
#                                           (localhost/celery-harder/<svc>:dev), exported
#                                           under these names
# The Go binaries and pause come from scripts/build-node.sh, which this script runs
# (a warm run of it takes about a second). The images whose upstream base is
# distroless (FROM gcr.io/distroless/static) are built FROM scratch on a tiny
# skeleton made here: /etc/passwd and /etc/group with root, nobody (65534) and
# nonroot (65532) as in distroless, /etc/nsswitch.conf, /tmp. No CA bundle: none
# of these programs talks TLS to anything but the API server here, whose CA
# comes from the service account.
# The Debian-based ones (redis, celery-exporter) start from the stand-in base
# docker.io/library/python:3.11-slim-bookworm that scripts/build-images.sh makes
# (it is run with --base-only to make sure it is there).
#
# An image is rebuilt only when its recipe changes (the function that builds it,
# its input files, its base image): the recipe's hash is kept in the image's
# label org.celery-harder.recipe. An archive is rewritten only when the image ID
# differs from the one index.tsv records for it.
#
# Output:
#   ~/.cache/celery-harder/cluster-images/<key>.tar   OCI archives
#   ~/.cache/celery-harder/cluster-images/index.tsv   name <TAB> archive <TAB> image id
# stdout: one line per archive, IMAGE=<name> ARCHIVE=<path>; progress on stderr.
#
# Environment:
#   CELERY_HARDER_CACHE  cache root (default ~/.cache/celery-harder)
#   IMAGE_TAG            tag of the product images to export (default: dev)
#   FORCE=1              rebuild the images made here and rewrite every archive
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}"
OUT="$CACHE_ROOT/cluster-images"
WORK="$OUT/work"
INDEX="$OUT/index.tsv"
IMAGE_TAG="${IMAGE_TAG:-dev}"
# The stand-in that scripts/build-images.sh makes and its Dockerfiles start FROM.
BASE_IMAGE="docker.io/library/python:3.11-slim-bookworm"

# versions: the binaries come from scripts/build-node.sh at these versions
PAUSE_TAG="3.10.2"
COREDNS_VERSION="v1.15.0"
KEDA_VERSION="2.21.0"
LOCAL_PATH_VERSION="v0.0.30"
NETPOL_VERSION="v0.8.0"
REDIS_VERSION="7.0.15"
# The chart's exporter.image.tag: one source for the image and the tests' PyPI install.
EXPORTER_VERSION="$(bash "$REPO_ROOT/scripts/lib/celery-exporter-version.sh")"
PROMETHEUS_OPERATOR_VERSION="v0.85.0"
PROMETHEUS_VERSION="v3.5.0"   # the version that Prometheus Operator release requires

START=$(date +%s)
log() { printf '[build-cluster-images +%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die() { printf '[build-cluster-images] ERROR: %s\n' "$*" >&2; exit 1; }

# key | image name | builder function (empty: exported from the store, built elsewhere)
IMAGES=(
  "pause|registry.k8s.io/pause:$PAUSE_TAG|image_pause"
  "coredns|registry.k8s.io/coredns/coredns:$COREDNS_VERSION|image_coredns"
  "keda|ghcr.io/kedacore/keda:$KEDA_VERSION|image_keda"
  "keda-metrics-apiserver|ghcr.io/kedacore/keda-metrics-apiserver:$KEDA_VERSION|image_keda_adapter"
  "local-path-provisioner|docker.io/rancher/local-path-provisioner:$LOCAL_PATH_VERSION|image_local_path"
  "busybox|docker.io/library/busybox:latest|image_busybox"
  "kube-network-policies|registry.k8s.io/networking/kube-network-policies:$NETPOL_VERSION|image_netpol"
  "redis|docker.io/library/redis:$REDIS_VERSION|image_redis"
  "celery-exporter|docker.io/danihodovic/celery-exporter:$EXPORTER_VERSION|image_exporter"
  "prometheus-operator|quay.io/prometheus-operator/prometheus-operator:$PROMETHEUS_OPERATOR_VERSION|image_prometheus_operator"
  "prometheus-config-reloader|quay.io/prometheus-operator/prometheus-config-reloader:$PROMETHEUS_OPERATOR_VERSION|image_config_reloader"
  "prometheus|quay.io/prometheus/prometheus:$PROMETHEUS_VERSION|image_prometheus"
  "api|docker.io/celery-harder/api:$IMAGE_TAG|"
  "worker|docker.io/celery-harder/worker:$IMAGE_TAG|"
  "operator|docker.io/celery-harder/operator:$IMAGE_TAG|"
)

case "${1:-}" in
  -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
esac
ALL_KEYS=()
for row in "${IMAGES[@]}"; do ALL_KEYS+=("${row%%|*}"); done
SELECTED=("$@")
((${#SELECTED[@]})) || SELECTED=("${ALL_KEYS[@]}")
for k in "${SELECTED[@]}"; do
  printf '%s\n' "${ALL_KEYS[@]}" | grep -x -- "$k" >/dev/null || die "unknown image '$k' (one of: ${ALL_KEYS[*]})"
done
# grep without -q reads all its input: with -q it may exit first, and under pipefail
# the SIGPIPE of printf would fail the pipeline (a component taken for unknown).
selected() { printf '%s\n' "${SELECTED[@]}" | grep -x -- "$1" >/dev/null; }

# shellcheck source-path=SCRIPTDIR source=lib/build-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/build-common.sh"
mkdir -p "$OUT" "$WORK"
one_at_a_time "$OUT/.lock"

image_id() { buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null; }
image_label() {
  local v
  v="$(buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null)" || return 0
  [[ "$v" == "<no value>" ]] || printf '%s' "$v"
}

# ------------------------------------------------------------ inputs
# NODE_BIN[NAME] = path, from scripts/build-node.sh's NAME=path lines
declare -A NODE_BIN=()
need_node_bins() {  # COMPONENT... of scripts/build-node.sh
  local line lines
  log "scripts/build-node.sh $* (builds what is missing; log: $WORK/build-node.log)"
  lines="$(bash "$REPO_ROOT/scripts/build-node.sh" "$@" 2>"$WORK/build-node.log")" \
    || { tail -n 30 "$WORK/build-node.log" >&2; die "scripts/build-node.sh $* failed (log: $WORK/build-node.log)"; }
  while IFS= read -r line; do NODE_BIN["${line%%=*}"]="${line#*=}"; done <<<"$lines"
}
node_bin() {
  [[ -n "${NODE_BIN[$1]:-}" && -x "${NODE_BIN[$1]}" ]] || die "scripts/build-node.sh gave no $1"
  printf '%s' "${NODE_BIN[$1]}"
}

BASE_READY=0
need_base() {
  ((BASE_READY)) && return 0
  log "scripts/build-images.sh --base-only (makes the stand-in base if missing; log: $WORK/base.log)"
  run base bash "$REPO_ROOT/scripts/build-images.sh" --base-only
  BASE_READY=1
}

# The distroless-like skeleton for the static Go images.
skeleton() {
  local dir="$WORK/skeleton"
  rm -rf "$dir"; mkdir -p "$dir/etc" "$dir/tmp" "$dir/home/nonroot"
  chmod 1777 "$dir/tmp"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$dir/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$dir/etc/group"
  printf 'hosts: files dns\n' >"$dir/etc/nsswitch.conf"
  printf '%s' "$dir"
}

# ------------------------------------------------------------ builders
# Each builder gets the image name and a working container name prefix, and
# leaves a committed image of that name. Helpers:
from_scratch_with_skeleton() {
  local c dir; c="$(buildah from --name "$1" scratch)"
  dir="$(skeleton)"
  buildah copy --quiet "$c" "$dir" / >/dev/null
  buildah copy --quiet --chown 65532:65532 "$c" "$dir/home/nonroot" /home/nonroot >/dev/null
  printf '%s' "$c"
}
commit() {  # CONTAINER IMAGE RECIPE
  buildah config --label "org.celery-harder.recipe=$3" \
    --label "org.opencontainers.image.description=built locally by scripts/build-cluster-images.sh" "$1"
  buildah commit --quiet --rm "$1" "$2" >/dev/null
}

image_pause() {  # as build/pause/Dockerfile: FROM scratch, /pause, USER 65535:65535
  local c; c="$(buildah from --name "$2" scratch)"
  buildah copy --quiet --chmod 0755 "$c" "$(node_bin PAUSE)" /pause >/dev/null
  buildah config --user 65535:65535 --entrypoint '["/pause"]' --cmd '' "$c"
  commit "$c" "$1" "$3"
}

image_coredns() {  # as coredns' Dockerfile: /coredns with cap_net_bind_service, USER 65532
  local staged="$WORK/coredns"
  cp "$(node_bin COREDNS)" "$staged"
  setcap cap_net_bind_service=+ep "$staged" || die "setcap on $staged failed (apt-get install libcap2-bin)"
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet "$c" "$staged" /coredns >/dev/null
  buildah config --user 65532:65532 --workingdir / --port 53 --port 53/udp \
    --entrypoint '["/coredns"]' --cmd '' "$c"
  commit "$c" "$1" "$3"
  rm -f "$staged"
}

image_keda() {  # as KEDA's Dockerfile
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet --chmod 0755 "$c" "$(node_bin KEDA)" /keda >/dev/null
  buildah config --user 65532:65532 --workingdir / \
    --entrypoint '["/keda", "--zap-log-level=info", "--zap-encoder=console"]' --cmd '' "$c"
  commit "$c" "$1" "$3"
}

image_keda_adapter() {  # as KEDA's Dockerfile.adapter
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet --chmod 0755 "$c" "$(node_bin KEDA_ADAPTER)" /keda-adapter >/dev/null
  buildah config --user 65532:65532 --workingdir / \
    --entrypoint '["/keda-adapter", "--secure-port=6443", "--zap-log-level=info", "--zap-encoder=console"]' \
    --cmd '' "$c"
  commit "$c" "$1" "$3"
}

image_local_path() {  # as package/Dockerfile: /usr/bin/local-path-provisioner, CMD by name
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet --chmod 0755 "$c" "$(node_bin LOCAL_PATH_PROVISIONER)" /usr/bin/local-path-provisioner >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --entrypoint '' --cmd '["local-path-provisioner"]' "$c"
  commit "$c" "$1" "$3"
}

image_netpol() {  # as its Dockerfile: /bin/netpol, CMD ["/bin/netpol"], root
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet --chmod 0755 "$c" "$(node_bin NETPOL)" /bin/netpol >/dev/null
  buildah config --entrypoint '' --cmd '["/bin/netpol"]' "$c"
  commit "$c" "$1" "$3"
}

image_prometheus_operator() {  # as its Dockerfile: /bin/operator, USER nobody
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet --chmod 0755 "$c" "$(node_bin PROMETHEUS_OPERATOR)" /bin/operator >/dev/null
  buildah config --user 65534:65534 --workingdir / --entrypoint '["/bin/operator"]' --cmd '' "$c"
  commit "$c" "$1" "$3"
}

image_config_reloader() {  # as cmd/prometheus-config-reloader/Dockerfile, USER nobody
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet --chmod 0755 "$c" "$(node_bin PROMETHEUS_CONFIG_RELOADER)" \
    /bin/prometheus-config-reloader >/dev/null
  buildah config --user 65534:65534 --workingdir / \
    --entrypoint '["/bin/prometheus-config-reloader"]' --cmd '' "$c"
  commit "$c" "$1" "$3"
}

# Prometheus from scripts/build-node.sh (Kubernetes service discovery only), laid out
# as its Dockerfile: /bin/prometheus, /etc/prometheus and /prometheus owned by nobody,
# USER nobody, WORKDIR /prometheus; the Prometheus Operator gives the arguments.
image_prometheus() {
  local dir="$WORK/prometheus-root"
  rm -rf "$dir"; mkdir -p "$dir/bin" "$dir/etc/prometheus" "$dir/prometheus"
  cp "$(node_bin PROMETHEUS)" "$dir/bin/prometheus"
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet --chown 65534:65534 "$c" "$dir" / >/dev/null
  buildah config --user 65534:65534 --workingdir /prometheus --port 9090 \
    --entrypoint '["/bin/prometheus"]' --cmd '' "$c"
  commit "$c" "$1" "$3"
  rm -rf "$dir"
}

# busybox for local-path-provisioner's helper pod (`sh -c` with mkdir/rm):
# Debian's busybox-static, its applets linked in /bin, CMD ["sh"] as the real image.
image_busybox() {
  local dir="$WORK/busybox"
  rm -rf "$dir"; mkdir -p "$dir/deb" "$dir/root/bin"
  (cd "$dir/deb" && { apt-get download busybox-static >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get download busybox-static >/dev/null; }; }) \
    || die "apt-get download busybox-static failed"
  dpkg-deb -x "$dir"/deb/busybox-static_*.deb "$dir/x"
  cp "$dir/x/bin/busybox" "$dir/root/bin/busybox"
  local applet
  for applet in $("$dir/root/bin/busybox" --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$dir/root/bin/$applet"
  done
  local c; c="$(from_scratch_with_skeleton "$2")"
  buildah copy --quiet "$c" "$dir/root" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --entrypoint '' --cmd '["sh"]' "$c"
  commit "$c" "$1" "$3"
  rm -rf "$dir"
}

# apt-get inside a working container of the stand-in base, with services kept
# from starting (policy-rc.d) and the apt lists removed afterwards
apt_in() {  # CONTAINER PACKAGE...
  local c="$1"; shift
  buildah run --isolation chroot "$c" -- sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
  buildah run --isolation chroot "$c" -- sh -c \
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $* \
     && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /usr/sbin/policy-rc.d"
}

# Debian bookworm's redis-server, as the official image lays it out: user redis
# 999:999, /data owned by it as the working directory, CMD ["redis-server"];
# no entrypoint script (the chart gives the command).
image_redis() {
  need_base
  local c; c="$(buildah from --pull-never --name "$2" "$BASE_IMAGE")"
  buildah run --isolation chroot "$c" -- sh -c 'groupadd -r -g 999 redis && useradd -r -g redis -u 999 -d /data -s /usr/sbin/nologin redis'
  apt_in "$c" redis-server redis-tools
  local v; v="$(buildah run --isolation chroot "$c" -- redis-server --version)"
  [[ "$v" == *"v=$REDIS_VERSION "* ]] || die "redis-server in the image reports '$v', expected v=$REDIS_VERSION"
  log "redis image: $v"
  buildah run --isolation chroot "$c" -- sh -c 'mkdir -p /data && chown redis:redis /data && id redis && command -v redis-cli sh grep'
  buildah config --workingdir /data --volume /data --port 6379 \
    --entrypoint '' --cmd '["redis-server"]' "$c"
  commit "$c" "$1" "$3"
}

# PyPI prometheus-exporter-celery in a venv of its own, laid out as the upstream
# image (danihodovic/celery-exporter Dockerfile at v0.11.2): venv /app/.venv on
# PATH, /app/cli.py, ENTRYPOINT ["python", "/app/cli.py"], non-root user
# (here numeric 1000:1000). Its dependencies are pinned to upstream's poetry.lock
# at that tag (scripts/lib/celery-exporter-0.11.2.constraints.txt).
image_exporter() {
  need_base
  local constraints="$REPO_ROOT/scripts/lib/celery-exporter-$EXPORTER_VERSION.constraints.txt"
  [[ -f "$constraints" ]] || die "missing $constraints"
  local c; c="$(buildah from --pull-never --name "$2" "$BASE_IMAGE")"
  buildah copy --quiet "$c" "$constraints" /tmp/constraints.txt >/dev/null
  # upstream's cli.py, verbatim
  printf '%s\n' 'from src.cli import cli' '' 'if __name__ == "__main__":' \
    '    # pylint: disable=no-value-for-parameter,unexpected-keyword-arg' \
    '    cli(auto_envvar_prefix="CE")' >"$WORK/cli.py"
  buildah run --isolation chroot "$c" -- sh -c \
    "python3 -m venv /app/.venv \
     && /app/.venv/bin/pip install --no-cache-dir -q -c /tmp/constraints.txt prometheus-exporter-celery==$EXPORTER_VERSION \
     && rm /tmp/constraints.txt \
     && groupadd -g 1000 exporter && useradd -m -u 1000 -g 1000 -s /usr/sbin/nologin exporter"
  buildah copy --quiet --chmod 0644 "$c" "$WORK/cli.py" /app/cli.py >/dev/null
  buildah run --isolation chroot "$c" -- /app/.venv/bin/python -c \
    'import src.cli, celery, redis, prometheus_client, importlib.metadata as m; print("prometheus-exporter-celery", m.version("prometheus-exporter-celery"), "celery", celery.__version__, "redis", redis.__version__, "prometheus-client", m.version("prometheus-client"))' \
    >"$WORK/exporter-versions.txt"
  log "celery-exporter image: $(cat "$WORK/exporter-versions.txt")"
  buildah config --env PYTHONUNBUFFERED=1 --env VIRTUAL_ENV=/app/.venv \
    --env PATH=/app/.venv/bin:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --port 9808 --user 1000:1000 --workingdir / \
    --entrypoint '["python", "/app/cli.py"]' --cmd '' "$c"
  commit "$c" "$1" "$3"
}

# ------------------------------------------------------------ recipe + build
# The recipe of a builder: its own text and the helpers', the input files' hashes,
# the base image's ID (for the Debian-based ones).
recipe_of() {
  local fn="$1" inputs=()
  case "$fn" in
    image_pause) inputs=("$(node_bin PAUSE)") ;;
    image_coredns) inputs=("$(node_bin COREDNS)") ;;
    image_keda) inputs=("$(node_bin KEDA)") ;;
    image_keda_adapter) inputs=("$(node_bin KEDA_ADAPTER)") ;;
    image_local_path) inputs=("$(node_bin LOCAL_PATH_PROVISIONER)") ;;
    image_netpol) inputs=("$(node_bin NETPOL)") ;;
    image_exporter) inputs=("$REPO_ROOT/scripts/lib/celery-exporter-$EXPORTER_VERSION.constraints.txt") ;;
  esac
  {
    declare -f "$fn" skeleton from_scratch_with_skeleton commit apt_in
    if ((${#inputs[@]})); then sha256sum "${inputs[@]}" | cut -d' ' -f1; fi
    case "$fn" in image_redis|image_exporter) need_base; image_id "$BASE_IMAGE" ;; esac
  } | sha256sum | cut -c1-32
}

build_image() {  # KEY NAME FUNCTION
  local key="$1" name="$2" fn="$3"
  local recipe; recipe="$(recipe_of "$fn")"
  if [[ "${FORCE:-0}" != 1 && "$(image_label "$name" org.celery-harder.recipe)" == "$recipe" ]]; then
    log "cached: $name (recipe $recipe)"
    return 0
  fi
  local ctr="celery-harder-build-$key"
  buildah rm "$ctr" >/dev/null 2>&1 || true
  log "building $name"
  local t0=$SECONDS
  # started in the background and waited for, so that `set -e` holds inside
  # (it is off in a subshell whose status is tested with || or if)
  ( set -e; "$fn" "$name" "$ctr" "$recipe" ) >"$WORK/build-$key.log" 2>&1 &
  if ! wait $!; then
    tail -n 40 "$WORK/build-$key.log" >&2
    buildah rm "$ctr" >/dev/null 2>&1 || true
    die "building $name failed (log: $WORK/build-$key.log)"
  fi
  log "built $name in $((SECONDS - t0))s: $(image_id "$name" | cut -c1-12)"
}

# ------------------------------------------------------------ export
declare -A INDEX_ID=() INDEX_ARCHIVE=()
if [[ -f "$INDEX" ]]; then
  while IFS=$'\t' read -r n a i; do
    [[ -n "$n" ]] || continue
    INDEX_ID["$n"]="$i"; INDEX_ARCHIVE["$n"]="$a"
  done <"$INDEX"
fi

export_image() {  # KEY NAME SOURCE-IMAGE
  local key="$1" name="$2" src="$3"
  local id; id="$(image_id "$src")"
  [[ -n "$id" ]] || die "no image $src in buildah's store"
  local archive="$OUT/$key.tar"
  if [[ "${FORCE:-0}" != 1 && -s "$archive" && "${INDEX_ID[$name]:-}" == "$id" \
        && "${INDEX_ARCHIVE[$name]:-}" == "$archive" ]]; then
    log "archive up to date: $archive ($name ${id:0:12})"
  else
    local t0=$SECONDS
    rm -f "$archive.tmp"
    run "push-$key" buildah push --quiet "$src" "oci-archive:$archive.tmp:$name"
    mv -f "$archive.tmp" "$archive"
    log "exported $name (${id:0:12}) to $archive ($(du -h "$archive" | cut -f1), $((SECONDS - t0))s)"
  fi
  INDEX_ID["$name"]="$id"; INDEX_ARCHIVE["$name"]="$archive"
  printf 'IMAGE=%s ARCHIVE=%s\n' "$name" "$archive"
}

write_index() {
  local n tmp="$INDEX.tmp"
  : >"$tmp"
  for n in "${!INDEX_ID[@]}"; do
    printf '%s\t%s\t%s\n' "$n" "${INDEX_ARCHIVE[$n]}" "${INDEX_ID[$n]}" >>"$tmp"
  done
  sort -o "$tmp" "$tmp"
  mv -f "$tmp" "$INDEX"
}

command -v buildah >/dev/null 2>&1 || need_base   # build-images.sh installs buildah
# inputs first, in this shell (the recipes are computed in subshells)
node_components=()
for k in "${SELECTED[@]}"; do
  case "$k" in
    pause|coredns|local-path-provisioner|kube-network-policies) node_components+=("$k") ;;
    keda|keda-metrics-apiserver) node_components+=(keda) ;;
    prometheus-operator|prometheus-config-reloader) node_components+=(prometheus-operator) ;;
    prometheus) node_components+=(prometheus) ;;
    redis|celery-exporter) need_base ;;
  esac
done
if ((${#node_components[@]})); then
  mapfile -t node_components < <(printf '%s\n' "${node_components[@]}" | sort -u)
  need_node_bins "${node_components[@]}"
fi
for row in "${IMAGES[@]}"; do
  IFS='|' read -r key name fn <<<"$row"
  selected "$key" || continue
  if [[ -n "$fn" ]]; then
    build_image "$key" "$name" "$fn"
    export_image "$key" "$name" "$name"
  else
    src="localhost/celery-harder/$key:$IMAGE_TAG"
    if [[ -z "$(image_id "$src")" ]]; then
      log "$src is missing: scripts/build-images.sh $key (log: $WORK/product-$key.log)"
      run "product-$key" bash "$REPO_ROOT/scripts/build-images.sh" "$key"
    fi
    export_image "$key" "$name" "$src"
  fi
  write_index
done
log "done in $(( $(date +%s) - START ))s; index: $INDEX"
