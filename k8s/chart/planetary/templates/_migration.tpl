{{/* The spec of the migration Job. Its hash is part of the Job's name (planetary.migrationJobName). */}}
{{- define "planetary.migrationJobSpec" -}}
backoffLimit: {{ .Values.migration.backoffLimit }}
activeDeadlineSeconds: {{ .Values.migration.activeDeadlineSeconds }}
# finished Jobs of earlier versions (and failed ones, which no hook deletes) go away on their own
ttlSecondsAfterFinished: {{ .Values.migration.ttlSecondsAfterFinished }}
template:
  metadata:
    labels:
      {{- include "planetary.labels" . | nindent 6 }}
      app.kubernetes.io/component: migrate
  spec:
    restartPolicy: Never
    # a hook runs before the chart's ServiceAccounts exist: the namespace's default account,
    # without a token (the migration needs only the database)
    automountServiceAccountToken: false
    securityContext:
      {{- include "planetary.podSecurityContext" . | nindent 6 }}
    {{- with .Values.imagePullSecrets }}
    imagePullSecrets:
      {{- range . }}
      - name: {{ . }}
      {{- end }}
    {{- end }}
    containers:
      - name: migrate
        image: {{ include "planetary.image" (dict "ctx" . "name" "planetary-api") }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        args:
          - migrate
        env:
          {{- include "planetary.databaseEnv" . | nindent 10 }}
          {{- include "planetary.tmpEnv" . | nindent 10 }}
        resources:
          {{- toYaml .Values.migration.resources | nindent 10 }}
        securityContext:
          {{- include "planetary.containerSecurityContext" (dict) | nindent 10 }}
        volumeMounts:
          - name: tmp
            mountPath: /tmp
    volumes:
      - name: tmp
        emptyDir:
          sizeLimit: 64Mi
{{- end -}}

{{/*
The name of the migration Job: <fullname>-migrate-<first 8 hex digits of the sha256 of its spec>.
A Job's pod template is immutable, so `kubectl apply` of a new version (another image, other
settings) must create a new Job rather than change the old one; at most 63 characters (the Job
name is a label value of its pods).
*/}}
{{- define "planetary.migrationJobName" -}}
{{- $prefix := include "planetary.fullname" .ctx | trunc 46 | trimSuffix "-" -}}
{{- printf "%s-migrate-%s" $prefix (.spec | sha256sum | trunc 8) -}}
{{- end -}}
