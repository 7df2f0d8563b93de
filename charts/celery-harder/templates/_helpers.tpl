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

{{/* ---------------- Redis connection ---------------- */}}

{{- define "celery-harder.redis.host" -}}
{{- if .Values.redis.enabled }}
{{- include "celery-harder.componentName" (dict "root" . "component" "redis") }}
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

{{/* True ("true") when the chart itself must create the Redis password Secret. */}}
{{- define "celery-harder.redis.createSecret" -}}
{{- if .Values.redis.enabled }}
{{- if not .Values.redis.auth.existingSecret }}true{{ end }}
{{- else if not .Values.externalRedis.existingSecret }}
{{- if not .Values.externalRedis.password }}
{{- fail "externalRedis: set externalRedis.password or externalRedis.existingSecret (celery-harder always talks to Redis with a password)" }}
{{- end }}true
{{- end }}
{{- end }}

{{/* redis:// URL with the password expanded by the kubelet from $(REDIS_PASSWORD). */}}
{{- define "celery-harder.redis.url" -}}
{{- printf "redis://:$(REDIS_PASSWORD)@%s:%s/%s" (include "celery-harder.redis.host" .) (include "celery-harder.redis.port" .) (include "celery-harder.redis.database" .) }}
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

{{/* Checksum annotations that roll pods when the shared config or chart-provided credentials change. */}}
{{- define "celery-harder.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/credentials: {{ toJson (list .Values.redis.auth .Values.externalRedis .Values.flower.basicAuth) | sha256sum }}
{{- end }}

{{/* ---------------- Worker timing ---------------- */}}

{{/* Validates the Celery time settings and prints the worker's terminationGracePeriodSeconds. */}}
{{- define "celery-harder.worker.gracePeriod" -}}
{{- $c := .Values.celery }}
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
{{- $grace := .Values.worker.terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $grace }}
{{- add $minimum (int .Values.worker.gracePeriodBuffer) }}
{{- else if lt (int $grace) $minimum }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must be at least celery.taskTimeLimit + celery.softShutdownTimeout (%d) so that scale-in never kills a running task" (int $grace) $minimum) }}
{{- else }}
{{- int $grace }}
{{- end }}
{{- end }}

{{/* Redis keys Celery's Redis transport uses for the queue: the queue itself, then <queue>\x06\x16<step> per priority step. */}}
{{- define "celery-harder.queueKeys" -}}
{{- $keys := list .Values.celery.queue }}
{{- range .Values.keda.prioritySteps }}
{{- $keys = append $keys (printf "%s\x06\x16%d" $.Values.celery.queue (int .)) }}
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
{{- end }}

{{- define "celery-harder.appVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: {{ .Values.celery.dataDir }}
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

{{/* Random secret value kept across upgrades via lookup. Call with (dict "root" $ "name" secretName "key" key "length" 32). */}}
{{- define "celery-harder.persistentRandom" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing (hasKey $existing "data") (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum (int .length) }}
{{- end }}
{{- end }}
