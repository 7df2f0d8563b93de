# shellcheck shell=bash
# Shared by the build scripts (build-control-plane.sh, build-node.sh,
# build-cluster-images.sh, install-test-deps.sh): the Go environment, logged steps, one
# run at a time.
# The sourcing script defines log() and die() and sets CACHE_ROOT and WORK first.

# go_env: find the Go toolchain (GO, else go on PATH, else /usr/local/go/bin/go) and
# export a build environment whose caches live under the project's cache
go_env() {
  if [[ -z "${GO:-}" ]]; then
    if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
    else die "no Go toolchain: put go on PATH or set GO=/path/to/go"
    fi
  fi
  export GO
  export GOCACHE="$CACHE_ROOT/go/build"
  export GOMODCACHE="$CACHE_ROOT/go/mod"
  export GOFLAGS="-mod=mod -trimpath -buildvcs=false"
  export GOTOOLCHAIN=local      # never download a toolchain
  export CGO_ENABLED=0
  export GO111MODULE=on
  export GOWORK=off
  unset GOOS GOARCH              # binaries for this host
}

# run WHAT CMD...: output to $WORK/WHAT.log; on failure show its tail and die
run() {
  local what="$1"; shift
  local logf="$WORK/${what//[^a-zA-Z0-9._-]/_}.log"
  if ! "$@" >"$logf" 2>&1; then
    echo "----- last 60 lines of $logf -----" >&2
    tail -n 60 "$logf" >&2
    echo "-----" >&2
    die "$what failed: $*"
  fi
}

# one_at_a_time LOCKFILE: hold an exclusive lock for the rest of the script, waiting
# for another run that holds it (two runs would build into the same places)
one_at_a_time() {
  exec 9>"$1"
  if ! flock -n 9; then
    log "another run holds $1; waiting for it"
    flock 9
  fi
}
