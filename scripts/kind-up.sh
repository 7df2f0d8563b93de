#!/usr/bin/env bash
# The full T4 path on a user's machine: a kind cluster with KEDA and
# kube-prometheus-stack, the three images built and the chart deployed by
# Skaffold, the chart's `helm test`, and an example TaskWorkflow run to
# Succeeded. Prints the URLs at the end.
#
#   scripts/kind-up.sh            # create (or reuse) the cluster and deploy
#   scripts/kind-up.sh --down     # delete the cluster
#
# Needs: docker (or podman with KIND_EXPERIMENTAL_PROVIDER=podman), kind, kubectl,
# helm v3.8+ (skaffold v2.16 cannot drive helm 4), skaffold v2.15+. It cannot run
# on machines without a container runtime; see the README's Kubernetes section.
#
# Environment (all optional):
#   CLUSTER_NAME        kind cluster name (default: celery-harder, as in kind-config.yaml)
#   NAMESPACE           namespace of the celery-harder release (default: celery-harder)
#   KEDA_VERSION        kedacore/keda chart version (default: the repo's latest)
#   KPS_VERSION         prometheus-community/kube-prometheus-stack chart version (default: latest)
#   EXAMPLE             TaskWorkflow manifest to run (default: k8s/examples/chain.yaml)
#   GRAFANA_PASSWORD    Grafana admin password (default: celery-harder)
#   WAIT_TIMEOUT        timeout for each wait (default: 600s)
#   SKIP_PORT_CHECK=1   do not check that localhost:8000/5555/3000 are free
#   ALLOW_HELM4=1       accept helm 4 (only if your skaffold can drive it)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_NAME="${CLUSTER_NAME:-celery-harder}"
NAMESPACE="${NAMESPACE:-celery-harder}"
RELEASE="celery-harder"
EXAMPLE="${EXAMPLE:-k8s/examples/chain.yaml}"
GRAFANA_PASSWORD="${GRAFANA_PASSWORD:-celery-harder}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-600s}"
CONTEXT="kind-${CLUSTER_NAME}"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'kind-up: ERROR: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"
}

check_prerequisites() {
  need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  need kubectl "https://kubernetes.io/docs/tasks/tools/"
  need helm "https://helm.sh/docs/intro/install/"
  need skaffold "https://skaffold.dev/docs/install/"
  if [[ "${KIND_EXPERIMENTAL_PROVIDER:-docker}" == "podman" ]]; then
    need podman "https://podman.io/docs/installation"
  else
    need docker "https://docs.docker.com/engine/install/"
    docker info >/dev/null 2>&1 || die "docker is installed but the daemon is not reachable (is it running? are you in the docker group?)"
  fi
  [[ -f "$ROOT/kind-config.yaml" ]] || die "kind-config.yaml not found in $ROOT"
  [[ -f "$ROOT/skaffold.yaml" ]] || die "skaffold.yaml not found in $ROOT"
  local helm_version
  helm_version="$(helm version --template '{{.Version}}' 2>/dev/null || true)"
  case "$helm_version" in
    v3.[0-7].*|v2.*|"") die "helm v3.8+ is required (found '${helm_version:-none}')" ;;
    v3.*) ;;
    *)
      # skaffold (checked with v2.16.1) runs `helm version --client`, a flag helm 4 removed.
      [[ "${ALLOW_HELM4:-0}" == 1 ]] \
        || die "skaffold drives helm with flags helm 4 dropped (found $helm_version): put helm v3.8+ first on PATH, or set ALLOW_HELM4=1 if your skaffold supports helm 4"
      ;;
  esac
  if [[ "${SKIP_PORT_CHECK:-0}" != 1 ]] && ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    for port in 8000 5555 3000; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "localhost:$port is already in use; kind-config.yaml maps it to the cluster"
      fi
    done
  fi
  local skaffold_version
  skaffold_version="$(skaffold version 2>/dev/null || true)"
  if [[ ! "$skaffold_version" =~ ^v?([0-9]+)\.([0-9]+) ]] \
      || (( BASH_REMATCH[1] < 2 || (BASH_REMATCH[1] == 2 && BASH_REMATCH[2] < 15) )); then
    die "skaffold v2.15+ is required for skaffold.yaml (apiVersion skaffold/v4beta13); found '${skaffold_version:-none}'"
  fi
  printf 'kind %s | %s | helm %s | %s\n' "$(kind version | awk '{print $2}')" \
    "$(kubectl version --client 2>/dev/null | head -n1)" "$helm_version" \
    "skaffold $skaffold_version" >&2
}

down() {
  log "Deleting kind cluster $CLUSTER_NAME"
  kind delete cluster --name "$CLUSTER_NAME"
}

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    log "kind cluster $CLUSTER_NAME exists; reusing it"
  else
    log "Creating kind cluster $CLUSTER_NAME (kind-config.yaml: API :8000, Flower :5555, Grafana :3000)"
    kind create cluster --name "$CLUSTER_NAME" --config "$ROOT/kind-config.yaml" --wait 120s
  fi
  kubectl config use-context "$CONTEXT" >/dev/null
  kubectl --context "$CONTEXT" wait --for=condition=Ready nodes --all --timeout="$WAIT_TIMEOUT"
}

