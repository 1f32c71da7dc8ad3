{{/* Names: <fullname> is the release name when it contains the chart name, else
<release>-driftwarden; components are <fullname>-<component>. */}}
{{- define "driftwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftwarden.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "driftwarden.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* (dict "root" $ "component" "detectors") */}}
{{- define "driftwarden.componentName" -}}
{{- printf "%s-%s" (include "driftwarden.fullname" .root) .component -}}
{{- end -}}

{{- define "driftwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftwarden.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "driftwarden.labels" -}}
{{ include "driftwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: driftwarden
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "driftwarden.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels of prometheus-operator objects: kube-prometheus-stack selects them by `release`. */}}
{{- define "driftwarden.monitoringLabels" -}}
{{ include "driftwarden.labels" . }}
{{- with .root.Values.monitoring.release }}
release: {{ . }}
{{- end }}
{{- with .root.Values.monitoring.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "driftwarden.triggerNamespaces" -}}
{{- if .Values.trigger.namespaces -}}
{{- join "," .Values.trigger.namespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "driftwarden.alertmanagerNamespace" -}}
{{- default .Release.Namespace .Values.alertmanager.namespace -}}
{{- end -}}

{{/* Kafka settings every Kafka client gets (DRIFTWARDEN_* environment). */}}
{{- define "driftwarden.kafkaEnv" -}}
- name: DRIFTWARDEN_BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: DRIFTWARDEN_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
{{- with .Values.kafka.security }}
{{- if ne .protocol "PLAINTEXT" }}
- name: DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL
  value: {{ .protocol | quote }}
{{- end }}
{{- if .saslMechanism }}
- name: DRIFTWARDEN_KAFKA_SASL_MECHANISM
  value: {{ .saslMechanism | quote }}
{{- end }}
{{- if .saslSecret }}
- name: DRIFTWARDEN_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ .saslSecret }}, key: username}
- name: DRIFTWARDEN_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .saslSecret }}, key: password}
{{- end }}
{{- if .caSecret }}
- name: DRIFTWARDEN_KAFKA_SSL_CA_LOCATION
  value: /etc/driftwarden/kafka-ca/ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{- define "driftwarden.kafkaVolumeMounts" -}}
{{- if .Values.kafka.security.caSecret }}
- name: kafka-ca
  mountPath: /etc/driftwarden/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "driftwarden.kafkaVolumes" -}}
{{- if .Values.kafka.security.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.security.caSecret }}
{{- end }}
{{- end -}}

{{- define "driftwarden.commonEnv" -}}
- name: DRIFTWARDEN_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: DRIFTWARDEN_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/* Pod-level settings shared by every Deployment: (dict "root" $ "values" .Values.x "component" "x") */}}
{{- define "driftwarden.podSpecCommon" -}}
serviceAccountName: {{ include "driftwarden.componentName" . }}
automountServiceAccountToken: {{ .automount | default false }}
# DRIFTWARDEN_<FLAG> settings must not meet Kubernetes' service-link variables
# (a Service named driftwarden-metrics would set DRIFTWARDEN_METRICS_PORT).
enableServiceLinks: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "driftwarden.pdb" -}}
{{- if .values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "driftwarden.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "driftwarden.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "driftwarden.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
