{{/*
Names and labels shared by every object of the chart. All helpers carry the chart prefix.
*/}}

{{/* The chart name, overridable. */}}
{{- define "llmagents.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The objects' base name: "<release>-<chart>", or just the release name when it already
contains the chart name. Kubernetes names are limited to 63 characters.
*/}}
{{- define "llmagents.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "llmagents.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object of the chart, without a component. */}}
{{- define "llmagents.baseLabels" -}}
helm.sh/chart: {{ include "llmagents.chart" . }}
app.kubernetes.io/name: {{ include "llmagents.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llmagents
{{- end -}}

{{/* Labels that select the operator's pods; never change them in an upgrade. */}}
{{- define "llmagents.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmagents.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "llmagents.labels" -}}
{{ include "llmagents.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The metrics Service: a Service name is a DNS label, at most 63 characters. */}}
{{- define "llmagents.metricsService" -}}
{{- printf "%s-metrics" (include "llmagents.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "llmagents.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llmagents.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: a digest wins over a tag; the tag defaults to appVersion. */}}
{{- define "llmagents.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The image of agent pods. */}}
{{- define "llmagents.runnerImage" -}}
{{- default (include "llmagents.image" .) .Values.runner.image -}}
{{- end -}}

{{/* Job names the alerts match; the ServiceMonitors set them (see prometheus_rules/). */}}
{{- define "llmagents.operatorJob" -}}llmagents-operator{{- end -}}
{{- define "llmagents.runnerJob" -}}llmagents-runner{{- end -}}

{{/*
The operator's rights on agents and their children (llmagents.operator.rbac.operator_rules()
without the Lease; a unit test keeps the two equal): a ClusterRole's rules, or each watched
namespace's Role's.
*/}}
{{- define "llmagents.operatorRules" -}}
# Watched through kopf's indexes.
- apiGroups: [llmagents.dev]
  resources: [llmagents, providerpools]
  verbs: [get, list, watch]
# The operator's half of the status; runners get llmagents/status (get, patch) from it.
- apiGroups: [llmagents.dev]
  resources: [llmagents/status, providerpools/status]
  verbs: [get, patch, update]
# Children carry blockOwnerDeletion owner references, which clusters running the
# OwnerReferencesPermissionEnforcement admission plugin allow only with this right.
- apiGroups: [llmagents.dev]
  resources: [llmagents/finalizers]
  verbs: [update]
# Each agent's children: server-side applied (which creates); Deployments watched for drift,
# the rest listed at startup and every operator.resyncSeconds.
- apiGroups: [""]
  resources: [configmaps, services, serviceaccounts]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, update, patch, delete]
# Whether a provider's Secret and key exist and the value can be an API key; only key
# names and that verdict are kept, never values.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# kopf posts warnings as Events on the objects they concern; the operator's own Events
# (llmagents.events) are listed once per object to continue their series after a restart.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch, list]
{{- end -}}

{{/*
OTEL_RESOURCE_ATTRIBUTES from a map: key=value pairs joined by commas, each value
URL-encoded (the variable's format percent-encodes commas and equals signs in values).
*/}}
{{- define "llmagents.resourceAttributes" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}
{{- /* urlquery writes a space as "+" (a "+" itself as %2B): percent-encoding wants %20 */ -}}
{{- $pairs = append $pairs (printf "%s=%s" $key ($value | urlquery | replace "+" "%20")) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
