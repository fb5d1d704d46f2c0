{{/*
Names and labels. Each service template calls the shared workload templates below with
(dict "root" $ "key" <values key> "component" <name> "portEnv" <port variable>
      "readsSecretKey" <whether it gets STEPWISE_SECRET_KEY>).
*/}}

{{- define "stepwise.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stepwise.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "stepwise.labels" -}}
{{ include "stepwise.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: stepwise
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "stepwise.secretName" -}}
{{- .Values.existingSecret | default (include "stepwise.fullname" .) -}}
{{- end -}}

{{- define "stepwise.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "stepwise.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "stepwise.image" -}}
{{- $tag := .svc.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .svc.image.repository $tag -}}
{{- end -}}

{{/* Where a file of a mounted Secret appears in the containers: "" unless both the Secret and
the key are given (the service then uses its default: no TLS file). */}}
{{- define "stepwise.tlsPath" -}}
{{- if and .secret .key -}}
{{- printf "/etc/stepwise/%s/%s" .dir .key -}}
{{- end -}}
{{- end -}}

{{/* The Secrets mounted as files (TLS material, NATS credentials): volumeMounts, then volumes. */}}
{{- define "stepwise.secretMounts" -}}
{{- range $dir, $secret := include "stepwise.secretFiles" . | fromYaml }}
- name: {{ $dir }}
  mountPath: /etc/stepwise/{{ $dir }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "stepwise.secretVolumes" -}}
{{- range $dir, $secret := include "stepwise.secretFiles" . | fromYaml }}
- name: {{ $dir }}
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* mount directory → Secret name, for the Secrets the values name (the migrate Job: Postgres only) */}}
{{- define "stepwise.secretFiles" -}}
{{- $v := .root.Values -}}
{{- with $v.database.tls.existingSecret }}
postgres-tls: {{ . | quote }}
{{- end }}
{{- if not .postgresOnly }}
{{- with $v.temporal.tls.existingSecret }}
temporal-tls: {{ . | quote }}
{{- end }}
{{- with $v.nats.credentials.existingSecret }}
nats-creds: {{ . | quote }}
{{- end }}
{{- with $v.nats.tls.existingSecret }}
nats-tls: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A Deployment of one Stepwise service. */}}
{{- define "stepwise.deployment" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .key -}}
{{- $name := printf "%s-%s" (include "stepwise.fullname" $root) .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "stepwise.labels" . | nindent 4 }}
spec:
  {{- if not $svc.autoscaling.enabled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "stepwise.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "stepwise.labels" . | nindent 8 }}
      annotations:
        # Roll the pods when the shared settings change.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    spec:
      serviceAccountName: {{ include "stepwise.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      # The service stops taking work on SIGTERM and exits 0 within this period (SPEC §1).
      terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "stepwise.image" (dict "root" $root "svc" $svc) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          envFrom:
            - configMapRef:
                name: {{ include "stepwise.fullname" $root }}
          env:
            # Secrets by key, each only to the services that read it.
            - name: DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: {{ include "stepwise.secretName" $root }}
                  key: DATABASE_URL
            {{- if .readsSecretKey }}
            - name: STEPWISE_SECRET_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ include "stepwise.secretName" $root }}
                  key: STEPWISE_SECRET_KEY
            {{- end }}
            # optional: an existingSecret without an API key means none (plain or mTLS Temporal)
            - name: TEMPORAL_API_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ include "stepwise.secretName" $root }}
                  key: TEMPORAL_API_KEY
                  optional: true
            - name: {{ .portEnv }}
              value: {{ $svc.port | quote }}
            {{- range $envName, $envValue := $svc.env }}
            - name: {{ $envName }}
              value: {{ $envValue | quote }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $svc.port }}
              protocol: TCP
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 2
            failureThreshold: 30
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 4
            failureThreshold: 2
          {{- if gt (int $svc.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", {{ $svc.preStopSleepSeconds | quote }}]
          {{- end }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- include "stepwise.secretMounts" . | nindent 12 }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- include "stepwise.secretVolumes" . | nindent 8 }}
      {{- with $svc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* The Service in front of a Stepwise service (the API, or the ops server for metrics). */}}
{{- define "stepwise.service" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .key -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ printf "%s-%s" (include "stepwise.fullname" $root) .component }}
  labels:
    {{- include "stepwise.labels" . | nindent 4 }}
spec:
  type: {{ dig "service" "type" "ClusterIP" $svc }}
  selector:
    {{- include "stepwise.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ dig "service" "port" $svc.port $svc }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- define "stepwise.podDisruptionBudget" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .key -}}
{{- if $svc.podDisruptionBudget.enabled -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ printf "%s-%s" (include "stepwise.fullname" $root) .component }}
  labels:
    {{- include "stepwise.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $svc.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "stepwise.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}

{{- define "stepwise.horizontalPodAutoscaler" -}}
{{- $root := .root -}}
{{- $svc := index $root.Values .key -}}
{{- if $svc.autoscaling.enabled -}}
{{- $name := printf "%s-%s" (include "stepwise.fullname" $root) .component -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "stepwise.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $svc.autoscaling.minReplicas }}
  maxReplicas: {{ $svc.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $svc.autoscaling.targetCPUUtilizationPercentage }}
    {{- $backlog := dig "backlog" dict $svc.autoscaling }}
    {{- if $backlog.enabled }}
    # the task queue's backlog from the external metrics API (deploy/README.md, Worker)
    - type: External
      external:
        metric:
          name: {{ required "autoscaling.backlog.metricName is required" $backlog.metricName }}
          selector:
            matchLabels:
              {{- /* the contract's one task queue (stepwise_contract.names.TASK_QUEUE) */}}
              {{ $backlog.taskQueueLabel }}: workflow-runtime-v2
              {{- range $label, $value := $backlog.selector }}
              {{ $label }}: {{ $value | quote }}
              {{- end }}
        target:
          type: AverageValue
          averageValue: {{ $backlog.averageValue | quote }}
    {{- end }}
  behavior:
    # Scale in slowly: a drained replica hands its in-flight work back, which costs a retry.
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end -}}
{{- end -}}

{{/* All the objects of one Stepwise service, separated as YAML documents. */}}
{{- define "stepwise.workload" -}}
{{ include "stepwise.deployment" . }}
---
{{ include "stepwise.service" . }}
{{- with include "stepwise.podDisruptionBudget" . }}
---
{{ . }}
{{- end }}
{{- with include "stepwise.horizontalPodAutoscaler" . }}
---
{{ . }}
{{- end }}
{{- end -}}
