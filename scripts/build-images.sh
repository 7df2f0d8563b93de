#!/usr/bin/env bash
# Build the three celery-harder images (api, worker, operator) with buildah.
#
#   scripts/build-images.sh [--base-only] [--no-base] [SERVICE...]
#
# Environment:
#   IMAGE_TAG            tag of the built images (default: dev)
#   IMAGE_REPO           repository prefix (default: celery-harder) -> celery-harder/<svc>:<tag>
#   CELERY_HARDER_IMAGE_CACHE
#                        where the base stand-in is cached
#                        (default: $CELERY_HARDER_CACHE/images)
#   CELERY_HARDER_CACHE  cache root (default ~/.cache/celery-harder)
#   DEBIAN_MIRROR        mirror for debootstrap (default: http://deb.debian.org/debian)
#   BUILDAH_LAYERS       "true" (default) reuses buildah's layer cache between runs
#
# On a machine with a working container engine you do not need this script:
# `docker build -f services/<svc>/Dockerfile .` pulls the real base image.
# Here no container registry is reachable and podman cannot run containers, so
# the script makes a local stand-in for the Dockerfiles' base image
# (docker.io/library/python:3.11-slim-bookworm) once, with debootstrap, imports
# it with `podman import` (buildah has no import), and builds the images with
# `buildah bud --isolation=chroot --pull=never`.
#
# How the stand-in differs from the real python:3.11-slim-bookworm:
#   - Python is Debian's python3.11 package (3.11.2 plus Debian patches) in
#     /usr/bin; /usr/local/bin/python and python3 are symlinks to it. The real
#     image builds the latest 3.11.x from source into /usr/local. One visible
#     effect: redis-py's marker python_full_version < "3.11.3" holds on 3.11.2,
#     so the images get async-timeout, which the real base would not install.
#   - pip is Debian's python3-pip (23.0.1) with Debian's python3-setuptools and
#     python3-wheel; the real image has upstream pip in /usr/local. Both sit
#     outside /opt/venv: the Dockerfiles upgrade pip inside the venv to a pinned
#     version, so the venv's pip is the same on both bases.
#   - /usr/lib/python3*/EXTERNALLY-MANAGED is removed (Debian's PEP 668 marker;
#     the real image has none).
#   - ca-certificates.crt is the build host's bundle (it may hold a proxy's CA),
#     and /etc/pip.conf points pip at it; the real image has Debian's bundle
#     and no pip.conf.
#   - Built with debootstrap --variant=minbase plus python3, python3-venv,
#     python3-pip, ca-certificates, netbase, tzdata; docs, man pages, apt lists
#     and .deb caches are deleted. The real image is debian:bookworm-slim plus
#     the runtime libraries of its own Python build.
#   - Image config: PATH, LANG=C.UTF-8 and CMD ["python3"] as in the real image,
#     no PYTHON_VERSION/GPG_KEY, plus the label org.celery-harder.stand-in.
# If an image with the base's name exists without that label (a real pulled
# python image), it is used as is and nothing is rebuilt.
set -Eeuo pipefail

log() { printf '[build-images %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
trap 'rc=$?; log "ERROR: command failed (exit $rc) at line $LINENO: $BASH_COMMAND"; exit $rc' ERR

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_IMAGE="docker.io/library/python:3.11-slim-bookworm"
# Bump when the stand-in recipe changes: a cached base with another value is rebuilt.
STAND_IN_RECIPE="2"
CACHE_DIR="${CELERY_HARDER_IMAGE_CACHE:-${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}/images}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
IMAGE_REPO="${IMAGE_REPO:-celery-harder}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BUILDAH_LAYERS="${BUILDAH_LAYERS:-true}"
ALL_SERVICES=(api worker operator)

base_only=false
build_base=true
services=()
for arg in "$@"; do
  case "$arg" in
    --base-only) base_only=true ;;
    --no-base) build_base=false ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    api|worker|operator) services+=("$arg") ;;
    *) die "unknown argument: $arg (expected --base-only, --no-base, api, worker, operator)" ;;
  esac
