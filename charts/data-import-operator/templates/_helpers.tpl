{{/* The prefix of every object's name: "data-import" for release "data-import". */}}
{{- define "dio.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "data-import" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-data-import" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "dio.labels" -}}
app.kubernetes.io/name: data-import-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: data-import-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pod selector, as config/manager's (it is immutable on a Deployment). */}}
{{- define "dio.selectorLabels" -}}
app.kubernetes.io/name: data-import-operator
control-plane: controller-manager
{{- end -}}

{{- define "dio.managerName" -}}{{ include "dio.fullname" . }}-controller-manager{{- end -}}

{{- define "dio.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Refuse values that would break the store or the manager at run time. */}}
{{- define "dio.validate" -}}
{{- if not (has .Values.store.type (list "sqlite" "postgres")) -}}
{{- fail (printf "store.type %q: want sqlite or postgres" .Values.store.type) -}}
{{- end -}}
{{- if and (eq .Values.store.type "sqlite") (gt (int .Values.replicaCount) 1) -}}
{{- fail (printf "replicaCount %d with store.type sqlite: the SQLite file on its ReadWriteOnce volume must never be opened by two pods; use store.type postgres for more replicas" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicaCount > 1 needs leaderElection.enabled: only one replica may run discoveries" -}}
{{- end -}}
{{- if and (gt (int .Values.sharding.shards) 0) (ne .Values.store.type "postgres") -}}
{{- fail "sharding.shards needs store.type postgres: the SQLite store is a file one replica opens" -}}
{{- end -}}
{{- if and (eq .Values.store.type "postgres") (not .Values.store.postgres.secretName) -}}
{{- fail "store.type postgres needs store.postgres.secretName (a Secret with the DSN)" -}}
{{- end -}}
{{- end -}}

{{/* The manager's arguments, in config/manager's order; empty optional values are not passed. */}}
{{- define "dio.args" -}}
{{- if .Values.leaderElection.enabled }}
- --leader-elect
{{- end }}
- --health-probe-bind-address=:{{ .Values.health.port }}
{{- if .Values.metrics.enabled }}
- --metrics-bind-address=:{{ .Values.metrics.port }}
{{- if .Values.metrics.secure }}
- --metrics-secure
{{- end }}
{{- if include "dio.metricsCertSecret" . }}
- --metrics-cert-dir=/etc/data-import/metrics-certs
{{- end }}
{{- else }}
- --metrics-bind-address=0
{{- end }}
{{- if eq .Values.store.type "sqlite" }}
- --data-dir={{ .Values.store.sqlite.dataDir }}
{{- else }}
- --store=$(STORE_DSN)
{{- end }}
- --spool-dir={{ .Values.spool.dir }}
- --concurrent-files={{ .Values.limits.concurrentFiles }}
- --max-file-size={{ .Values.limits.maxFileSize }}
- --max-daily-limit={{ .Values.limits.maxDailyLimit }}
{{- if .Values.receiver.enabled }}
- --receiver-bind-address=:{{ .Values.receiver.port }}
{{- with .Values.receiver.snsConfirmHosts }}
- {{ printf "--receiver-sns-confirm-hosts=%v" . | quote }}
{{- end }}
{{- else }}
- --receiver-bind-address=0
{{- end }}
{{- if gt (int .Values.sharding.shards) 0 }}
- --shards={{ .Values.sharding.shards }}
{{- end }}
{{- with .Values.limits.concurrentSources }}
- {{ printf "--concurrent-sources=%v" . | quote }}
{{- end }}
{{- with .Values.limits.filesPerSource }}
- {{ printf "--files-per-source=%v" . | quote }}
{{- end }}
{{- with .Values.limits.maxFileAttempts }}
- {{ printf "--max-file-attempts=%v" . | quote }}
{{- end }}
{{- with .Values.network.allowedEndpoints }}
- {{ printf "--allowed-endpoints=%v" . | quote }}
{{- end }}
{{- with .Values.network.operatorIdentityEndpoints }}
- {{ printf "--operator-identity-endpoints=%v" . | quote }}
{{- end }}
{{- with .Values.network.allowedCIDRs }}
- {{ printf "--allowed-cidrs=%v" . | quote }}
{{- end }}
{{- with .Values.network.deniedCIDRs }}
- {{ printf "--denied-cidrs=%v" . | quote }}
{{- end }}
{{- with .Values.identity.operatorIdentityNamespaceSelector }}
- {{ printf "--operator-identity-namespace-selector=%v" . | quote }}
{{- end }}
{{- with .Values.identity.stsEndpoint }}
- {{ printf "--sts-endpoint=%v" . | quote }}
{{- end }}
{{- with .Values.identity.stsAudience }}
- {{ printf "--sts-audience=%v" . | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The Secret the manager serves metrics with: metrics.certSecret, or the one the chart's cert-manager Certificate writes. */}}
{{- define "dio.metricsCertSecret" -}}
{{- if .Values.metrics.certSecret -}}
{{ .Values.metrics.certSecret }}
{{- else if .Values.metrics.certManager.enabled -}}
{{ include "dio.fullname" . }}-metrics-server-cert
{{- end -}}
{{- end -}}
