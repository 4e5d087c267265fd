{{/* Names and labels. */}}
{{- define "streampulse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streampulse.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streampulse.labels" -}}
{{ include "streampulse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "streampulse.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "streampulse.cluster" -}}
{{- if not (has .Values.mode (list "embedded" "cluster")) -}}
{{- fail (printf "mode must be embedded or cluster, not %q" .Values.mode) -}}
{{- end -}}
{{- if eq .Values.mode "cluster" }}true{{ end -}}
{{- end -}}

{{- define "streampulse.tokensSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-tokens" (include "streampulse.fullname" .)) -}}
{{- end -}}

{{- define "streampulse.sharedClaim" -}}
{{- .Values.checkpoint.sharedVolume.existingClaim | default (printf "%s-checkpoints" (include "streampulse.fullname" .)) -}}
{{- end -}}

{{/* The config file (every key: config/application.yaml), with values.config merged over it. */}}
{{- define "streampulse.config" -}}
{{- $v := .Values -}}
{{- $c := dict "data_dir" "/var/lib/streampulse" -}}
{{- $_ := set $c "server" (dict "listen" "0.0.0.0:8080") -}}
{{- $_ := set $c "metrics" (dict "enabled" true "listen" "0.0.0.0:9249") -}}
{{- $_ := set $c "logging" (dict "level" "info" "format" "json") -}}
{{- $_ := set $c "job" (dict "name" $v.job.name) -}}
{{- $checkpoint := dict "interval" $v.checkpoint.interval -}}
{{- if include "streampulse.cluster" . -}}
{{- $_ := set $c "kafka" (dict "brokers" $v.kafka.brokers "topic" $v.kafka.topic "group_id" (printf "streampulse-%s" $v.job.name) "start" "earliest" "dead_letter_topic" $v.kafka.deadLetterTopic "results_topic" $v.kafka.resultsTopic "alerts_topic" $v.kafka.alertsTopic "properties" $v.kafka.properties) -}}
{{- $cassandra := dict "contact_points" $v.cassandra.contactPoints "keyspace" $v.cassandra.keyspace "local_datacenter" $v.cassandra.localDatacenter "replication" $v.cassandra.replication "write_consistency" $v.cassandra.writeConsistency "read_consistency" $v.cassandra.readConsistency "create_schema" false -}}
{{- $_ := set $c "store" (dict "backend" "cassandra" "cassandra" $cassandra) -}}
{{- $_ := set $checkpoint "storage" ($v.checkpoint.storage | default "file:///var/lib/streampulse-checkpoints") -}}
{{- if $v.checkpoint.storageOptions -}}
{{- $_ := set $checkpoint "storage_options" $v.checkpoint.storageOptions -}}
{{- end -}}
{{- end -}}
{{- $_ := set $c "checkpoint" $checkpoint -}}
{{- toYaml (mustMergeOverwrite $c (deepCopy $v.config)) -}}
{{- end -}}

{{/* The environment every StreamPulse container of the chart gets. */}}
{{- define "streampulse.env" -}}
- name: STREAMPULSE_CONFIG
  value: /etc/streampulse/streampulse.yaml
{{- range $var, $key := dict "STREAMPULSE_READ_TOKENS" "read_tokens" "STREAMPULSE_WRITE_TOKENS" "write_tokens" "STREAMPULSE_ADMIN_TOKENS" "admin_tokens" }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ include "streampulse.tokensSecret" $ }}
      key: {{ $key }}
{{- end }}
{{- include "streampulse.storeEnv" . }}
{{- end -}}

{{/* Cassandra credentials (cluster mode). */}}
{{- define "streampulse.storeEnv" -}}
{{- if include "streampulse.cluster" . }}
{{- if .Values.cassandra.passwordSecret.name }}
- name: STREAMPULSE_CASSANDRA_USERNAME
  value: {{ .Values.cassandra.username | quote }}
- name: STREAMPULSE_CASSANDRA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.cassandra.passwordSecret.name }}
      key: {{ .Values.cassandra.passwordSecret.key }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "streampulse.envFrom" -}}
{{- if .Values.checkpoint.objectStoreSecret }}
envFrom:
  - secretRef:
      name: {{ .Values.checkpoint.objectStoreSecret }}
{{- end }}
{{- end -}}

{{- define "streampulse.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "streampulse.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}
