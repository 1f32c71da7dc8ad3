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

{{/* Kafka security of one component: kafka.security with kafka.security.users.<user> on top.
(dict "root" $ "user" "detectors") -> a YAML map: protocol, tls, sasl, username, passwordSecret,
passwordKey, caSecret, caKey, certSecret, certKey, keyKey. With strimziUsers the KafkaUser
<fullname>-kafka-<user> and its Secret (Strimzi names it after the user) are the component's
(not the topics Job's: it runs before any KafkaUser exists). */}}
{{- define "driftwarden.kafkaSecurity" -}}
{{- $s := .root.Values.kafka.security -}}
{{- $u := index ($s.users | default dict) .user | default dict -}}
{{- $strimziUser := "" -}}
{{- if and $s.strimziUsers (ne .user "topics") -}}
{{- $strimziUser = include "driftwarden.componentName" (dict "root" .root "component" (printf "kafka-%s" .user)) -}}
{{- end -}}
{{- $tls := or (eq $s.protocol "SSL") (eq $s.protocol "SASL_SSL") -}}
{{- $sasl := hasPrefix "SASL_" $s.protocol -}}
{{- $out := dict "protocol" $s.protocol "tls" $tls "sasl" $sasl -}}
{{- $_ := set $out "username" ($u.username | default $s.username) -}}
{{- $_ := set $out "passwordSecret" ($u.passwordSecret | default $s.passwordSecret) -}}
{{- if and $strimziUser $sasl -}}
{{- /* Strimzi's scram-sha-512 users: the user is the KafkaUser, its Secret has `password` */ -}}
{{- $_ := set $out "username" $strimziUser -}}
{{- $_ := set $out "passwordSecret" $strimziUser -}}
{{- end -}}
{{- $_ := set $out "passwordKey" (ternary "password" $s.passwordKey (ne $strimziUser "")) -}}
{{- $_ := set $out "caSecret" $s.caSecret -}}
{{- $_ := set $out "caKey" $s.caKey -}}
{{- if and $strimziUser (not $sasl) -}}
{{- /* Strimzi's tls users: the Secret holds user.crt and user.key */ -}}
{{- $_ := set $out "certSecret" ($u.certSecret | default $strimziUser) -}}
{{- $_ := set $out "certKey" "user.crt" -}}
{{- $_ := set $out "keyKey" "user.key" -}}
{{- else -}}
{{- $_ := set $out "certSecret" ($u.certSecret | default $s.certSecret) -}}
{{- $_ := set $out "certKey" $s.certKey -}}
{{- $_ := set $out "keyKey" $s.keyKey -}}
{{- end -}}
{{- if $s.strimziUsers -}}
{{- if eq $s.protocol "PLAINTEXT" -}}
{{- fail "kafka.security.strimziUsers needs kafka.security.protocol SASL_SSL or SASL_PLAINTEXT (scram-sha-512 users) or SSL (tls users), not PLAINTEXT" -}}
{{- end -}}
{{- if and $sasl (ne $s.saslMechanism "SCRAM-SHA-512") -}}
{{- fail (printf "kafka.security.strimziUsers makes scram-sha-512 users: kafka.security.saslMechanism must be SCRAM-SHA-512, not %s" $s.saslMechanism) -}}
{{- end -}}
{{- end -}}
{{- if $sasl -}}
{{- if not $out.username -}}
{{- fail (printf "kafka.security.username (or kafka.security.users.%s.username) is required with kafka.security.protocol %s" .user $s.protocol) -}}
{{- end -}}
{{- if not $out.passwordSecret -}}
{{- fail (printf "kafka.security.passwordSecret (or kafka.security.users.%s.passwordSecret) is required with kafka.security.protocol %s" .user $s.protocol) -}}
{{- end -}}
{{- else if or $u.username $u.passwordSecret $s.username $s.passwordSecret -}}
{{- fail (printf "kafka.security.username/passwordSecret need kafka.security.protocol SASL_SSL or SASL_PLAINTEXT, not %s" $s.protocol) -}}
{{- end -}}
{{- if and (not $tls) (or $out.caSecret $out.certSecret) -}}
{{- fail (printf "kafka.security.caSecret/certSecret need kafka.security.protocol SSL or SASL_SSL, not %s" $s.protocol) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Kafka settings of one Kafka client, (dict "root" $ "user" "detectors"): the bootstrap,
the topic prefix and the --kafka-* security group as its DRIFTWARDEN_KAFKA_* variables
(driftwarden.kafka.KAFKA_SECURITY_FLAGS). Secrets are files on a read-only volume
(driftwarden.kafkaVolumes), never values of a variable. */}}
{{- define "driftwarden.kafkaEnv" -}}
{{- $k := include "driftwarden.kafkaSecurity" . | fromYaml -}}
- name: DRIFTWARDEN_BOOTSTRAP
  value: {{ .root.Values.kafka.bootstrap | quote }}