install_addons() {
  log "Adding Helm repositories (kedacore, prometheus-community)"
  helm repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
  helm repo update kedacore prometheus-community >/dev/null

  log "Installing KEDA into namespace keda"
  helm upgrade --install keda kedacore/keda \
    --kube-context "$CONTEXT" --namespace keda --create-namespace \
    ${KEDA_VERSION:+--version "$KEDA_VERSION"} \
    --wait --timeout "$WAIT_TIMEOUT"

  log "Installing kube-prometheus-stack into namespace monitoring (Grafana on NodePort 30300)"
  # *SelectorNilUsesHelmValues=false: Prometheus picks up the chart's ServiceMonitors
  # and PrometheusRule without a `release` label; the Grafana sidecar loads
  # dashboards labelled grafana_dashboard="1" from every namespace.
  helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
    --kube-context "$CONTEXT" --namespace monitoring --create-namespace \
    ${KPS_VERSION:+--version "$KPS_VERSION"} \
    --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
    --set prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false \
    --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false \
    --set grafana.service.type=NodePort \
    --set grafana.service.nodePort=30300 \
    --set grafana.adminPassword="$GRAFANA_PASSWORD" \
    --set grafana.sidecar.dashboards.enabled=true \
    --set grafana.sidecar.dashboards.label=grafana_dashboard \
    --set-string grafana.sidecar.dashboards.labelValue=1 \
    --set grafana.sidecar.dashboards.searchNamespace=ALL \
    --set alertmanager.enabled=false \
    --wait --timeout "$WAIT_TIMEOUT"
}

deploy() {
  log "Building the images and deploying the chart: skaffold run -p kind"
  (cd "$ROOT" && skaffold run -p kind --kube-context "$CONTEXT" --status-check=true)

  log "helm test $RELEASE (GET /healthz, POST /add without and with the API key, wait for the result)"
  helm test "$RELEASE" --kube-context "$CONTEXT" --namespace "$NAMESPACE" --logs --timeout 5m
}

run_example() {
  local example="$EXAMPLE"
  [[ "$example" == /* ]] || example="$ROOT/$example"
  [[ -f "$example" ]] || die "$EXAMPLE not found"
  log "Applying $EXAMPLE and waiting for it to succeed"
  local objects
  objects="$(kubectl --context "$CONTEXT" -n "$NAMESPACE" apply -f "$example" -o name)"
  printf '%s\n' "$objects"
  local tw
  tw="$(printf '%s\n' "$objects" | grep -m1 '^taskworkflow' || true)"
  [[ -n "$tw" ]] || die "$EXAMPLE created no TaskWorkflow"
  if ! kubectl --context "$CONTEXT" -n "$NAMESPACE" wait --for=jsonpath='{.status.phase}'=Succeeded "$tw" --timeout="$WAIT_TIMEOUT"; then
    kubectl --context "$CONTEXT" -n "$NAMESPACE" get "$tw" -o yaml >&2 || true
    die "$tw did not reach phase Succeeded"
  fi
  kubectl --context "$CONTEXT" -n "$NAMESPACE" get tw
}

print_urls() {
  local flower_password api_key
  flower_password="$(kubectl --context "$CONTEXT" -n "$NAMESPACE" get secret "$RELEASE-flower" \
    -o jsonpath='{.data.password}' 2>/dev/null | base64 -d || true)"
  api_key="$(kubectl --context "$CONTEXT" -n "$NAMESPACE" get secret "$RELEASE-api-keys" \
    -o jsonpath='{.data.api-key}' 2>/dev/null | base64 -d || true)"
  cat <<EOF

celery-harder is running on kind cluster "$CLUSTER_NAME" (context $CONTEXT).

  API      http://localhost:8000         API key (admin: read, submit): ${api_key:-<see secret $RELEASE-api-keys>}
           try: curl -s -X POST localhost:8000/add -H "X-API-Key: ${api_key:-<key>}" -H 'content-type: application/json' -d '{"x": 2, "y": 3}'
           http://localhost:8000/docs
  Flower   http://localhost:5555         user admin, password ${flower_password:-<see secret $RELEASE-flower>}
  Grafana  http://localhost:3000         user admin, password $GRAFANA_PASSWORD (dashboard "celery-harder / Celery overview")

  kubectl -n $NAMESPACE get pods,scaledobject,tw
  skaffold dev -p kind        # rebuild and redeploy on every change
  scripts/kind-up.sh --down   # delete the cluster
EOF
}

main() {
  cd "$ROOT"
  case "${1:-}" in
    --down) need kind "https://kind.sigs.k8s.io/"; down; return ;;
    ""|--up) ;;
    -h|--help) sed -n '2,23p' "$0"; return ;;
    *) die "unknown argument: $1 (use --down or --help)" ;;
  esac
  check_prerequisites
  create_cluster
  install_addons
  deploy
  run_example
  print_urls
}

main "$@"
