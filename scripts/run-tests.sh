#!/usr/bin/env bash
# make test: the installs, lint, types, then pytest in three phases, while the T2 control
# plane and the node build in the background at the lowest CPU and I/O priority.
#
#   scripts/run-tests.sh            (what `make test` runs)
#   scripts/run-tests.sh --plan     print the phases and check that they cover tests/
#
# Why: on a cold machine the Go builds take some 30 minutes of both cores, while the
# installs wait on the network and the tests that need no build leave CPU idle. So the
# control plane's build starts first, niced, and the tests run in the order of what
# they need:
#   1. no build:       T0, T1, the chart's rendering, the dev loop's files
#   2. control plane:  T2 (kube-apiserver, etcd), T3 (the images), the benchmarks
#   3. the node:       its build outputs, then T4-local
# The background goes on from the control plane to the node only once the foreground's
# installs are done (a lock held meanwhile): both use apt-get, which allows one at a time.
# Before phases 2 and 3 the foreground runs the same `make` targets itself. The build
# scripts hold a lock while they build and return at once from their cache, so that step
# waits for the background build, or builds what the background has not reached (a
# failed background build shows its error there, from the foreground). A warm machine
# finds everything cached and runs the phases back to back.
#
# Every phase runs even when an earlier one failed, so one run shows every failure; the
# exit status is non-zero if an install, a build, lint, the type check or a phase failed.
#
# Environment:
#   PYTEST          pytest to run (default .venv/bin/pytest)
#   PYTEST_ARGS     extra arguments for every phase (e.g. "-x -q")
#   TESTS_ROOT      the tests folder the plan must cover (default tests)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTEST="${PYTEST:-.venv/bin/pytest}"
TESTS_ROOT="${TESTS_ROOT:-tests}"

# the phases, by top-level folder of tests/ (a folder in none of them fails the run)
PHASE_NAMES=("no build" "control plane" "node")
PHASE_DIRS=(
  "unit stack resilience devstack chart devloop"
  "k8s images bench"
  "cluster_build cluster"
)
# what each phase needs built first (make targets); the background builds them all
PHASE_NEEDS=("" "control-plane" "control-plane cluster-images")
# the foreground's installs, before lint (the venv) and the phases
INSTALLS=(venv tools test-deps load-tools images)

START=$(date +%s)
log() { printf '[run-tests +%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die() { printf '[run-tests] ERROR: %s\n' "$*" >&2; exit 2; }

# check_plan: every folder of $TESTS_ROOT that holds a test module is in exactly one phase
check_plan() {
  local planned=() d found=0 missing=()
  for d in "${PHASE_DIRS[@]}"; do read -ra words <<<"$d"; planned+=("${words[@]}"); done
  local dupes
  dupes="$(printf '%s\n' "${planned[@]}" | sort | uniq -d)"
  [[ -z "$dupes" ]] || die "in more than one phase: $dupes"
  while IFS= read -r d; do
    found=1
    printf '%s\n' "${planned[@]}" | grep -x -- "$d" >/dev/null || missing+=("$d")
  done < <(find "$TESTS_ROOT" -mindepth 2 -name 'test_*.py' -printf '%P\n' | cut -d/ -f1 | sort -u)
  ((found)) || die "no test modules under $TESTS_ROOT"
  ((${#missing[@]} == 0)) || die "in no phase of scripts/run-tests.sh: ${missing[*]/#/$TESTS_ROOT/}"
}

check_plan
if [[ "${1:-}" == --plan ]]; then
  for i in "${!PHASE_NAMES[@]}"; do
    printf '%s: %s (needs: %s)\n' "${PHASE_NAMES[$i]}" "${PHASE_DIRS[$i]}" "${PHASE_NEEDS[$i]:-nothing}"
  done
  exit 0
fi
[[ $# == 0 ]] || die "unknown argument '$1' (only --plan)"

CACHE_ROOT="${CELERY_HARDER_CACHE:-$HOME/.cache/celery-harder}"
BACKGROUND_LOG="$CACHE_ROOT/logs/background-build.log"

# the background build: its own process group, so that one kill stops make and go alike;
# SCHED_IDLE (else nice 19) and the idle I/O class, so that it takes what the rest leaves
lowest=(nice -n 19)
command -v chrt >/dev/null 2>&1 && lowest=(chrt --idle 0)
command -v ionice >/dev/null 2>&1 && lowest+=(ionice -c 3)
mkdir -p "$(dirname "$BACKGROUND_LOG")"
installs_lock="$CACHE_ROOT/logs/.installs.lock"
exec 8>"$installs_lock"
flock 8  # released when the installs are done; the node's build waits for it
log "background: ${lowest[*]} make control-plane, then cluster-images (log: $BACKGROUND_LOG)"
# shellcheck disable=SC2016  # $1 is the inner bash's: the lock's path
setsid "${lowest[@]}" bash -c 'make --no-print-directory control-plane \
  && flock "$1" make --no-print-directory cluster-images' background "$installs_lock" \
  8>&- >"$BACKGROUND_LOG" 2>&1 &
BACKGROUND=$!
stop_background() { kill -- "-$BACKGROUND" 2>/dev/null || true; }
trap stop_background EXIT

make --no-print-directory "${INSTALLS[@]}"
flock -u 8
exec 8>&-
make --no-print-directory lint typecheck

failed=()
read -ra extra <<<"${PYTEST_ARGS:-}"
for i in "${!PHASE_NAMES[@]}"; do
  name="${PHASE_NAMES[$i]}"
  read -ra needs <<<"${PHASE_NEEDS[$i]}"
  if ((${#needs[@]})); then
    log "phase '$name': make ${needs[*]} (waits for the background build, or builds it)"
    if ! make --no-print-directory "${needs[@]}"; then
      failed+=("make ${needs[*]}")
      continue
    fi
  fi
  read -ra dirs <<<"${PHASE_DIRS[$i]}"
  log "phase '$name': pytest ${dirs[*]/#/$TESTS_ROOT/}"
  # --durations: where a cold or a slow run spent its time, phase by phase
  "$PYTEST" --durations=10 "${extra[@]}" "${dirs[@]/#/$TESTS_ROOT/}" \
    || failed+=("pytest phase '$name'")
done

# by now every background target has been made in the foreground too, so the
# background is done or about to be; its status is for the log only
set +e
wait "$BACKGROUND"
background_rc=$?
set -e
trap - EXIT
log "background build exited $background_rc (log: $BACKGROUND_LOG)"

if ((${#failed[@]})); then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "every phase passed"
