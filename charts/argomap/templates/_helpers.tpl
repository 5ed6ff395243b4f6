{{/* Chart name, overridable. */}}
{{- define "argomap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name when the release name lacks it. */}}
{{- define "argomap.fullname" -}}
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

{{- define "argomap.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "argomap.labels" -}}
helm.sh/chart: {{ include "argomap.chart" . }}
{{ include "argomap.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: argomap
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "argomap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "argomap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "argomap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "argomap.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "argomap.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The watched namespaces, comma-separated as --namespace takes them: watchNamespaces, else the
release namespace; "" (all namespaces, a ClusterRole) only with watchAllNamespaces.
*/}}
{{- define "argomap.watchNamespaces" -}}
{{- $ns := .Values.watchNamespaces | default list }}
{{- if not (kindIs "slice" $ns) }}
{{- fail "watchNamespaces must be a list of namespace names, e.g. [platform]" }}
{{- end }}
{{- range $ns }}
{{- if not . }}
{{- fail "watchNamespaces has an empty entry" }}
{{- end }}
{{- end }}
{{- if .Values.watchAllNamespaces }}
{{- if $ns }}
{{- fail "watchAllNamespaces and watchNamespaces are both set: list the namespaces, or watch them all" }}
{{- end }}
{{- else if $ns }}
{{- join "," $ns }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Checks of values that span several keys. */}}
{{- define "argomap.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: several replicas without leader election would all check Argo CD and write statuses. Enable leader election or set replicaCount to 1." (int .Values.replicaCount)) }}
{{- end }}
{{- if not (has .Values.logFormat (list "json" "text")) }}
{{- fail (printf "logFormat must be json or text, not %q" (toString .Values.logFormat)) }}
{{- end }}
{{- if not (has (toString .Values.podAntiAffinity) (list "soft" "hard" "")) }}
{{- fail (printf "podAntiAffinity must be soft, hard or empty, not %q" (toString .Values.podAntiAffinity)) }}
{{- end }}
{{- end }}

{{/*
The rules for the watched resources, shared by the ClusterRole (all namespaces) and the Role
(a Role per entry of watchNamespaces). Only what src/controller.rs, src/credentials.rs and src/http.rs call.
*/}}
{{- define "argomap.watchRules" -}}
# ArgoCdInstances and ClusterMappings: list + watch feed the controllers' caches (shared with
# the read API); get reads an ArgoCdInstance by name from the API (never a cache) when a
# ClusterMapping is reconciled, to see whether its instance still exists.
- apiGroups: ["argomap.io"]
  resources: ["argocdinstances", "clustermappings"]
  verbs: ["get", "list", "watch"]
# Statuses only, by server-side apply (PATCH on /status, field manager argomap). argomap never
# creates, updates or deletes these objects, nor changes a spec.
- apiGroups: ["argomap.io"]
  resources: ["argocdinstances/status", "clustermappings/status"]
  verbs: ["patch"]
# Secrets: get reads the credentials (and CA) Secret an ArgoCdInstance names, when it is
# checked; list + watch keep a metadata-only cache, so a rotated Secret triggers a check at once
# and the read API finds Secret UIDs without a request. RBAC cannot grant metadata only: list
# and watch allow reading every Secret in scope, which is what watchNamespaces narrows.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Events on ArgoCdInstances and ClusterMappings, in their namespace (events.k8s.io/v1): create
# a new one; patch bumps the series count of one that repeats.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{- define "argomap.leaseName" -}}
{{- default (include "argomap.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The annotations of an object's metadata: commonAnnotations, with the object's own (a map, the
second item of the list) taking precedence. Renders nothing when there are none.
Usage: {{- include "argomap.annotations" (list . .Values.service.annotations) | nindent 2 }}
*/}}
{{- define "argomap.annotations" -}}
{{- $ctx := index . 0 }}
{{- $all := merge (deepCopy (index . 1 | default dict)) (deepCopy ($ctx.Values.commonAnnotations | default dict)) }}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The image of the helm test Pod: by digest when set, else by tag. */}}
{{- define "argomap.testImage" -}}
{{- $i := .Values.helmTest.image }}
{{- if $i.digest }}
{{- printf "%s@%s" $i.repository $i.digest }}
{{- else }}
{{- printf "%s:%s" $i.repository $i.tag }}
{{- end }}
{{- end }}
