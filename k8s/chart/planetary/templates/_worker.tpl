{{/*
A Deployment of a component that talks to the database and the tasks namespace (orchestrator,
monitor): (dict "ctx" $ "component" "orchestrator" "values" .Values.orchestrator).
*/}}
{{- define "planetary.workerDeployment" -}}
{{- $ := .ctx -}}
{{- $v := .values -}}
{{- $sel := dict "ctx" $ "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "planetary.fullname" $ }}-{{ .component }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "planetary.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ $v.replicas }}
  selector:
    matchLabels:
      {{- include "planetary.selectorLabels" $sel | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "planetary.labels" $ | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
      annotations:
        checksum/config: {{ include "planetary.podBuilderConfig" $ | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "planetary.fullname" $ }}-{{ .component }}
      # the in-cluster credentials of the Role in the tasks namespace
      automountServiceAccountToken: true
      securityContext:
        {{- include "planetary.podSecurityContext" $ | nindent 8 }}
      {{- with $.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . }}
        {{- end }}
      {{- end }}
      {{- with include "planetary.affinity" $sel }}
      affinity:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "planetary.image" (dict "ctx" $ "name" (printf "planetary-%s" .component)) }}
          imagePullPolicy: {{ $.Values.image.pullPolicy }}
          env:
            {{- include "planetary.databaseEnv" $ | nindent 12 }}
            - name: PLANETARY_NAMESPACE
              value: {{ $.Values.tasks.namespace | quote }}
            {{- if eq .component "orchestrator" }}
            - name: PLANETARY_POD_CONFIG
              value: /etc/planetary/pod-config.json
            - name: PLANETARY_MAX_TASKS
              value: {{ $v.maxTasks | quote }}
            - name: PLANETARY_LEASE_MS
              value: {{ mul $v.leaseSeconds 1000 | quote }}
            {{- if gt (int $v.maxRunningPerOwner) 0 }}
            # the same per-owner limit on every replica: it is enforced where they claim
            - name: PLANETARY_MAX_RUNNING_PER_OWNER
              value: {{ $v.maxRunningPerOwner | quote }}
            {{- end }}
            {{- if gt (int $.Values.monitor.keepFinishedSeconds) 0 }}
            # finished pods stay for the monitor's keepFinishedSeconds instead of going at once
            - name: PLANETARY_KEEP_FINISHED_PODS
              value: "true"
            {{- end }}
            {{- else }}
            - name: PLANETARY_MONITOR_INTERVAL_S
              value: {{ $v.intervalSeconds | quote }}
            - name: PLANETARY_PENDING_TIMEOUT_S
              value: {{ $v.pendingTimeoutSeconds | quote }}
            - name: PLANETARY_IMAGE_PULL_TIMEOUT_S
              value: {{ $v.imagePullTimeoutSeconds | quote }}
            - name: PLANETARY_KEEP_FINISHED_S
              value: {{ $v.keepFinishedSeconds | quote }}
            {{- end }}
            - name: PLANETARY_HEALTH_PORT
              value: {{ $v.healthPort | quote }}
            # the owner id of claims and leases
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            {{- include "planetary.tmpEnv" $ | nindent 12 }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: health
              containerPort: {{ $v.healthPort }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: health
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: health
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- include "planetary.containerSecurityContext" (dict) | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/planetary
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "planetary.fullname" $ }}-config
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
{{- end -}}
