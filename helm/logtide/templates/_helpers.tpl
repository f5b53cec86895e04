{{/* Names, labels and the shared pieces every role's resources are made of. */}}

{{- define "logtide.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "logtide.fullname" -}}
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

{{/* Name of one role's resources: <fullname>-<role>, e.g. logtide-collector-k8s. */}}
{{- define "logtide.roleName" -}}
{{- printf "%s-%s" (include "logtide.fullname" .ctx) .role.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "logtide.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "logtide.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: logtide
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one role's resources (ctx, role). */}}
{{- define "logtide.roleLabels" -}}
{{ include "logtide.labels" .ctx }}
app.kubernetes.io/component: {{ .role.name }}
{{- end -}}

{{- define "logtide.selectorLabels" -}}
app.kubernetes.io/name: {{ include "logtide.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .role.name }}
{{- end -}}

{{- define "logtide.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Every enabled role as JSON {"items": [{name, kind, command, rbac, spec}]}: the one list the ConfigMaps,
workloads, Services, ServiceAccounts, RBAC, HPAs and PDBs are rendered from.
rbac: "node" (get/list/watch pods, namespaces, nodes), "podlogs" (the same plus pods/log), "" (none).
*/}}
{{- define "logtide.roles" -}}
{{- $items := list -}}
{{- if .Values.agent.enabled -}}
{{- $items = append $items (dict "name" "agent" "kind" "DaemonSet" "command" "agent" "rbac" "node" "spec" .Values.agent) -}}
{{- end -}}
{{- range $name, $spec := .Values.collectors -}}
{{- if $spec.enabled -}}
{{- $items = append $items (dict "name" (printf "collector-%s" $name) "kind" "Deployment" "command" "collect" "rbac" (ternary "podlogs" "" (eq $name "k8s")) "spec" $spec) -}}
{{- end -}}
{{- end -}}
{{- if .Values.processor.enabled -}}
{{- $items = append $items (dict "name" "processor" "kind" "Deployment" "command" "process" "rbac" "" "spec" .Values.processor) -}}
{{- end -}}
{{- range $name, $spec := .Values.sinks -}}
{{- if $spec.enabled -}}
{{- $items = append $items (dict "name" (printf "sink-%s" $name) "kind" "Deployment" "command" "sink" "rbac" "" "spec" $spec) -}}
{{- end -}}
{{- end -}}
{{- if .Values.alerting.enabled -}}
{{- $items = append $items (dict "name" "alerting" "kind" "Deployment" "command" "alert" "rbac" "" "spec" .Values.alerting) -}}
{{- end -}}
{{- dict "items" $items | toJson -}}
{{- end -}}

{{- define "logtide.serviceAccountName" -}}
{{- $sa := default dict .role.spec.serviceAccount -}}
{{- if (dig "create" true $sa) -}}
{{- default (include "logtide.roleName" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* The shared config block of every role: kafka (secrets as file: references), http, log_level. */}}
{{- define "logtide.sharedConfig" -}}
{{- $k := .ctx.Values.kafka -}}
{{- $kafka := dict "bootstrap" $k.bootstrap "client" $k.client "security_protocol" $k.securityProtocol "client_id" (printf "logtide-%s" .role.name) -}}
{{- if $k.sasl.mechanism -}}
{{- $_ := set $kafka "sasl_mechanism" $k.sasl.mechanism -}}
{{- $_ := set $kafka "sasl_password" (printf "file:/etc/logtide/kafka-sasl/%s" $k.sasl.passwordKey) -}}
{{- if $k.sasl.usernameKey -}}
{{- $_ := set $kafka "sasl_username" (printf "file:/etc/logtide/kafka-sasl/%s" $k.sasl.usernameKey) -}}
{{- else if $k.sasl.username -}}
{{- $_ := set $kafka "sasl_username" $k.sasl.username -}}
{{- end -}}
{{- end -}}
{{- if $k.tls.enabled -}}
{{- $_ := set $kafka "ssl_cafile" (printf "/etc/logtide/kafka-tls/%s" $k.tls.caKey) -}}
{{- if $k.tls.certKey -}}
{{- $_ := set $kafka "ssl_certfile" (printf "/etc/logtide/kafka-tls/%s" $k.tls.certKey) -}}
{{- $_ := set $kafka "ssl_keyfile" (printf "/etc/logtide/kafka-tls/%s" (required "kafka.tls.keyKey is required when kafka.tls.certKey is set (mutual TLS)" $k.tls.keyKey)) -}}
{{- end -}}
{{- end -}}
{{- with $k.producer }}{{ $_ := set $kafka "producer" . }}{{ end -}}
{{- with $k.consumer }}{{ $_ := set $kafka "consumer" . }}{{ end -}}
{{- dict "kafka" $kafka "http" (dict "host" "0.0.0.0" "port" .ctx.Values.http.port) "log_level" .ctx.Values.logLevel | toYaml -}}
{{- end -}}

{{/*
What the chart itself decides in a role's config, because it owns the paths and ports: where the agent
finds logs and keeps checkpoints, which section a collector or sink runs (collectors.k8s runs the
`k8s:` section), where alerting keeps state and rules.
*/}}
{{- define "logtide.roleWiring" -}}
{{- $spec := .role.spec -}}
{{- $w := dict -}}
{{- if eq .role.command "agent" -}}
{{- $_ := set $w "mode" "kubernetes" -}}
{{- $_ := set $w "pods_root" $spec.hostPaths.pods -}}
{{- $_ := set $w "containers_root" $spec.hostPaths.containers -}}
{{- $_ := set $w "checkpoint_dir" (dig "checkpoints" "mountPath" "/var/lib/logtide/checkpoints" $spec) -}}
{{- else if eq .role.command "collect" -}}
{{- $_ := set $w (trimPrefix "collector-" .role.name) dict -}}
{{- else if eq .role.command "sink" -}}
{{- $kind := trimPrefix "sink-" .role.name -}}
{{- if has $kind (list "monitoring" "audit" "analytics") -}}
{{- $_ := set $w $kind dict -}}
{{- end -}}
{{- else if eq .role.command "alert" -}}
{{- $_ := set $w "state_path" "/var/lib/logtide/data/alerting.db" -}}
{{- $_ := set $w "api" (dict "host" "0.0.0.0" "port" (dig "api" "port" 9093 $spec)) -}}
{{- $_ := set $w "rules_files" (keys (default dict $spec.rules) | sortAlpha) -}}
{{- end -}}
{{- toYaml $w -}}
{{- end -}}

{{/* One role's config file: the shared block, then the chart's wiring, then the role's own keys. */}}
{{- define "logtide.roleConfig" -}}
{{- $shared := include "logtide.sharedConfig" . | fromYaml -}}
{{- $wiring := include "logtide.roleWiring" . | fromYaml -}}
{{- $own := deepCopy (default dict .role.spec.config) -}}
{{- mustMergeOverwrite $shared $wiring $own | toYaml -}}
{{- end -}}