- name: DRIFTWARDEN_TOPIC_PREFIX
  value: {{ .root.Values.kafka.topicPrefix | quote }}
{{- if ne $k.protocol "PLAINTEXT" }}
- name: DRIFTWARDEN_KAFKA_SECURITY_PROTOCOL
  value: {{ $k.protocol | quote }}
{{- end }}
{{- if $k.tls }}
- name: DRIFTWARDEN_KAFKA_VERIFY_HOSTNAME
  value: {{ .root.Values.kafka.security.verifyHostname | quote }}
{{- if $k.caSecret }}
- name: DRIFTWARDEN_KAFKA_CA_FILE
  value: {{ printf "/etc/driftwarden/kafka/ca/%s" $k.caKey | quote }}
{{- end }}
{{- if $k.certSecret }}
- name: DRIFTWARDEN_KAFKA_CERT_FILE
  value: {{ printf "/etc/driftwarden/kafka/client/%s" $k.certKey | quote }}
- name: DRIFTWARDEN_KAFKA_KEY_FILE
  value: {{ printf "/etc/driftwarden/kafka/client/%s" $k.keyKey | quote }}
{{- end }}
{{- end }}
{{- if $k.sasl }}
- name: DRIFTWARDEN_KAFKA_SASL_MECHANISM
  value: {{ .root.Values.kafka.security.saslMechanism | quote }}
- name: DRIFTWARDEN_KAFKA_USERNAME
  value: {{ $k.username | quote }}
- name: DRIFTWARDEN_KAFKA_PASSWORD_FILE
  value: {{ printf "/etc/driftwarden/kafka/sasl/%s" $k.passwordKey | quote }}
{{- end }}
{{- end -}}

{{/* Whole-Secret volumes (no subPath), so the kubelet updates the files when a Secret
changes; only the keys in use are projected. (dict "root" $ "user" "detectors") */}}
{{- define "driftwarden.kafkaVolumeMounts" -}}
{{- $k := include "driftwarden.kafkaSecurity" . | fromYaml -}}
{{- if and $k.tls $k.caSecret }}
- {name: kafka-ca, mountPath: /etc/driftwarden/kafka/ca, readOnly: true}
{{- end }}
{{- if and $k.tls $k.certSecret }}
- {name: kafka-client, mountPath: /etc/driftwarden/kafka/client, readOnly: true}
{{- end }}
{{- if $k.sasl }}
- {name: kafka-sasl, mountPath: /etc/driftwarden/kafka/sasl, readOnly: true}
{{- end }}
{{- end -}}

{{- define "driftwarden.kafkaVolumes" -}}
{{- $k := include "driftwarden.kafkaSecurity" . | fromYaml -}}
{{- if and $k.tls $k.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ $k.caSecret }}
    items: [{key: {{ $k.caKey | quote }}, path: {{ $k.caKey | quote }}}]
    defaultMode: 288  # 0440: owner root, group podSecurityContext.fsGroup
{{- end }}
{{- if and $k.tls $k.certSecret }}
- name: kafka-client
  secret:
    secretName: {{ $k.certSecret }}
    items:
      - {key: {{ $k.certKey | quote }}, path: {{ $k.certKey | quote }}}
      - {key: {{ $k.keyKey | quote }}, path: {{ $k.keyKey | quote }}}
    defaultMode: 288  # 0440: owner root, group podSecurityContext.fsGroup
{{- end }}
{{- if $k.sasl }}
- name: kafka-sasl
  secret:
    secretName: {{ $k.passwordSecret }}
    items: [{key: {{ $k.passwordKey | quote }}, path: {{ $k.passwordKey | quote }}}]
    defaultMode: 288  # 0440: owner root, group podSecurityContext.fsGroup
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