done
[ ${#services[@]} -gt 0 ] || services=("${ALL_SERVICES[@]}")

ensure_tools() {
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v podman >/dev/null || missing+=(podman)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
  log "installing ${missing[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || die "apt-get update failed"
  # With recommends: buildah/podman then bring what this machine was seen working with.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman debootstrap >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# Prints the stand-in label of the local base image: "" if absent, "none" if
# the image exists without the label (a real upstream image).
base_state() {
  if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo ""; return
  fi
  local v
  v="$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "org.celery-harder.stand-in"}}' "$BASE_IMAGE" 2>/dev/null || true)"
  if [ -z "$v" ] || [ "$v" = "<no value>" ]; then echo none; else echo "$v"; fi
}

make_base() {
  local state; state="$(base_state)"
  if [ "$state" = none ]; then
    log "base $BASE_IMAGE exists and is not a stand-in: using it as is"
    return 0
  fi
  if [ "$state" = "$STAND_IN_RECIPE" ]; then
    log "base stand-in $BASE_IMAGE (recipe $STAND_IN_RECIPE) already present"
    return 0
  fi
  mkdir -p "$CACHE_DIR"
  local tarball="$CACHE_DIR/python-3.11-slim-bookworm-standin-r$STAND_IN_RECIPE.tar"
  if [ ! -s "$tarball" ]; then
    [ "$(id -u)" = 0 ] || die "debootstrap needs root to make the base stand-in"
    local rootfs="$CACHE_DIR/rootfs-r$STAND_IN_RECIPE"
    rm -rf "$rootfs"
    log "debootstrap bookworm into $rootfs (a few minutes; log: $CACHE_DIR/debootstrap.log)"
    if ! debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates,netbase,tzdata \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1; then
      tail -n 20 "$CACHE_DIR/debootstrap.log" >&2
      die "debootstrap failed (full log: $CACHE_DIR/debootstrap.log)"
    fi
    log "turning the rootfs into a python:3.11-slim stand-in"
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python3"
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
    ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip3"
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
      cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    fi
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
           "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
           "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
    find "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
    "$rootfs/usr/bin/python3" --version >/dev/null 2>&1 || true
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . || die "tar of $rootfs failed"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  else
    log "reusing cached rootfs tarball $tarball"
  fi
  log "importing $tarball as $BASE_IMAGE"
  if [ -n "$(base_state)" ]; then buildah rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true; fi
  podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL org.celery-harder.stand-in=$STAND_IN_RECIPE" \
    --change 'LABEL org.opencontainers.image.description="local stand-in for python:3.11-slim-bookworm made by scripts/build-images.sh"' \
    "$tarball" "$BASE_IMAGE" >/dev/null || die "podman import of $tarball failed"
  [ "$(base_state)" = "$STAND_IN_RECIPE" ] || die "imported base $BASE_IMAGE lacks label org.celery-harder.stand-in=$STAND_IN_RECIPE"
  log "base stand-in ready: $BASE_IMAGE"
}

build_service() {
  local svc="$1" image="$IMAGE_REPO/$1:$IMAGE_TAG" dockerfile="$REPO_ROOT/services/$1/Dockerfile"
  [ -f "$dockerfile" ] || die "no Dockerfile at $dockerfile"
  local revision version
  revision="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  version="${IMAGE_VERSION:-$IMAGE_TAG}"
  log "building $image from services/$svc/Dockerfile"
  local start=$SECONDS
  if ! buildah bud --isolation=chroot --pull=never --layers="$BUILDAH_LAYERS" \
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
      -f "$dockerfile" -t "$image" "$REPO_ROOT" >"$CACHE_DIR/build-$svc.log" 2>&1; then
    tail -n 40 "$CACHE_DIR/build-$svc.log" >&2
    die "buildah bud for $svc failed (full log: $CACHE_DIR/build-$svc.log)"
  fi
  log "built $image in $((SECONDS - start))s"
}

main() {
  mkdir -p "$CACHE_DIR"
  # One build at a time on this machine (make test and a developer may race).
  exec 9>"$CACHE_DIR/.lock"
  if ! flock -n 9; then
    log "another build-images run holds $CACHE_DIR/.lock; waiting"
    flock 9
  fi
  ensure_tools
  if $build_base; then make_base; fi
  $base_only && return 0
  [ -n "$(base_state)" ] || die "base image $BASE_IMAGE missing (run without --no-base)"
  for svc in "${services[@]}"; do build_service "$svc"; done
  log "images:"
  buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' 2>/dev/null \
    | grep -E "(^|/)$IMAGE_REPO/($(IFS='|'; echo "${services[*]}")):$IMAGE_TAG " >&2 || true
}

main
