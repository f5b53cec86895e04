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
Every enabled role as JSON {"items": [{name, kind, command, values, rbac, rbacNamespaces, spec}]}
(values: where the role sits in values, e.g. collectors.k8s): the one list the
ConfigMaps, workloads, Services, ServiceAccounts, RBAC, NetworkPolicies, HPAs and PDBs are rendered from.
rbac: the Kubernetes API rules of what the role's code calls (tests/helm compares them with the code):
the agent lists and watches pods and namespaces (only when its pod metadata is on); the Kubernetes
collector lists and watches pods and reads their logs, in its configured namespaces only
(rbacNamespaces: a Role per namespace instead of a ClusterRole). Every other role gets no token.
*/}}
{{- define "logtide.roles" -}}
{{- $items := list -}}
{{- if .Values.agent.enabled -}}
{{- $rbac := list -}}
{{- if dig "kubernetes" "enabled" true (default dict .Values.agent.config) -}}
{{- $rbac = list (dict "apiGroups" (list "") "resources" (list "pods" "namespaces") "verbs" (list "list" "watch")) -}}
{{- end -}}
{{- $items = append $items (dict "name" "agent" "kind" "DaemonSet" "command" "agent" "values" "agent" "rbac" $rbac "rbacNamespaces" list "spec" .Values.agent) -}}
{{- end -}}
{{- range $name, $spec := .Values.collectors -}}
{{- if $spec.enabled -}}
{{- $rbac := list -}}
{{- $namespaces := list -}}
{{- if eq $name "k8s" -}}
{{- $rbac = list (dict "apiGroups" (list "") "resources" (list "pods") "verbs" (list "list" "watch")) (dict "apiGroups" (list "") "resources" (list "pods/log") "verbs" (list "get")) -}}
{{- $namespaces = dig "k8s" "namespaces" list (default dict $spec.config) -}}
{{- end -}}
{{- $items = append $items (dict "name" (printf "collector-%s" $name) "kind" "Deployment" "command" "collect" "values" (printf "collectors.%s" $name) "rbac" $rbac "rbacNamespaces" $namespaces "spec" $spec) -}}
{{- end -}}
{{- end -}}
{{- if .Values.processor.enabled -}}
{{- $items = append $items (dict "name" "processor" "kind" "Deployment" "command" "process" "values" "processor" "rbac" list "rbacNamespaces" list "spec" .Values.processor) -}}
{{- end -}}
{{- range $name, $spec := .Values.sinks -}}
{{- if $spec.enabled -}}
{{- $items = append $items (dict "name" (printf "sink-%s" $name) "kind" "Deployment" "command" "sink" "values" (printf "sinks.%s" $name) "rbac" list "rbacNamespaces" list "spec" $spec) -}}
{{- end -}}
{{- end -}}
{{- if .Values.alerting.enabled -}}
{{- $items = append $items (dict "name" "alerting" "kind" "Deployment" "command" "alert" "values" "alerting" "rbac" list "rbacNamespaces" list "spec" .Values.alerting) -}}
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
{{- $_ := set $w "checkpoint_dir" (include "logtide.agentCheckpointMount" .ctx) -}}
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

{{/*
Keys of a role's config the chart owns, because it mounts, probes or exposes what they name (dotted
path -> why, and what to set instead). A role's `config` in values that sets one is refused at render: one
source of truth, so probes, Services, mounts, NetworkPolicies and NOTES always match what runs.
*/}}
{{- define "logtide.wiredKeys" -}}
{{- $keys := dict
  "http.port" "use http.port: the probes, Service and NetworkPolicy follow it"
  "http.host" "the role listens on 0.0.0.0 so the kubelet's probes reach it"
  "kafka.bootstrap" "use kafka.bootstrap: the NetworkPolicies allow its ports"
  "use kafka.client" "use kafka.client"
  "kafka.security_protocol" "use kafka.securityProtocol"
  "kafka.sasl_mechanism" "use kafka.sasl.mechanism"
  "kafka.sasl_username" "use kafka.sasl.username or kafka.sasl.usernameKey"
  "kafka.sasl_password" "use kafka.sasl.existingSecret and kafka.sasl.passwordKey: the chart mounts the Secret"
  "kafka.ssl_cafile" "use kafka.tls.existingSecret and kafka.tls.caKey: the chart mounts the Secret"
  "kafka.ssl_certfile" "use kafka.tls.certKey: the chart mounts the Secret"
  "kafka.ssl_keyfile" "use kafka.tls.keyKey: the chart mounts the Secret" -}}
{{- if eq .command "agent" -}}
{{- $_ := set $keys "mode" "the chart runs the agent in kubernetes mode" -}}
{{- $_ := set $keys "pods_root" "use agent.hostPaths.pods: the chart mounts it" -}}
{{- $_ := set $keys "containers_root" "use agent.hostPaths.containers: the chart mounts it" -}}
{{- $_ := set $keys "checkpoint_dir" "use agent.checkpoints: the chart mounts the writable checkpoint volume there" -}}
{{- else if eq .command "alert" -}}
{{- $_ := set $keys "state_path" "the state lives on the data volume: use alerting.persistence" -}}
{{- $_ := set $keys "api.port" "use alerting.api.port: the container port, Service and NetworkPolicy follow it" -}}
{{- $_ := set $keys "api.host" "the API listens on 0.0.0.0 for its Service" -}}
{{- $_ := set $keys "rules_files" "use alerting.rules: the chart mounts them beside config.yaml" -}}
{{- $_ := set $keys "base_dir" "rule files are read beside the mounted config.yaml" -}}
{{- end -}}
{{- toJson $keys -}}
{{- end -}}

