{{/* The chart name, truncated to a DNS label. */}}
{{- define "planetary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object name: the release name, or <release>-planetary. */}}
{{- define "planetary.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "planetary.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "planetary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: planetary
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "api"). */}}
{{- define "planetary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "planetary.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image of one component: (dict "ctx" $ "name" "planetary-api"). */}}
{{- define "planetary.image" -}}
{{- printf "%s/%s:%s" .ctx.Values.image.registry .name (default .ctx.Chart.AppVersion .ctx.Values.image.tag) -}}
{{- end -}}

{{/* The name of the Secret holding the database URL. */}}
{{- define "planetary.databaseSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" (include "planetary.fullname" .) -}}
{{- else -}}
{{- .Values.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The key of the database URL in that Secret. */}}
{{- define "planetary.databaseSecretKey" -}}
{{- if .Values.postgresql.enabled -}}url{{- else -}}{{ .Values.database.secretKey }}{{- end -}}
{{- end -}}

{{/* The environment variable DATABASE_URL from the database Secret. */}}
{{- define "planetary.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "planetary.databaseSecret" . }}
      key: {{ include "planetary.databaseSecretKey" . }}
{{- end -}}

{{/* Pod-level security context of every pod of the chart (the distroless nonroot user). */}}
{{- define "planetary.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context of every container of the chart. */}}
{{- define "planetary.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ default 65532 .uid }}
runAsGroup: {{ default 65532 .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod anti-affinity spreading the replicas of one component over nodes. */}}
{{- define "planetary.affinity" -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "planetary.selectorLabels" . | fromYaml)) -}}
{{- if eq .ctx.Values.podAntiAffinity "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list $term) | nindent 4 }}
{{- else if eq .ctx.Values.podAntiAffinity "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        {{- toYaml $term | nindent 8 }}
{{- end -}}
{{- end -}}

{{/*
A writable /tmp (the root filesystem is read-only); HOME points into it. DENO_DIR is the image's
own: /tmp/deno in the compiled release images, the read-only pre-filled cache of the `deno run`
images (which run `--cached-only`: another DENO_DIR would have no modules).
*/}}
{{- define "planetary.tmpEnv" -}}
- name: HOME
  value: /tmp
{{- end -}}

{{/* The api settings of the JSON config file (cli/api.ts --config). */}}
{{- define "planetary.apiConfig" -}}
{{- $s := .Values.serverSettings -}}
{{- $info := dict -}}
{{- range $key := list "id" "name" "description" "contactUrl" "documentationUrl" "environment" -}}
{{- if index $s.serviceInfo $key }}{{ $_ := set $info $key (index $s.serviceInfo $key) }}{{ end -}}
{{- end -}}
{{- if $s.serviceInfo.organizationName -}}
{{- $_ := set $info "organization" (dict "name" $s.serviceInfo.organizationName "url" $s.serviceInfo.organizationUrl) -}}
{{- end -}}
{{- if $s.serviceInfo.storage }}{{ $_ := set $info "storage" $s.serviceInfo.storage }}{{ end -}}
{{- $_ := set $info "version" .Chart.AppVersion -}}
{{- $api := dict "serviceInfo" $info "logRequests" $s.logRequests "maxBodyBytes" $s.maxBodyBytes "maxBatchTasks" $s.maxBatchTasks "maxContentBytes" $s.maxContentBytes -}}
{{- if $s.corsOrigins }}{{ $_ := set $api "corsOrigins" $s.corsOrigins }}{{ end -}}
{{- if $s.allowedUrlSchemes }}{{ $_ := set $api "allowedUrlSchemes" $s.allowedUrlSchemes }}{{ end -}}
{{- /* the API keeps (and service-info lists) exactly the keys the orchestrator's pod builder applies */ -}}
{{- $_ := set $api "supportedBackendParameters" (keys .Values.tasks.backendParameters | sortAlpha) -}}
{{- dict "api" $api | toPrettyJson -}}
{{- end -}}

{{/* The pod builder settings of the orchestrator (how task pods are built). */}}
{{- define "planetary.podBuilderConfig" -}}
{{- $t := .Values.tasks -}}
{{- $c := dict "namespace" $t.namespace "transporterImage" (include "planetary.image" (dict "ctx" . "name" "planetary-transporter")) "transporterCommand" $t.transporter.command "transporterImagePullPolicy" .Values.image.pullPolicy "transporterResources" $t.transporter.resources "storageSecrets" $t.storageSecrets "defaultCpuCores" $t.defaultCpuCores "defaultRamGb" $t.defaultRamGb "defaultDiskGb" $t.defaultDiskGb "nodeSelector" $t.nodeSelector "tolerations" $t.tolerations "imagePullSecrets" $t.imagePullSecrets "zoneLabel" $t.zoneLabel "backendParameters" $t.backendParameters "terminationGracePeriodSeconds" $t.terminationGracePeriodSeconds -}}
{{- if $t.serviceAccount.create }}{{ $_ := set $c "serviceAccountName" (printf "%s-task" (include "planetary.fullname" .)) }}{{ end -}}
{{- if $t.activeDeadlineSeconds }}{{ $_ := set $c "activeDeadlineSeconds" $t.activeDeadlineSeconds }}{{ end -}}
{{- if $t.priorityClassName }}{{ $_ := set $c "priorityClassName" $t.priorityClassName }}{{ end -}}
{{- if $t.runtimeClassName }}{{ $_ := set $c "runtimeClassName" $t.runtimeClassName }}{{ end -}}
{{- if $t.podLabels }}{{ $_ := set $c "labels" $t.podLabels }}{{ end -}}
{{- if $t.transporter.env }}{{ $_ := set $c "transporterEnv" $t.transporter.env }}{{ end -}}
{{- $c | toPrettyJson -}}
{{- end -}}
