{{/*
The pod template every role runs (ctx, role): one container `logtide <command> --config`, secure by
default (non-root, read-only root filesystem, no privilege escalation, no capabilities, seccomp
RuntimeDefault), probes on /healthz and /readyz, Kafka secrets mounted as files.
*/}}
{{- define "logtide.podTemplate" -}}
{{- $ctx := .ctx -}}
{{- $role := .role -}}
{{- $spec := $role.spec -}}
{{- $V := $ctx.Values -}}
{{- $isAgent := eq $role.kind "DaemonSet" -}}
{{- $checkpoints := dig "checkpoints" dict $spec -}}
{{- $podSC := mustMergeOverwrite (deepCopy $V.podSecurityContext) (default dict $spec.podSecurityContext) -}}
metadata:
  labels:
    {{- include "logtide.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/part-of: logtide
    {{- with $V.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Roll the pods when their config changes.
    checksum/config: {{ include "logtide.roleConfig" . | sha256sum }}
    {{- if $V.metrics.scrapeAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $V.http.port | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $V.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "logtide.serviceAccountName" . }}
  automountServiceAccountToken: {{ gt (len $role.rbac) 0 }}
  enableServiceLinks: false
  {{- with $V.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $spec.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $podSC | nindent 4 }}
  {{- if and $isAgent (eq (default "hostPath" $checkpoints.type) "hostPath") (dig "initChown" true $checkpoints) }}
  initContainers:
    # hostPath directories are created root-owned: hand the checkpoint directory to the agent's user.
    # Runs as root with CAP_CHOWN only, touches nothing else.
    - name: checkpoints-owner
      image: {{ include "logtide.image" $ctx }}
      imagePullPolicy: {{ $V.image.pullPolicy }}
      command: ["chown", "-R", "{{ dig "runAsUser" 10001 $podSC }}:{{ dig "runAsGroup" 10001 $podSC }}", {{ include "logtide.agentCheckpointMount" $ctx | quote }}]
      securityContext:
        runAsUser: 0
        runAsNonRoot: false
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        privileged: false
        capabilities:
          drop: [ALL]
          add: [CHOWN]
        seccompProfile:
          type: RuntimeDefault
      resources:
        requests: {cpu: 10m, memory: 16Mi}
        limits: {memory: 32Mi}
      volumeMounts:
        - name: checkpoints
          mountPath: {{ include "logtide.agentCheckpointMount" $ctx }}
  {{- end }}
  containers:
    - name: {{ $role.command }}
      image: {{ include "logtide.image" $ctx }}
      imagePullPolicy: {{ $V.image.pullPolicy }}
      args: [{{ $role.command | quote }}, "--config", "/etc/logtide/config/config.yaml"]
      ports:
        - name: http-metrics
          containerPort: {{ $V.http.port }}
          protocol: TCP
        {{- if eq $role.command "alert" }}
        - name: http-api
          containerPort: {{ dig "api" "port" 9093 $spec }}
          protocol: TCP
        {{- end }}
      {{- include "logtide.containerEnv" . | nindent 6 }}
      livenessProbe:
        httpGet: {path: /healthz, port: http-metrics}
        {{- toYaml $V.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet: {path: /readyz, port: http-metrics}
        {{- toYaml $V.probes.readiness | nindent 8 }}
      securityContext:
        {{- mustMergeOverwrite (deepCopy $V.securityContext) (default dict $spec.securityContext) | toYaml | nindent 8 }}
      # A role without its own resources (e.g. a sink added in values) still gets requests and a limit.
      resources:
        {{- default (dict "requests" (dict "cpu" "100m" "memory" "128Mi") "limits" (dict "memory" "512Mi")) $spec.resources | toYaml | nindent 8 }}
      volumeMounts:
        # The whole ConfigMap as a directory (not subPath), so edits reach the pod (alert rules reload).
        - name: config
          mountPath: /etc/logtide/config
          readOnly: true
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: /var/lib/logtide/data
        - name: state
          mountPath: {{ include "logtide.stateDir" $ctx }}
        {{- include "logtide.secretMounts" . | nindent 8 }}
        {{- if $isAgent }}
        - name: varlogpods
          mountPath: {{ $spec.hostPaths.pods }}
          readOnly: true
        - name: varlogcontainers
          mountPath: {{ $spec.hostPaths.containers }}
          readOnly: true
        {{- range $i, $p := $spec.hostPaths.extra }}
        - name: hostlog-{{ $i }}
          mountPath: {{ $p }}
          readOnly: true
        {{- end }}
        - name: checkpoints
          mountPath: {{ include "logtide.agentCheckpointMount" $ctx }}
        {{- end }}
        {{- with $spec.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "logtide.roleName" . }}
    - name: tmp
      emptyDir: {sizeLimit: 256Mi}
    - name: state
      emptyDir: {sizeLimit: 64Mi}
    {{- if dig "persistence" "enabled" false $spec }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ dig "persistence" "existingClaim" "" $spec | default (include "logtide.roleName" .) }}
    {{- else }}
    - name: data
      emptyDir: {sizeLimit: 1Gi}
    {{- end }}
    {{- include "logtide.secretVolumes" . | nindent 4 }}
    {{- if $isAgent }}
    - name: varlogpods
      hostPath: {path: {{ $spec.hostPaths.pods }}, type: Directory}
    - name: varlogcontainers
      hostPath: {path: {{ $spec.hostPaths.containers }}, type: DirectoryOrCreate}
    {{- range $i, $p := $spec.hostPaths.extra }}
    - name: hostlog-{{ $i }}
      hostPath: {path: {{ $p }}, type: Directory}
    {{- end }}
    {{- if eq (default "hostPath" $checkpoints.type) "hostPath" }}
    - name: checkpoints
      hostPath: {path: {{ include "logtide.agentCheckpointHostPath" $ctx }}, type: DirectoryOrCreate}
    {{- else }}
    - name: checkpoints
      emptyDir: {}
    {{- end }}
    {{- end }}
    {{- with $spec.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $spec.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $spec.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $spec.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: 30
{{- end -}}

{{/* A role's environment (ctx, role): what the kernel and the day-2 tools read, then the role's env and envFrom. */}}
{{- define "logtide.containerEnv" -}}
{{- $ctx := .ctx -}}
{{- $spec := .role.spec -}}
env:
  - name: NODE_NAME
    valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
  - name: POD_NAME
    valueFrom: {fieldRef: {fieldPath: metadata.name}}
  - name: POD_NAMESPACE
    valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
  - name: TMPDIR
    value: /tmp
  # The day-2 tools run through `kubectl exec` in this read-only container: their Kafka and a
  # writable state directory (replay progress files).
  - name: LOGTIDE_BOOTSTRAP
    value: {{ $ctx.Values.kafka.bootstrap | quote }}
  - name: LOGTIDE_STATE_DIR
    value: {{ include "logtide.stateDir" $ctx }}
  - name: XDG_STATE_HOME
    value: {{ include "logtide.stateDir" $ctx }}
  {{- with $spec.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $spec.envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Secrets as read-only files (Kafka SASL/TLS, extraSecretMounts): mounts and volumes (ctx, role). */}}
{{- define "logtide.secretMounts" -}}
{{- $V := .ctx.Values -}}
{{- $spec := .role.spec -}}
{{- if $V.kafka.sasl.mechanism }}
- name: kafka-sasl
  mountPath: /etc/logtide/kafka-sasl
  readOnly: true
{{- end }}
{{- if $V.kafka.tls.enabled }}
- name: kafka-tls
  mountPath: /etc/logtide/kafka-tls
  readOnly: true
{{- end }}
{{- range $spec.extraSecretMounts }}
- name: secret-{{ .name }}
  mountPath: {{ .mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "logtide.secretVolumes" -}}
{{- $V := .ctx.Values -}}
{{- $spec := .role.spec -}}
{{- if $V.kafka.sasl.mechanism }}
- name: kafka-sasl
  secret:
    secretName: {{ required "kafka.sasl.existingSecret is required when kafka.sasl.mechanism is set" $V.kafka.sasl.existingSecret }}
    defaultMode: 0440
    items:
      - {key: {{ $V.kafka.sasl.passwordKey }}, path: {{ $V.kafka.sasl.passwordKey }}}
      {{- with $V.kafka.sasl.usernameKey }}
      - {key: {{ . }}, path: {{ . }}}
      {{- end }}
{{- end }}
{{- if $V.kafka.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ required "kafka.tls.existingSecret is required when kafka.tls.enabled is true" $V.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- range $spec.extraSecretMounts }}
- name: secret-{{ .name }}
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}