{{/* fail naming the first wired key (logtide.wiredKeys) a role's own `config` sets (ctx, role). */}}
{{- define "logtide.refuseWiredKeys" -}}
{{- $own := default dict .role.spec.config -}}
{{- $wired := include "logtide.wiredKeys" .role | fromJson -}}
{{- range $key := keys $wired | sortAlpha -}}
{{- $node := $own -}}
{{- $found := true -}}
{{- range $part := splitList "." $key -}}
{{- if and $found (kindIs "map" $node) (hasKey $node $part) -}}
{{- $node = get $node $part -}}
{{- else -}}
{{- $found = false -}}
{{- end -}}
{{- end -}}
{{- if $found -}}
{{- fail (printf "%s.config.%s: the chart sets this key, remove it (%s)" $.role.values $key (get $wired $key)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where the agent's checkpoints are mounted in its container. */}}
{{- define "logtide.agentCheckpointMount" -}}
{{- dig "checkpoints" "mountPath" "/var/lib/logtide/checkpoints" .Values.agent -}}
{{- end -}}

{{/* The node directory of the agent's checkpoints: per release (and namespace) unless set, so two releases never share it. */}}
{{- define "logtide.agentCheckpointHostPath" -}}
{{- dig "checkpoints" "hostPath" "" .Values.agent | default (printf "/var/lib/logtide/%s/%s/agent" .Release.Namespace .Release.Name) -}}
{{- end -}}

{{/* Writable directory of the day-2 tools (`kubectl exec ... logtide replay`): an emptyDir, $LOGTIDE_STATE_DIR. */}}
{{- define "logtide.stateDir" -}}
/var/lib/logtide/state
{{- end -}}

{{/* One role's config file: the shared block, then the chart's wiring, then the role's own keys. */}}
{{- define "logtide.roleConfig" -}}
{{- include "logtide.refuseWiredKeys" . -}}
{{- $shared := include "logtide.sharedConfig" . | fromYaml -}}
{{- $wiring := include "logtide.roleWiring" . | fromYaml -}}
{{- $own := deepCopy (default dict .role.spec.config) -}}
{{- mustMergeOverwrite $shared $wiring $own | toYaml -}}
{{- end -}}

{{/*
The TCP ports a role's config connects to (ctx, role), as a JSON list of strings, for its NetworkPolicy.
Every endpoint key (url, endpoint_url, login_url, api_server, dsn) gives its URL's port, or the scheme's
(http 80, https 443, postgres 5432); AWS sections without endpoint_url (s3, cloudwatch), salesforce and
pagerduty reach HTTPS services (443). A `${ENV}` or `file:` reference has no port to read: it must be
listed in networkPolicy.endpointPorts, else the render fails naming the key.
*/}}
{{- define "logtide.egressPorts" -}}
{{- $acc := dict "ports" list -}}
{{- $own := default dict .role.spec.config -}}
{{- include "logtide.walkConfig" (dict "node" $own "key" "" "path" (printf "%s.config" .role.values) "acc" $acc "ctx" .ctx "visit" "logtide.endpointPort") -}}
{{- /* A collector or known sink whose section the chart wires but values leave empty. */ -}}
{{- if and (eq .role.command "collect") (has (trimPrefix "collector-" .role.name) (list "cloudwatch" "salesforce")) (not (hasKey $own (trimPrefix "collector-" .role.name))) -}}
{{- $_ := set $acc "ports" (append $acc.ports "443") -}}
{{- end -}}
{{- $acc.ports | uniq | toJson -}}
{{- end -}}

{{/*
Visit every node of a role's config (node, key, path: its values path, acc, ctx, visit: the template
called on each node before its children; it fails or adds to acc).
*/}}
{{- define "logtide.walkConfig" -}}
{{- include .visit . -}}
{{- if kindIs "map" .node -}}
{{- range $k, $v := .node -}}
{{- include "logtide.walkConfig" (dict "node" $v "key" $k "path" (printf "%s.%s" $.path $k) "acc" $.acc "ctx" $.ctx "visit" $.visit) -}}
{{- end -}}
{{- else if kindIs "slice" .node -}}
{{- range $i, $v := .node -}}
{{- include "logtide.walkConfig" (dict "node" $v "key" $.key "path" (printf "%s[%d]" $.path $i) "acc" $.acc "ctx" $.ctx "visit" $.visit) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* logtide.walkConfig visitor of logtide.egressPorts: the ports a node connects to go to acc.ports. */}}
{{- define "logtide.endpointPort" -}}
{{- $acc := .acc -}}
{{- if kindIs "map" .node -}}
{{- if or (and (has .key (list "s3" "cloudwatch")) (not (get .node "endpoint_url"))) (eq .key "salesforce") (and (eq .key "pagerduty") (not (get .node "url"))) -}}
{{- $_ := set $acc "ports" (append $acc.ports "443") -}}
{{- end -}}
{{- else if and (kindIs "string" .node) (has .key (list "url" "endpoint_url" "login_url" "api_server" "dsn")) .node -}}
{{- $v := .node -}}
{{- $port := "" -}}
{{- $declared := $.ctx.Values.networkPolicy.endpointPorts | default dict -}}
{{- if hasKey $declared $v -}}
{{- $port = get $declared $v | toString -}}
{{- else if or (contains "${" $v) (hasPrefix "file:" $v) -}}
{{- fail (printf "networkPolicy: cannot derive the port %s connects to from %q: list it in networkPolicy.endpointPorts, e.g. {%q: 443}" .path $v $v) -}}
{{- else if regexMatch "^[a-zA-Z][a-zA-Z0-9+.-]*://" $v -}}
{{- $port = regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://([^@/?#]*@)?(\\[[^\\]]*\\]|[^:/?#]*)(:([0-9]*))?.*$" $v "${4}" -}}
{{- if not $port -}}
{{- $port = get (dict "http" "80" "https" "443" "postgres" "5432" "postgresql" "5432") (lower (regexReplaceAll "://.*$" $v "")) -}}
{{- end -}}
{{- else if regexMatch "(^|\\s)host=" $v -}}
{{- $port = regexReplaceAll "^.*(^|\\s)port=([0-9]+).*$" $v "${2}" -}}
{{- if not (regexMatch "^[0-9]+$" $port) -}}{{ $port = "5432" }}{{- end -}}
{{- end -}}
{{- if not (regexMatch "^[0-9]+$" $port) -}}
{{- fail (printf "networkPolicy: cannot derive the port %s connects to from %q (no port and no known scheme): give the port in the URL or list it in networkPolicy.endpointPorts" .path $v) -}}
{{- end -}}
{{- $_ := set $acc "ports" (append $acc.ports $port) -}}
{{- end -}}
{{- end -}}

{{/*
logtide.walkConfig visitor: a local path in a role's config (a `file:/...` reference, or an absolute
path under a key named path, *_dir, *_root, *_path, *file or kubeconfig) must be on a volume the
container mounts (acc.mounts): the root filesystem is read-only, a path elsewhere fails only in the pod.
*/}}
{{- define "logtide.mountedPath" -}}
{{- if kindIs "string" .node -}}
{{- $path := "" -}}
{{- if hasPrefix "file:/" .node -}}
{{- $path = trimPrefix "file:" .node -}}
{{- else if and (hasPrefix "/" .node) (or (eq .key "path" "kubeconfig") (regexMatch "(_dir|_root|_path|file)$" .key)) -}}
{{- $path = .node -}}
{{- end -}}
{{- if $path -}}
{{- $on := false -}}
{{- range $m := .acc.mounts -}}
{{- if or (eq $path $m) (hasPrefix (printf "%s/" (trimSuffix "/" $m)) $path) -}}{{- $on = true -}}{{- end -}}
{{- end -}}
{{- if not $on -}}
{{- fail (printf "%s: %s is on no volume the pod mounts (its root filesystem is read-only): use a path under /var/lib/logtide/data, or mount one (extraSecretMounts, extraVolumes and extraVolumeMounts)" .path .node) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
