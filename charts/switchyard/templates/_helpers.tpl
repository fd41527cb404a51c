{{/* Names, labels and shared pieces of the Switchyard chart. */}}

{{- define "switchyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: pass (list $ "worker"). */}}
{{- define "switchyard.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "switchyard.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "switchyard.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-keys" (include "switchyard.fullname" .)) -}}
{{- end -}}

{{- define "switchyard.databaseSecret" -}}
{{- required "database.existingSecret must name a Secret holding the PostgreSQL URL" .Values.database.existingSecret -}}
{{- end -}}

{{/* The pod-level security context every Switchyard pod runs with. */}}
{{- define "switchyard.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container-level security context of every Switchyard container. */}}
{{- define "switchyard.containerSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment for reaching the database, shared by the control plane and the migration job. */}}
{{- define "switchyard.databaseEnv" -}}
- name: SWITCHYARD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "switchyard.databaseSecret" . }}
      key: {{ .Values.database.key }}
{{- end -}}

{{/* An environment variable from the keys Secret: pass (list $ NAME KEY) or (list $ NAME KEY true) for a key that may be absent. */}}
{{- define "switchyard.secretEnv" -}}
{{- $ := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "switchyard.secretName" $ }}
      key: {{ index . 2 }}
      {{- if gt (len .) 3 }}
      optional: true
      {{- end }}
{{- end -}}

{{/* Private ranges and cloud metadata: workers never reach them unless upstreamAllow lists them. */}}
{{- define "switchyard.privateRanges" -}}
- 10.0.0.0/8
- 172.16.0.0/12
- 192.168.0.0/16
- 169.254.0.0/16
- 100.64.0.0/10
- 127.0.0.0/8
{{- end -}}

{{/* The NATS credentials file's env, mount and volume, when a credentials Secret is named. */}}
{{- define "switchyard.natsCredsEnv" -}}
{{- if .Values.nats.credentialsSecret }}
- name: SWITCHYARD_NATS_CREDS
  value: /etc/switchyard-nats/nats.creds
{{- end }}
{{- end }}
{{- define "switchyard.otlpEnv" -}}
{{- with .Values.tracing.otlpEndpoint }}
- name: SWITCHYARD_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- /* Egress to the trace collector, when traces are exported. */}}
{{- define "switchyard.otlpEgress" -}}
{{- if .Values.tracing.otlpEndpoint }}
{{- $np := .Values.networkPolicy }}
- {{- with $np.otlp.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - port: {{ $np.otlp.port }}
      protocol: TCP
{{- end }}
{{- end }}
{{- define "switchyard.natsCredsMount" -}}
{{- if .Values.nats.credentialsSecret }}
- name: nats-creds
  mountPath: /etc/switchyard-nats
  readOnly: true
{{- end }}
{{- end }}
{{- define "switchyard.natsCredsVolume" -}}
{{- if .Values.nats.credentialsSecret }}
- name: nats-creds
  secret:
    secretName: {{ .Values.nats.credentialsSecret }}
    items:
      - key: nats.creds
        path: nats.creds
{{- end }}
{{- end }}
