{{/*
Prometheus rule groups for logtide's own health, in Prometheus' rule file format (the PrometheusRule
spec is the same). Every target is job="logtide" (the ServiceMonitor's jobLabel), with `role` and
`node` labels from the pod. tests/helm checks them with promtool (check + unit tests) and a real Prometheus.
*/}}
{{- define "logtide.ruleGroups" -}}
{{- $r := .Values.metrics.prometheusRule -}}
{{- $labels := $r.alertLabels -}}
groups:
  - name: logtide.health
    rules:
      - alert: LogtideTargetDown
        expr: up{job="logtide"} == 0
        for: 5m
        labels:
          severity: critical
          {{- with $labels }}{{ toYaml . | nindent 10 }}{{ end }}
        annotations:
          summary: {{ `logtide {{ $labels.role }} pod {{ $labels.namespace }}/{{ $labels.pod }} cannot be scraped` | quote }}
          description: {{ `The /metrics endpoint of {{ $labels.instance }} has been unreachable for 5 minutes: the pod is down, restarting or overloaded.` | quote }}
      - alert: LogtideConsumerLagGrowing
        expr: |-
          sum by (namespace, group) (logtide_consumer_lag_records{job="logtide"}) > {{ $r.lagThreshold }}
          and
          sum by (namespace, group) (delta(logtide_consumer_lag_records{job="logtide"}[10m])) > 0
        for: 15m
        labels:
          severity: warning
          {{- with $labels }}{{ toYaml . | nindent 10 }}{{ end }}
        annotations:
          summary: {{ `Consumer group {{ $labels.group }} is falling behind ({{ $value | humanize }} records)` | quote }}
          description: {{ `The lag of group {{ $labels.group }} is above the threshold and still growing: add replicas or find what slows it down (sink, DLQ, commit errors).` | quote }}
      - alert: LogtideDLQRateHigh
        expr: sum by (namespace, component, stage) (rate(logtide_dlq_records_total{job="logtide"}[5m])) > {{ $r.dlqRateThreshold }}
        for: 10m
        labels:
          severity: warning
          {{- with $labels }}{{ toYaml . | nindent 10 }}{{ end }}
        annotations:
          summary: {{ `{{ $labels.component }} sends {{ $value | humanize }} records/s to the DLQ (stage {{ $labels.stage }})` | quote }}
          description: {{ `Input that cannot be handled goes to logtide.dlq with the reason in its headers; inspect it with logtide dlq.` | quote }}
      - alert: LogtideProduceErrors
        expr: sum by (namespace, component) (rate(logtide_produce_errors_total{job="logtide"}[5m])) > 0
        for: 10m
        labels:
          severity: warning
          {{- with $labels }}{{ toYaml . | nindent 10 }}{{ end }}
        annotations:
          summary: {{ `{{ $labels.component }} cannot write to Kafka ({{ $value | humanize }} errors/s)` | quote }}
          description: {{ `Kafka refuses or times out produce requests; sources hold their checkpoints and retry, so data is delayed, not lost, until buffers fill.` | quote }}
      - alert: LogtideCommitErrors
        expr: sum by (namespace, component) (rate(logtide_consumer_commit_errors_total{job="logtide"}[5m])) > 0
        for: 10m
        labels:
          severity: warning
          {{- with $labels }}{{ toYaml . | nindent 10 }}{{ end }}
        annotations:
          summary: {{ `{{ $labels.component }} fails to commit its Kafka offsets` | quote }}
          description: {{ `Offsets are not moving: after a restart the group re-reads from the last commit (duplicates are dropped by id, but work is repeated).` | quote }}
      - alert: LogtideAgentNotShipping
        # Has work (lines read, or records waiting for Kafka) but Kafka acknowledged nothing: an idle
        # node is not an alert, a stuck one is.
        expr: |-
          (
            sum by (namespace, pod, node) (rate(logtide_agent_lines_read_total{job="logtide"}[15m])) > 0
            or
            sum by (namespace, pod, node) (logtide_agent_queue_depth{job="logtide"}) > 0
          )
          unless on (namespace, pod)
          sum by (namespace, pod) (rate(logtide_agent_records_produced_total{job="logtide"}[15m])) > 0
        for: 15m
        labels:
          severity: warning
          {{- with $labels }}{{ toYaml . | nindent 10 }}{{ end }}
        annotations:
          summary: {{ `The logtide agent on node {{ $labels.node }} reads logs but ships nothing` | quote }}
          description: {{ `Agent {{ $labels.namespace }}/{{ $labels.pod }} has had lines to send for 30 minutes and Kafka acknowledged none: check produce errors, backpressure and its logs.` | quote }}
      - alert: LogtideCollectorCheckpointStale
        expr: max by (namespace, collector, item) (logtide_collector_checkpoint_age_seconds{job="logtide"}) > {{ $r.checkpointStaleSeconds }}
        for: 5m
        labels:
          severity: warning
          {{- with $labels }}{{ toYaml . | nindent 10 }}{{ end }}
        annotations:
          summary: {{ `Collector {{ $labels.collector }} has not moved the checkpoint of {{ $labels.item }} for {{ $value | humanizeDuration }}` | quote }}
          description: {{ `The collector is stuck, throttled or cannot reach its source API; see logtide_collector_errors_total and logtide_collector_throttles_total.` | quote }}
      - alert: LogtideNotificationsFailing
        expr: sum by (namespace, receiver, integration) (rate(logtide_alerting_notification_failures_total{job="logtide"}[5m])) > 0
        for: 10m
        labels:
          severity: critical
          {{- with $labels }}{{ toYaml . | nindent 10 }}{{ end }}
        annotations:
          summary: {{ `logtide cannot notify receiver {{ $labels.receiver }} through {{ $labels.integration }}` | quote }}
          description: {{ `Alert notifications are failing: on-call may not be paged. Check the receiver's endpoint and credentials.` | quote }}
  {{- with $r.additionalGroups }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
