{{/*
Helpers for the celery-harder chart. Every helper is prefixed `celery-harder.`.
*/}}

{{- define "celery-harder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "celery-harder.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "celery-harder.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component's objects: <fullname>-<component>. Call with (dict "root" $ "component" "api"). */}}
{{- define "celery-harder.componentName" -}}
{{- printf "%s-%s" (include "celery-harder.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels common to every object. Call with (dict "root" $ "component" "api"). */}}
{{- define "celery-harder.labels" -}}
helm.sh/chart: {{ include "celery-harder.chart" .root }}
{{ include "celery-harder.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: celery-harder
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels. Call with (dict "root" $ "component" "api"). */}}
{{- define "celery-harder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "celery-harder.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Image reference. Call with (dict "root" $ "image" .Values.api.image). Never `latest`. */}}
{{- define "celery-harder.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag | toString }}
{{- if eq $tag "latest" }}
{{- fail (printf "image %s: the tag `latest` is not allowed; pin a version" .image.repository) }}
{{- end }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}

{{/*
In-cluster DNS name of one of the chart's Services: <service>.<namespace>.svc.
Components in other namespaces (KEDA's operator reads Redis from its own
namespace) resolve it, and the short name would not. The cluster domain
(`cluster.local` or another) is not written out: every pod with the default
`dnsPolicy: ClusterFirst` has `<cluster-domain>` in its DNS search list, so
`<service>.<namespace>.svc` resolves whatever the domain is.
Call with (dict "root" $ "component" "redis").
*/}}
{{- define "celery-harder.serviceHost" -}}
{{- printf "%s.%s.svc" (include "celery-harder.componentName" .) .root.Release.Namespace }}
{{- end }}

{{/* ---------------- Redis connection ---------------- */}}

{{/* Redis host for every client (pods, KEDA, the exporter): the in-chart Service as <svc>.<namespace>.svc, or externalRedis.host as given. */}}
{{- define "celery-harder.redis.host" -}}
{{- if .Values.redis.enabled }}
{{- include "celery-harder.serviceHost" (dict "root" . "component" "redis") }}
{{- else }}
{{- required "externalRedis.host is required when redis.enabled is false" .Values.externalRedis.host }}
{{- end }}
{{- end }}

{{- define "celery-harder.redis.port" -}}
{{- if .Values.redis.enabled }}6379{{ else }}{{ .Values.externalRedis.port }}{{ end }}
{{- end }}

{{- define "celery-harder.redis.database" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.database }}{{ else }}{{ .Values.externalRedis.database }}{{ end }}
{{- end }}

{{/* Name of the Secret that holds the Redis password. */}}
{{- define "celery-harder.redis.secretName" -}}
{{- if and .Values.redis.enabled .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecret }}
{{- else if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecret }}
{{- else }}
{{- include "celery-harder.componentName" (dict "root" . "component" "redis") }}
{{- end }}
{{- end }}

{{- define "celery-harder.redis.secretKey" -}}
{{- if and .Values.redis.enabled .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecretPasswordKey }}
{{- else }}redis-password
{{- end }}
{{- end }}

{{/* "true" when the chart renders the Redis password Secret itself: a password given in values. */}}
{{- define "celery-harder.redis.createSecret" -}}
{{- if .Values.redis.enabled }}
{{- if and .Values.redis.auth.password (not .Values.redis.auth.existingSecret) }}true{{ end }}
{{- else if not .Values.externalRedis.existingSecret }}
{{- if not .Values.externalRedis.password }}
{{- fail "externalRedis: set externalRedis.password or externalRedis.existingSecret (celery-harder always talks to Redis with a password)" }}
{{- end }}true
{{- end }}
{{- end }}

{{/* "true" when the Redis password is generated in the cluster by the `<release>-secrets` hook Job (in-chart Redis, no password, no existingSecret). */}}
{{- define "celery-harder.redis.generated" -}}
{{- if and .Values.redis.enabled (not .Values.redis.auth.password) (not .Values.redis.auth.existingSecret) }}true{{ end }}
{{- end }}

{{/* The data of the rendered Redis Secret (base64 values), as JSON. */}}
{{- define "celery-harder.redis.secretData" -}}
{{- $password := ternary .Values.redis.auth.password .Values.externalRedis.password (eq (toString .Values.redis.enabled) "true") }}
{{- toJson (dict "redis-password" ($password | b64enc)) }}
{{- end }}

{{/* "true" when clients reach Redis over TLS (an external Redis with externalRedis.tls.enabled). */}}
{{- define "celery-harder.redis.tls" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.tls.enabled }}true{{ end }}
{{- end }}

{{/* Where client pods find the external Redis' CA bundle; empty without externalRedis.tls.caSecret. */}}
{{- define "celery-harder.redis.caFile" -}}
{{- if and (include "celery-harder.redis.tls" .) .Values.externalRedis.tls.caSecret }}
{{- printf "/etc/celery-harder/redis-ca/%s" .Values.externalRedis.tls.caSecretKey }}
{{- end }}
{{- end }}

{{- define "celery-harder.redis.username" -}}
{{- if not .Values.redis.enabled }}{{ .Values.externalRedis.username }}{{ end }}
{{- end }}

{{/*
Broker and result backend URL, the password expanded by the kubelet from
$(REDIS_PASSWORD). With TLS: rediss://, and the certificate always verified
(kombu would otherwise default a bare rediss:// to CERT_NONE); the query parameters
are read alike by kombu, Celery's Redis backend and redis-py.
*/}}
{{- define "celery-harder.redis.url" -}}
{{- $tls := include "celery-harder.redis.tls" . }}
{{- $url := printf "%s://%s:$(REDIS_PASSWORD)@%s:%s/%s" (ternary "rediss" "redis" (eq $tls "true")) (include "celery-harder.redis.username" .) (include "celery-harder.redis.host" .) (include "celery-harder.redis.port" .) (include "celery-harder.redis.database" .) }}
{{- if $tls }}
{{- $url = printf "%s?ssl_cert_reqs=required" $url }}
{{- with include "celery-harder.redis.caFile" . }}
{{- $url = printf "%s&ssl_ca_certs=%s" $url . }}
{{- end }}
{{- end }}
{{- $url }}
{{- end }}

{{/* The CA bundle's volume for a client pod, when externalRedis.tls.caSecret is set. */}}
{{- define "celery-harder.redis.caVolume" -}}
{{- if include "celery-harder.redis.caFile" . }}
- name: redis-ca
  secret:
    secretName: {{ .Values.externalRedis.tls.caSecret }}
{{- end }}
{{- end }}

{{- define "celery-harder.redis.caVolumeMount" -}}
{{- if include "celery-harder.redis.caFile" . }}
- name: redis-ca
  mountPath: /etc/celery-harder/redis-ca
  readOnly: true
{{- end }}
{{- end }}

{{/*
Broker environment for every app container: the password from the Secret first,
then the URLs that reference it (env expansion only sees earlier variables).
*/}}
{{- define "celery-harder.brokerEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "celery-harder.redis.secretName" . }}
      key: {{ include "celery-harder.redis.secretKey" . }}
- name: CELERY_BROKER_URL
  value: {{ include "celery-harder.redis.url" . | quote }}
- name: CELERY_RESULT_BACKEND
  value: {{ include "celery-harder.redis.url" . | quote }}
{{- end }}

{{/* ---------------- Shared config and checksums ---------------- */}}

{{- define "celery-harder.configMapName" -}}
{{- include "celery-harder.componentName" (dict "root" . "component" "config") }}
{{- end }}

{{/* Checksum annotations that roll app pods when the shared config or the Redis credentials change. */}}
{{- define "celery-harder.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/credentials: {{ include "celery-harder.redis.credentialsState" . | sha256sum }}
{{- end }}

{{/*
State of one credentials Secret, hashed into checksum annotations. Never random, so
`helm template` renders the same bytes every time. Call with
(dict "root" $ "name" secretName "keys" (list key...) "data" renderedDataJson "generated" "true"/"").
- a Secret the chart renders (password in values): its rendered data;
- otherwise the live Secret, read with `lookup` (helm install/upgrade; `helm template`
  and Argo CD get nothing back):
  - generated by the hook Job and unchanged since (its celery-harder.io/data-sha256
    annotation matches its data): "generated:<revision that created it>";
  - any other (existingSecret, or a generated one edited by hand): its keys' values,
    so a changed Secret rolls the pods on the next upgrade;
- no live Secret: "generated:<this revision>" for a generated one (the hook Job creates
  it during this install or upgrade and records this revision, so the next upgrade
  computes the same state and rolls nothing; after a deletion the state changes and
  every pod restarts onto the new password); "absent" otherwise.
*/}}
{{- define "celery-harder.secretState" -}}
{{- if .data }}
{{- printf "rendered:%s" (.data | sha256sum) }}
{{- else }}
{{- $live := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if $live }}
{{- $data := dig "data" dict $live }}
{{- if and .generated (eq (dig "metadata" "annotations" "celery-harder.io/data-sha256" "" $live) (toJson $data | sha256sum)) }}
{{- printf "generated:%s" (dig "metadata" "annotations" "celery-harder.io/created-at-revision" "" $live) }}
{{- else }}
{{- $values := list }}
{{- range .keys }}{{ $values = append $values (get $data .) }}{{ end }}
{{- printf "data:%s" (toJson $values | sha256sum) }}
{{- end }}
{{- else if .generated }}
{{- printf "generated:%d" (int .root.Release.Revision) }}
{{- else }}absent
{{- end }}
{{- end }}
{{- end }}

{{/* State of the Redis password Secret (see celery-harder.secretState). */}}
{{- define "celery-harder.redis.credentialsState" -}}
{{- $_ := include "celery-harder.redis.host" . }}{{/* a missing externalRedis.host is reported first */}}
{{- $data := "" }}
{{- if include "celery-harder.redis.createSecret" . }}{{ $data = include "celery-harder.redis.secretData" . }}{{ end }}
{{- include "celery-harder.secretState" (dict "root" . "name" (include "celery-harder.redis.secretName" .) "keys" (list (include "celery-harder.redis.secretKey" .)) "data" $data "generated" (include "celery-harder.redis.generated" .)) }}
{{- end }}

{{/* State of the Flower basic-auth Secret, with the user name (a rename rolls Flower). */}}
{{- define "celery-harder.flower.credentialsState" -}}
{{- $data := "" }}
{{- if include "celery-harder.flower.createSecret" . }}{{ $data = include "celery-harder.flower.secretData" . }}{{ end }}
{{- $state := include "celery-harder.secretState" (dict "root" . "name" (include "celery-harder.flower.secretName" .) "keys" (list (include "celery-harder.flower.secretKey" .)) "data" $data "generated" (include "celery-harder.flower.generated" .)) }}
{{- printf "%s user:%s" $state .Values.flower.basicAuth.username }}
{{- end }}

{{/* ---------------- Flower basic auth ---------------- */}}

{{- define "celery-harder.flower.auth" -}}
{{- if and .Values.flower.enabled .Values.flower.basicAuth.enabled }}true{{ end }}
{{- end }}

{{- define "celery-harder.flower.secretName" -}}
{{- .Values.flower.basicAuth.existingSecret | default (include "celery-harder.componentName" (dict "root" . "component" "flower")) }}
{{- end }}

{{- define "celery-harder.flower.secretKey" -}}
{{- if .Values.flower.basicAuth.existingSecret }}{{ .Values.flower.basicAuth.existingSecretKey }}{{ else }}basic-auth{{ end }}
{{- end }}

{{/* "true" when the chart renders the Flower Secret: a password given in values. */}}
{{- define "celery-harder.flower.createSecret" -}}
{{- if and (include "celery-harder.flower.auth" .) .Values.flower.basicAuth.password (not .Values.flower.basicAuth.existingSecret) }}true{{ end }}
{{- end }}

{{/* "true" when the Flower password is generated in the cluster by the hook Job. */}}
{{- define "celery-harder.flower.generated" -}}
{{- if and (include "celery-harder.flower.auth" .) (not .Values.flower.basicAuth.password) (not .Values.flower.basicAuth.existingSecret) }}true{{ end }}
{{- end }}

{{- define "celery-harder.flower.secretData" -}}
{{- $b := .Values.flower.basicAuth }}
{{- toJson (dict "username" ($b.username | b64enc) "password" ($b.password | b64enc) "basic-auth" (printf "%s:%s" $b.username $b.password | b64enc)) }}
{{- end }}

{{/* ---------------- API keys ---------------- */}}

{{/* "true" when the API asks for an X-API-Key. */}}
{{- define "celery-harder.api.auth" -}}
{{- if .Values.api.auth.enabled }}true{{ end }}
{{- end }}

{{/* Name of the Secret with the accepted API keys: api.auth.existingSecret, or the generated <fullname>-api-keys. */}}
{{- define "celery-harder.api.keysSecretName" -}}
{{- .Values.api.auth.existingSecret | default (include "celery-harder.componentName" (dict "root" . "component" "api-keys")) }}
{{- end }}

{{- define "celery-harder.api.keysSecretKey" -}}
{{- if .Values.api.auth.existingSecret }}{{ .Values.api.auth.existingSecretKey }}{{ else }}api-keys{{ end }}
{{- end }}

{{/* "true" when the API key is generated in the cluster by the hook Job (auth on, no existingSecret). */}}
{{- define "celery-harder.api.keysGenerated" -}}
{{- if and (include "celery-harder.api.auth" .) (not .Values.api.auth.existingSecret) }}true{{ end }}
{{- end }}

{{/* State of the API keys Secret (see celery-harder.secretState): a change rolls the API. */}}
{{- define "celery-harder.api.keysState" -}}
{{- if include "celery-harder.api.auth" . }}
{{- include "celery-harder.secretState" (dict "root" . "name" (include "celery-harder.api.keysSecretName" .) "keys" (list (include "celery-harder.api.keysSecretKey" .)) "data" "" "generated" (include "celery-harder.api.keysGenerated" .)) }}
{{- else }}off
{{- end }}
{{- end }}

{{/* The API's auth environment: on with the keys from the Secret, or off. */}}
{{- define "celery-harder.api.authEnv" -}}
- name: CELERY_HARDER_API_AUTH
  value: {{ include "celery-harder.api.auth" . | default "false" | quote }}
{{- if include "celery-harder.api.auth" . }}
- name: CELERY_HARDER_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "celery-harder.api.keysSecretName" . }}
      key: {{ include "celery-harder.api.keysSecretKey" . }}
{{- end }}
{{- end }}

{{/* ---------------- Generated Secrets (hook Job) ---------------- */}}

{{/*
Labels of a Secret the hook Job creates. No app.kubernetes.io/instance and no
managed-by Helm: the Secret is not part of the release, and Argo CD's label tracking
(app.kubernetes.io/instance) would otherwise count it as the app's and prune it.
Call with (dict "root" $ "component" "redis").
*/}}
{{- define "celery-harder.generatedSecretLabels" -}}
app.kubernetes.io/name: {{ include "celery-harder.name" .root }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: celery-harder
celery-harder.io/release: {{ .root.Release.Name }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Hook annotations of the hook Job and its RBAC. Call with the hook weight as a string. */}}
{{- define "celery-harder.secretsHookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}

{{/* ---------------- Worker timing ---------------- */}}

{{/* Validates the Celery time settings and prints the default pool's terminationGracePeriodSeconds. */}}
{{- define "celery-harder.worker.gracePeriod" -}}
{{- include "celery-harder.pool.gracePeriod" (dict "root" . "grace" .Values.worker.terminationGracePeriodSeconds "what" "worker.terminationGracePeriodSeconds") }}
{{- end }}

{{/*
Validates the Celery time settings and prints one pool's terminationGracePeriodSeconds:
at least the hard task time limit plus the soft-shutdown timeout.
Call with (dict "root" $ "grace" <value or null> "what" <the value's name in messages>).
*/}}
{{- define "celery-harder.pool.gracePeriod" -}}
{{- $c := .root.Values.celery }}
{{- $hard := int $c.taskTimeLimit }}
{{- $soft := int $c.taskSoftTimeLimit }}
{{- $shutdown := int $c.softShutdownTimeout }}
{{- $minimum := add $hard $shutdown }}
{{- if ge $soft $hard }}
{{- fail (printf "celery.taskSoftTimeLimit (%d) must be below celery.taskTimeLimit (%d)" $soft $hard) }}
{{- end }}
{{- if le (int $c.visibilityTimeout) $minimum }}
{{- fail (printf "celery.visibilityTimeout (%d) must exceed celery.taskTimeLimit + celery.softShutdownTimeout (%d), or Redis redelivers tasks that are still running" (int $c.visibilityTimeout) $minimum) }}
{{- end }}
{{- $grace := .grace }}
{{- if kindIs "invalid" $grace }}
{{- add $minimum (int .root.Values.worker.gracePeriodBuffer) }}
{{- else if lt (int $grace) $minimum }}
{{- fail (printf "%s (%d) must be at least celery.taskTimeLimit + celery.softShutdownTimeout (%d) so that scale-in never kills a running task" .what (int $grace) $minimum) }}
{{- else }}
{{- int $grace }}
{{- end }}
{{- end }}

{{/* ---------------- Worker pools ---------------- */}}

{{/*
Every worker pool as a JSON list, the default pool first. The default pool is
`worker.*` + `keda.*` on `celery.queue` and keeps the component name `worker`, so
its Deployment's name and selector survive `helm upgrade`; a pool of `workers` is
component `worker-<name>` (disjoint selectors: one PDB per pod, no Deployment
adopting another's pods). A pool's unset keys fall back to `worker.*` / `keda.*`,
except `keda.targetPerReplica`, which falls back to the pool's own concurrency.
*/}}
{{- define "celery-harder.workerPools" -}}
{{- $w := .Values.worker }}
{{- $k := .Values.keda }}
{{- $fields := list "concurrency" "profile" "fastPrefetchMultiplier" "replicaCount" "resources" "extraArgs" "terminationGracePeriodSeconds" "nodeSelector" "tolerations" "affinity" "podAnnotations" }}
{{- $kedaFields := list "enabled" "minReplicaCount" "maxReplicaCount" "pollingInterval" "cooldownPeriod" "countInFlight" "activationListLength" "hpaBehavior" }}
{{- $default := dict "name" "default" "component" "worker" "queues" (list .Values.celery.queue) "keda" (deepCopy $k) "what" "worker" }}
{{- range $fields }}{{ $_ := set $default . (get $w .) }}{{ end }}
{{- $pools := list $default }}
{{- $owner := dict }}
{{- $_ := set $owner .Values.celery.queue "default" }}
{{- range $p := .Values.workers }}
{{- if eq $p.name "default" }}
{{- fail "workers: the name `default` is the pool of `worker.*` and `keda.*`; give this pool another name" }}
{{- end }}
{{- $pool := dict "name" $p.name "component" (printf "worker-%s" $p.name) "queues" $p.queues "what" (printf "workers[%s]" $p.name) }}
{{- range $fields }}{{ $_ := set $pool . (ternary (get $p .) (get $w .) (hasKey $p .)) }}{{ end }}
{{- $pk := default dict $p.keda }}
{{- $keda := dict "prioritySteps" $k.prioritySteps "targetPerReplica" (get $pk "targetPerReplica") }}
{{- range $kedaFields }}{{ $_ := set $keda . (ternary (get $pk .) (get $k .) (hasKey $pk .)) }}{{ end }}
{{- $_ := set $pool "keda" $keda }}
{{- range $q := $p.queues }}
{{- if hasKey $owner $q }}
{{- fail (printf "queue %q is consumed by pools %s and %s: give each queue one pool, so that one ScaledObject counts it" $q (get $owner $q) $p.name) }}
{{- end }}
{{- $_ := set $owner $q $p.name }}
{{- end }}
{{- $pools = append $pools $pool }}
{{- end }}
{{- toJson $pools }}
{{- end }}

{{/* The Redis hash a pool's workers keep their in-flight messages in (CELERY_HARDER_UNACKED_KEY): kombu's `unacked` for the default pool, `unacked-<pool>` for the others, so that each ScaledObject counts its own pool's running work. Call with a pool of workerPools. */}}
{{- define "celery-harder.poolUnackedKey" -}}
{{- if eq .name "default" }}unacked{{ else }}unacked-{{ .name }}{{ end }}
{{- end }}

{{/* Every configured queue, the default queue first (CELERY_HARDER_QUEUES, the exporter's queues). */}}
{{- define "celery-harder.allQueues" -}}
{{- $queues := list }}
{{- range include "celery-harder.workerPools" . | fromJsonArray }}
{{- $queues = concat $queues .queues }}
{{- end }}
{{- toJson (uniq $queues) }}
{{- end }}

{{/* Labels of one pool's objects. Call with (dict "root" $ "pool" <a pool of workerPools>). */}}
{{- define "celery-harder.poolLabels" -}}
{{ include "celery-harder.labels" (dict "root" .root "component" .pool.component) }}
celery-harder.io/pool: {{ .pool.name }}
{{- end }}

{{/* KEDA's target per replica of one pool (waiting + in-flight tasks): its keda.targetPerReplica, or its concurrency when null. Call with a pool of workerPools. */}}
{{- define "celery-harder.keda.target" -}}
{{- $t := .keda.targetPerReplica }}
{{- /* null in values, or absent from a pool's keda (sprig's `get` then gives ""). */}}
{{- if or (kindIs "invalid" $t) (eq (toString $t) "") }}{{ int .concurrency }}{{ else }}{{ int $t }}{{ end }}
{{- end }}

{{/* Redis keys Celery's Redis transport uses for some queues: each queue itself, then <queue>\x06\x16<step> per priority step. Call with (dict "root" $ "queues" (list ...)). */}}
{{- define "celery-harder.queueKeys" -}}
{{- $keys := list }}
{{- range $q := .queues }}
{{- $keys = append $keys $q }}
{{- range $.root.Values.keda.prioritySteps }}
{{- $keys = append $keys (printf "%s\x06\x16%d" $q (int .)) }}
{{- end }}
{{- end }}
{{- toJson $keys }}
{{- end }}

{{/* ---------------- Security ---------------- */}}

{{/* Pod securityContext. Call with (dict "root" $ "uid" 10001). */}}
{{- define "celery-harder.podSecurityContext" -}}
{{- $p := .root.Values.podSecurityContext }}
{{- $uid := default $p.runAsUser .uid -}}
runAsNonRoot: true
runAsUser: {{ $uid }}
runAsGroup: {{ default $p.runAsGroup .uid }}
fsGroup: {{ default $p.fsGroup .uid }}
seccompProfile:
  type: {{ $p.seccompProfileType }}
{{- end }}

{{/* Container securityContext, the same for every container. */}}
{{- define "celery-harder.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: {{ .Values.podSecurityContext.seccompProfileType }}
{{- end }}

{{/* Shared app environment: the ConfigMap plus the broker URLs. */}}
{{- define "celery-harder.appEnvFrom" -}}
- configMapRef:
    name: {{ include "celery-harder.configMapName" . }}
{{- end }}

{{/* Writable emptyDirs every app container mounts (read-only root filesystem). */}}
{{- define "celery-harder.appVolumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- include "celery-harder.redis.caVolume" . }}
{{- end }}

{{- define "celery-harder.appVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.celery.dataDir }}
{{- include "celery-harder.redis.caVolumeMount" . }}
{{- end }}

{{/* Common pod scheduling fields. Call with the component's values. */}}
{{- define "celery-harder.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "celery-harder.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
