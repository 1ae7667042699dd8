{{/*
Names, labels and the checks every rendering runs. Every template here takes the chart's root
context: this chart's own templates pass `.`, a parent chart passes
`(index .Subcharts "mac-sidecar")`.
*/}}

{{- define "mac-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mac-sidecar.fullname" -}}
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

{{/* Names of the chart's objects beside the fullname (kept under 63 characters). */}}
{{- define "mac-sidecar.redisName" -}}
{{- printf "%s-redis" (include "mac-sidecar.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "mac-sidecar.plansName" -}}
{{- printf "%s-plans" (include "mac-sidecar.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "mac-sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "mac-sidecar.labels" -}}
helm.sh/chart: {{ include "mac-sidecar.chart" . }}
app.kubernetes.io/name: {{ include "mac-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "mac-sidecar.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mac-sidecar
{{- end }}

{{/* Selector of the sidecar's own pods (deployment mode); immutable once installed. */}}
{{- define "mac-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mac-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: enforcer
{{- end }}

{{- define "mac-sidecar.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "mac-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "mac-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mac-sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mac-sidecar.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "mac-sidecar.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "mac-sidecar.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The Secret the chart generates or fills (admin token, identity secret, Redis URL, the
bundled Redis's password, the webhook signing secret). */}}
{{- define "mac-sidecar.secretName" -}}
{{- include "mac-sidecar.fullname" . }}
{{- end }}

{{- define "mac-sidecar.identitySecretName" -}}
{{- .Values.identitySecret.existingSecret | default (include "mac-sidecar.secretName" .) }}
{{- end }}

{{- define "mac-sidecar.identitySecretKey" -}}
{{- if .Values.identitySecret.existingSecret }}{{ .Values.identitySecret.existingSecretKey }}{{ else }}identity-secret{{ end }}
{{- end }}

{{- define "mac-sidecar.adminTokenSecretName" -}}
{{- .Values.adminToken.existingSecret | default (include "mac-sidecar.secretName" .) }}
{{- end }}

{{- define "mac-sidecar.adminTokenSecretKey" -}}
{{- if .Values.adminToken.existingSecret }}{{ .Values.adminToken.existingSecretKey }}{{ else }}admin-token{{ end }}
{{- end }}

{{/* Whether the Admin service has any admin credential ("true" or ""): the admin token, named
admins, or names from client certificates. Without one it answers inside the pod only. */}}
{{- define "mac-sidecar.adminCredentials" -}}
{{- if or .Values.adminToken.enabled .Values.adminTokens.existingSecret .Values.config.adminNamesFromCert }}true{{ end }}
{{- end }}

{{/* The kubernetes.io/tls Secrets of the gRPC listeners (the chart's Certificates write them
with tls.certManager.enabled). */}}
{{- define "mac-sidecar.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "mac-sidecar.fullname" . | trunc 59 | trimSuffix "-")) }}
{{- end }}

{{- define "mac-sidecar.adminTlsSecretName" -}}
{{- .Values.tls.admin.secretName | default (printf "%s-admin-tls" (include "mac-sidecar.fullname" . | trunc 53 | trimSuffix "-")) }}
{{- end }}

{{/* The name `helm test` and the CLI in the pod check the sidecar's certificate against. */}}
{{- define "mac-sidecar.tlsServerName" -}}
{{- if .Values.tls.serverName }}
{{- .Values.tls.serverName }}
{{- else if eq .Values.mode "deployment" }}
{{- printf "%s.%s.svc" (include "mac-sidecar.fullname" .) .Release.Namespace }}
{{- else }}
{{- "localhost" }}
{{- end }}
{{- end }}

{{/* The DNS names of the chart's Certificates: the Service's (deployment mode), localhost and
tls.certManager.dnsNames. */}}
{{- define "mac-sidecar.tlsDnsNames" -}}
{{- $names := list }}
{{- if eq .Values.mode "deployment" }}
{{- $full := include "mac-sidecar.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $names = list $full (printf "%s.%s" $full $ns) (printf "%s.%s.svc" $full $ns) (printf "%s.%s.svc.%s" $full $ns .Values.tls.certManager.clusterDomain) }}
{{- end }}
{{- $names = concat $names (list "localhost") .Values.tls.certManager.dnsNames | uniq }}
{{- toYaml $names }}
{{- end }}

{{- define "mac-sidecar.redisUrlSecretName" -}}
{{- .Values.redis.existingSecret | default (include "mac-sidecar.secretName" .) }}
{{- end }}

{{- define "mac-sidecar.redisUrlSecretKey" -}}
{{- if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}redis-url{{ end }}
{{- end }}

{{/* Whether the bundled Redis runs: "true" or "". redis.bundled.enabled null (the default):
unless redis.url or redis.existingSecret names an external Redis. */}}
{{- define "mac-sidecar.bundledRedis" -}}
{{- $enabled := .Values.redis.bundled.enabled }}
{{- if kindIs "bool" $enabled }}
{{- if $enabled }}true{{ end }}
{{- else if not (or .Values.redis.url .Values.redis.existingSecret) }}true
{{- end }}
{{- end }}

{{/* A Kubernetes quantity of bytes ("1Gi", "768Mi", "1.5G", 1073741824) as a whole number. */}}
{{- define "mac-sidecar.bytes" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) }}
{{- int64 . }}
{{- else }}
{{- $quantity := toString . }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $quantity }}
{{- $suffix := trimPrefix $number $quantity }}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if or (not $number) (not (hasKey $units $suffix)) }}
{{- fail (printf "mac-sidecar: %q is not a quantity of bytes the chart understands (a number with k, M, G, T, Ki, Mi, Gi or Ti)" $quantity) }}
{{- end }}
{{- mulf (float64 $number) (index $units $suffix) | int64 }}
{{- end }}
{{- end }}

{{/* Bytes as the shortest exact Kubernetes quantity ("768Mi"), for people to read. */}}
{{- define "mac-sidecar.quantity" -}}
{{- $bytes := int64 . }}
{{- $out := printf "%d" $bytes }}
{{- range list (list "Ki" 1024) (list "Mi" 1048576) (list "Gi" 1073741824) }}
{{- $size := int64 (index . 1) }}
{{- if and (ge $bytes $size) (eq (mod $bytes $size) 0) }}
{{- $out = printf "%d%s" (div $bytes $size) (index . 0) }}
{{- end }}
{{- end }}
{{- $out }}
{{- end }}

{{/* The bundled Redis's memory limit, for people to read ("1Gi"); "" without one. */}}
{{- define "mac-sidecar.redisMemoryLimit" -}}
{{- with dig "limits" "memory" "" (.Values.redis.bundled.resources | default dict) }}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ include "mac-sidecar.quantity" (include "mac-sidecar.bytes" .) }}{{ end }}
{{- end }}
{{- end }}

{{/* The bundled Redis's maxmemory in bytes: redis.bundled.maxmemory, or maxmemoryPercent of
its memory limit; always below that limit. */}}
{{- define "mac-sidecar.redisMaxmemory" -}}
{{- $bundled := .Values.redis.bundled }}
{{- $limit := dig "limits" "memory" "" ($bundled.resources | default dict) }}
{{- $limitBytes := int64 0 }}
{{- if $limit }}
{{- $limitBytes = include "mac-sidecar.bytes" $limit | int64 }}
{{- end }}
{{- if $bundled.maxmemory }}
{{- $maxmemory := include "mac-sidecar.bytes" $bundled.maxmemory | int64 }}
{{- if and $limitBytes (ge $maxmemory $limitBytes) }}
{{- fail (printf "mac-sidecar: redis.bundled.maxmemory (%s) must be below redis.bundled.resources.limits.memory (%s): Redis needs memory beyond its data (AOF rewrites, client buffers), or the kernel kills it before noeviction refuses a write" (toString $bundled.maxmemory) (toString $limit)) }}
{{- end }}
{{- $maxmemory }}
{{- else if $limitBytes }}
{{- div (mul $limitBytes (int $bundled.maxmemoryPercent)) 100 }}
{{- else }}
{{- fail "mac-sidecar: the bundled Redis needs redis.bundled.resources.limits.memory (maxmemory is then redis.bundled.maxmemoryPercent of it) or redis.bundled.maxmemory: without maxmemory, noeviction never refuses a write and a full Redis is killed instead" }}
{{- end }}
{{- end }}

{{/* The bundled Redis's redis.conf. The password is not in it: it includes auth.conf, from the
chart's Secret. */}}
{{- define "mac-sidecar.redisConf" -}}
{{- $bundled := .Values.redis.bundled -}}
# The bundled Redis of {{ include "mac-sidecar.fullname" . }}; its password is in auth.conf (from the Secret
# {{ include "mac-sidecar.secretName" . }}), included last.
port 6379
bind * -::*
dir /data
appendonly yes
appendfsync everysec
{{- if $bundled.maxmemory }}
# redis.bundled.maxmemory ({{ $bundled.maxmemory }}){{ with include "mac-sidecar.redisMemoryLimit" . }}, below the container's memory limit ({{ . }}){{ end }}
{{- else }}
# {{ int $bundled.maxmemoryPercent }}% of the container's memory limit ({{ include "mac-sidecar.redisMemoryLimit" . }})
{{- end }}
maxmemory {{ include "mac-sidecar.redisMaxmemory" . }}
maxmemory-policy noeviction
include /etc/redis/auth.conf
{{- end }}

{{/* Whether webhooks are on ("true" or ""): a URL in webhook.url or in the user's Secret. */}}
{{- define "mac-sidecar.webhooks" -}}
{{- if or .Values.webhook.url (and .Values.webhook.existingSecret .Values.webhook.existingSecretUrlKey) }}true{{ end }}
{{- end }}

{{/* The webhook signing secret (and the URL): the user's Secret, or the chart's. */}}
{{- define "mac-sidecar.webhookSecretName" -}}
{{- .Values.webhook.existingSecret | default (include "mac-sidecar.secretName" .) }}
{{- end }}

{{- define "mac-sidecar.webhookSecretKey" -}}
{{- if .Values.webhook.existingSecret }}{{ .Values.webhook.existingSecretKey }}{{ else }}webhook-secret{{ end }}
{{- end }}

{{- define "mac-sidecar.webhookUrlSecretName" -}}
{{- if .Values.webhook.url }}{{ include "mac-sidecar.secretName" . }}{{ else }}{{ .Values.webhook.existingSecret }}{{ end }}
{{- end }}

{{- define "mac-sidecar.webhookUrlSecretKey" -}}
{{- if .Values.webhook.url }}webhook-url{{ else }}{{ .Values.webhook.existingSecretUrlKey }}{{ end }}
{{- end }}

{{/* Where webhooks go, as the sidecar logs it: scheme and host, a path or query as "/***"
(they may carry a token). */}}
{{- define "mac-sidecar.webhookEndpoint" -}}
{{- if .Values.webhook.url }}
{{- $url := urlParse .Values.webhook.url }}
{{- printf "%s://%s%s" $url.scheme $url.host (ternary "/***" $url.path (or (ne (trimAll "/" $url.path) "") (ne $url.query "") (ne $url.fragment ""))) }}
{{- else }}
{{- printf "the URL in the Secret %s (key %s)" .Values.webhook.existingSecret .Values.webhook.existingSecretUrlKey }}
{{- end }}
{{- end }}

{{/* Whether the chart's own Secret has anything to hold: "true" or "". */}}
{{- define "mac-sidecar.ownSecret" -}}
{{- if or (not .Values.identitySecret.existingSecret) (and .Values.adminToken.enabled (not .Values.adminToken.existingSecret)) .Values.redis.url (include "mac-sidecar.bundledRedis" .) .Values.webhook.url (include "mac-sidecar.redisPasswordInSecret" .) (include "mac-sidecar.sentinelPasswordInSecret" .) }}true{{ end }}
{{- end }}

{{/* Whether the chart's Secret holds MAC_REDIS_PASSWORD / MAC_REDIS_SENTINEL_PASSWORD. */}}
{{- define "mac-sidecar.redisPasswordInSecret" -}}
{{- if and .Values.redis.password (not .Values.redis.existingPasswordSecret) }}true{{ end }}
{{- end }}
{{- define "mac-sidecar.sentinelPasswordInSecret" -}}
{{- if and .Values.redis.sentinel.password (not .Values.redis.sentinel.existingPasswordSecret) }}true{{ end }}
{{- end }}

{{/* "true" when the Enforcer also listens on a Unix domain socket (grpc.socket.enabled; by
default in sidecar mode only), else empty. */}}
{{- define "mac-sidecar.socket" -}}
{{- $enabled := .Values.grpc.socket.enabled }}
{{- if kindIs "invalid" $enabled }}{{ $enabled = eq .Values.mode "sidecar" }}{{ end }}
{{- if $enabled }}true{{ end }}
{{- end }}

{{/* The socket's path (MAC_GRPC_UDS). */}}
{{- define "mac-sidecar.socketPath" -}}
{{- printf "%s/grpc.sock" .Values.grpc.socket.dir }}
{{- end }}

{{/* The address the app container dials: unix:<path>. */}}
{{- define "mac-sidecar.socketAddress" -}}
{{- printf "unix:%s" (include "mac-sidecar.socketPath" .) }}
{{- end }}

{{/*
The app container's mount of the socket's volume, as a list item:
  volumeMounts:
    {{- include "mac-sidecar.socketVolumeMount" (index .Subcharts "mac-sidecar") | nindent 4 }}
with MAC_GRPC_ADDR (or the client's address) set to "mac-sidecar.socketAddress".
*/}}
{{- define "mac-sidecar.socketVolumeMount" -}}
{{- if include "mac-sidecar.socket" . -}}
- name: mac-sidecar-socket
  mountPath: {{ .Values.grpc.socket.dir }}
{{- end }}
{{- end }}

{{/* Where the journal volume is mounted (MAC_JOURNAL_DIR). */}}
{{- define "mac-sidecar.journalDir" -}}
/var/lib/mac-sidecar/journal
{{- end }}

{{/* The checks of the values that the schema cannot express; every rendering runs them. */}}
{{- define "mac-sidecar.validate" -}}
{{- $redis := .Values.redis }}
{{- if and (include "mac-sidecar.socket" .) (gt (int (.Values.config.workers | default 1)) 1) }}
{{- fail "mac-sidecar: grpc.socket takes one process (a socket file cannot be shared by workers): set config.workers to 1, or grpc.socket.enabled to false" }}
{{- end }}
{{- if and (ne $redis.type "single") (include "mac-sidecar.bundledRedis" .) }}
{{- fail (printf "mac-sidecar: redis.type %s needs an external Redis (redis.url or redis.existingSecret listing its seed nodes or sentinels); the bundled Redis is a single server" $redis.type) }}
{{- end }}
{{- if and (eq $redis.type "sentinel") (not $redis.sentinel.masterName) }}
{{- fail "mac-sidecar: redis.type sentinel needs redis.sentinel.masterName (MAC_REDIS_SENTINEL_MASTER)" }}
{{- end }}
{{- if hasKey $redis "enabled" }}
{{- fail "mac-sidecar: redis.enabled is now redis.bundled.enabled, and the bundled Redis's settings (image, extraArgs, persistence, resources, nodeSelector, tolerations, affinity) moved under redis.bundled too. The bundled Redis runs by default unless redis.url or redis.existingSecret names an external one" }}
{{- end }}
{{- $external := list }}
{{- if $redis.url }}{{ $external = append $external "redis.url" }}{{ end }}
{{- if $redis.existingSecret }}{{ $external = append $external "redis.existingSecret" }}{{ end }}
{{- $bundled := $redis.bundled.enabled }}
{{- if gt (len $external) 1 }}
{{- fail "mac-sidecar: redis.url and redis.existingSecret are both set: name the external Redis once, by its URL or by a Secret holding it" }}
{{- else if and $external (kindIs "bool" $bundled) $bundled }}
{{- fail (printf "mac-sidecar: redis.bundled.enabled=true runs the bundled Redis, but %s names an external one too: keep one. Leave redis.bundled.enabled unset and naming an external Redis switches the bundled one off" (first $external)) }}
{{- else if and (not $external) (kindIs "bool" $bundled) (not $bundled) }}
{{- fail "mac-sidecar: redis.bundled.enabled=false needs an external Redis: redis.url (a redis://, rediss:// or unix:// URL) or redis.existingSecret (a Secret holding the URL)" }}
{{- end }}
{{- if include "mac-sidecar.bundledRedis" . }}
{{- $_ := include "mac-sidecar.redisMaxmemory" . }}
{{- end }}
{{- $webhook := .Values.webhook }}
{{- if and $webhook.secret $webhook.existingSecret }}
{{- fail "mac-sidecar: webhook.secret and webhook.existingSecret are both set: give the signing secret once" }}
{{- end }}
{{- if and $webhook.existingSecretUrlKey (not $webhook.existingSecret) }}
{{- fail "mac-sidecar: webhook.existingSecretUrlKey is a key of webhook.existingSecret, which is not set" }}
{{- end }}
{{- if and $webhook.url $webhook.existingSecretUrlKey }}
{{- fail "mac-sidecar: webhook.url and webhook.existingSecretUrlKey are both set: give the receiver's URL once" }}
{{- end }}
{{- if and (not (include "mac-sidecar.webhooks" .)) (or $webhook.secret $webhook.existingSecret) }}
{{- fail "mac-sidecar: webhook.secret and webhook.existingSecret sign the webhooks of webhook.url (or of the URL at webhook.existingSecretUrlKey), which is not set" }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") .Values.sidecar.native (not (semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version)) }}
{{- fail (printf "mac-sidecar: sidecar.native needs Kubernetes 1.29 or newer (init containers with restartPolicy: Always); this cluster is %s" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") (or .Values.networkPolicy.enabled .Values.metrics.serviceMonitor.enabled) (empty .Values.sidecar.podSelector) }}
{{- fail "mac-sidecar: in sidecar mode, networkPolicy.enabled and metrics.serviceMonitor.enabled need sidecar.podSelector (the labels of the routing pods that carry the sidecar)" }}
{{- end }}
{{- range $name, $probe := .Values.probes }}
{{- if and $probe.enabled (not $.Values.metrics.enabled) }}
{{- if $.Values.tls.enabled }}
{{- fail (printf "mac-sidecar: with tls.enabled probes.%s is an HTTP probe of the metrics port (/livez, /readyz; Kubernetes' gRPC probes cannot speak TLS), which metrics.enabled=false turns off; keep metrics enabled or set probes.%s.enabled=false" $name $name) }}
{{- else if eq $probe.type "http" }}
{{- fail (printf "mac-sidecar: probes.%s.type http asks the metrics port (/livez, /readyz), which metrics.enabled=false turns off; use type grpc" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $tls := .Values.tls }}
{{- if and $tls.enabled (eq (toString .Values.config.grpcEngine) "native") }}
{{- fail "mac-sidecar: config.grpcEngine native serves no TLS (pygrpc-native has none yet): set config.grpcEngine grpcio to keep tls.enabled, or terminate TLS in front of the sidecar" }}
{{- end }}
{{- if not $tls.enabled }}
{{- if $tls.clientAuth }}
{{- fail "mac-sidecar: tls.clientAuth needs tls.enabled=true" }}
{{- end }}
{{- if $tls.certManager.enabled }}
{{- fail "mac-sidecar: tls.certManager.enabled needs tls.enabled=true" }}
{{- end }}
{{- if $tls.admin.enabled }}
{{- fail "mac-sidecar: tls.admin.enabled needs tls.enabled=true" }}
{{- end }}
{{- else }}
{{- if and (not $tls.secretName) (not $tls.certManager.enabled) }}
{{- fail "mac-sidecar: tls.enabled needs tls.secretName (a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt) or tls.certManager.enabled=true (a cert-manager Certificate writing one)" }}
{{- end }}
{{- if and $tls.certManager.enabled (not $tls.certManager.issuerRef.name) }}
{{- fail "mac-sidecar: tls.certManager.enabled needs tls.certManager.issuerRef.name (the Issuer or ClusterIssuer that signs the certificate)" }}
{{- end }}
{{- if $tls.admin.enabled }}
{{- if not .Values.admin.port }}
{{- fail "mac-sidecar: tls.admin.enabled needs admin.port (a listener of its own; 0 serves Admin on grpc.port with the Enforcer's certificate)" }}
{{- end }}
{{- if and (not $tls.admin.secretName) (not $tls.certManager.enabled) }}
{{- fail "mac-sidecar: tls.admin.enabled needs tls.admin.secretName (a kubernetes.io/tls Secret) or tls.certManager.enabled=true" }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.config.adminNamesFromCert (not (and $tls.enabled $tls.clientAuth)) }}
{{- fail "mac-sidecar: config.adminNamesFromCert needs mTLS: tls.enabled=true and tls.clientAuth=true (the client certificates name the admins)" }}
{{- end }}
{{- if and (not (include "mac-sidecar.adminCredentials" .)) (not .Values.admin.port) }}
{{- fail "mac-sidecar: without an admin token (adminToken.enabled=false, no adminTokens.existingSecret, no config.adminNamesFromCert) the Admin service answers inside the pod only, on a port of its own: set admin.port, or give the Admin service a token" }}
{{- end }}
{{- if and .Values.admin.port (or (eq (int .Values.admin.port) (int .Values.grpc.port)) (and .Values.metrics.enabled (eq (int .Values.admin.port) (int .Values.metrics.port)))) }}
{{- fail "mac-sidecar: admin.port must differ from grpc.port and metrics.port (0 serves Admin on grpc.port)" }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.grpc.port)) }}
{{- fail "mac-sidecar: metrics.port must differ from grpc.port" }}
{{- end }}
{{- end }}

{{/* A value as the string a MAC_* variable holds (whole numbers without an exponent). */}}
{{- define "mac-sidecar.envValue" -}}
{{- if kindIs "slice" . }}
{{- join "," . }}
{{- else if and (kindIs "float64" .) (eq . (floor .)) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* The sidecar's non-secret settings: the data of the chart's ConfigMap. */}}
{{- define "mac-sidecar.settings" -}}
MAC_GRPC_ADDR: {{ printf "0.0.0.0:%d" (int .Values.grpc.port) | quote }}
{{- if .Values.admin.port }}
{{- /* without any admin credential, the sidecar serves the Admin service on loopback only */}}
MAC_ADMIN_ADDR: {{ printf "%s:%d" (ternary "0.0.0.0" "127.0.0.1" (not (empty (include "mac-sidecar.adminCredentials" .)))) (int .Values.admin.port) | quote }}
{{- end }}
{{- if include "mac-sidecar.socket" . }}
MAC_GRPC_UDS: {{ include "mac-sidecar.socketPath" . | quote }}
{{- end }}
MAC_METRICS_ADDR: {{ ternary (printf "0.0.0.0:%d" (int .Values.metrics.port)) "" .Values.metrics.enabled | quote }}
MAC_JOURNAL_DIR: {{ include "mac-sidecar.journalDir" . | quote }}
MAC_REDIS_TYPE: {{ .Values.redis.type | quote }}
{{- if .Values.redis.username }}
MAC_REDIS_USERNAME: {{ .Values.redis.username | quote }}
{{- end }}
{{- if .Values.redis.sentinel.masterName }}
MAC_REDIS_SENTINEL_MASTER: {{ .Values.redis.sentinel.masterName | quote }}
{{- end }}
{{- if .Values.redis.sentinel.username }}
MAC_REDIS_SENTINEL_USERNAME: {{ .Values.redis.sentinel.username | quote }}
{{- end }}
MAC_REDIS_WAIT_REPLICAS: {{ int .Values.redis.wait.replicas | toString | quote }}
MAC_REDIS_WAIT_TIMEOUT_MS: {{ int .Values.redis.wait.timeoutMs | toString | quote }}
{{- if .Values.planCatalog }}
MAC_PLAN_CATALOG: "/etc/mac-sidecar/plans/plans.json"
{{- end }}
{{- if .Values.identitySecret.asFile }}
MAC_IDENTITY_SECRET_FILE: "/etc/mac-sidecar/identity/identity-secret"
{{- end }}
{{- if and .Values.adminToken.enabled .Values.adminToken.asFile }}
MAC_ADMIN_TOKEN_FILE: "/etc/mac-sidecar/admin-token/admin-token"
{{- end }}
{{- if .Values.adminTokens.existingSecret }}
MAC_ADMIN_TOKENS_FILE: "/etc/mac-sidecar/admin-tokens/admin-tokens"
{{- end }}
{{- if .Values.tls.enabled }}
MAC_TLS_CERT_FILE: "/etc/mac-sidecar/tls/tls.crt"
MAC_TLS_KEY_FILE: "/etc/mac-sidecar/tls/tls.key"
{{- if .Values.tls.clientAuth }}
MAC_TLS_CLIENT_CA_FILE: "/etc/mac-sidecar/tls/ca.crt"
{{- end }}
{{- if .Values.tls.admin.enabled }}
MAC_ADMIN_TLS_CERT_FILE: "/etc/mac-sidecar/admin-tls/tls.crt"
MAC_ADMIN_TLS_KEY_FILE: "/etc/mac-sidecar/admin-tls/tls.key"
{{- end }}
# The CLI in the pod (`kubectl exec ... -- sidecar ...`) calls the sidecar over TLS too.
MAC_CLI_TLS_CA: "/etc/mac-sidecar/tls/ca.crt"
MAC_CLI_TLS_SERVER_NAME: {{ include "mac-sidecar.tlsServerName" . | quote }}
{{- if .Values.tls.clientAuth }}
MAC_CLI_TLS_CERT: "/etc/mac-sidecar/tls/tls.crt"
MAC_CLI_TLS_KEY: "/etc/mac-sidecar/tls/tls.key"
{{- end }}
{{- end }}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{ printf "MAC_%s" ($key | snakecase | upper) }}: {{ include "mac-sidecar.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Annotations that roll the pods when the settings change; a parent chart adds them to
its pod template in sidecar mode. */}}
{{- define "mac-sidecar.podAnnotations" -}}
checksum/mac-sidecar-config: {{ include "mac-sidecar.settings" . | sha256sum }}
checksum/mac-sidecar-secret: {{ list .Values.redis.url .Values.redis.existingSecret .Values.redis.existingSecretKey (include "mac-sidecar.bundledRedis" .) .Values.identitySecret .Values.adminToken .Values.webhook .Values.redis.password .Values.redis.existingPasswordSecret .Values.redis.sentinel | toJson | sha256sum }}
{{- if .Values.planCatalog }}
checksum/mac-sidecar-plans: {{ .Values.planCatalog | toJson | sha256sum }}
{{- end }}
{{- end }}

{{/* One probe, from a block of .Values.probes. Call with (dict "root" $ "probe" $block "path" "/livez"). */}}
{{- define "mac-sidecar.probe" -}}
{{- $root := .root }}
{{- $probe := .probe }}
{{- /* Kubernetes' gRPC probes cannot speak TLS: with TLS on, the HTTP ones of the metrics port. */}}
{{- if and (eq $probe.type "grpc") (not $root.Values.tls.enabled) }}
grpc:
  port: {{ int $root.Values.grpc.port }}
  service: {{ $probe.grpcService | default "" | quote }}
{{- else }}
httpGet:
  path: {{ .path }}
  port: {{ int $root.Values.metrics.port }}
{{- end }}
initialDelaySeconds: {{ int ($probe.initialDelaySeconds | default 0) }}
periodSeconds: {{ int $probe.periodSeconds }}
timeoutSeconds: {{ int $probe.timeoutSeconds }}
failureThreshold: {{ int $probe.failureThreshold }}
{{- if $probe.successThreshold }}
successThreshold: {{ int $probe.successThreshold }}
{{- end }}
{{- end }}

{{/*
The sidecar container, as a mapping (no leading "- "). A parent chart in sidecar mode:
  containers:
    - name: routing
      ...
    - {{ include "mac-sidecar.container" (index .Subcharts "mac-sidecar") | nindent 6 | trim }}
*/}}
{{- define "mac-sidecar.container" -}}
{{- include "mac-sidecar.validate" . -}}
name: mac-sidecar
image: {{ include "mac-sidecar.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args:
  - serve
ports:
  - name: mac-grpc
    containerPort: {{ int .Values.grpc.port }}
    protocol: TCP
{{- if .Values.admin.port }}
  - name: mac-admin
    containerPort: {{ int .Values.admin.port }}
    protocol: TCP
{{- end }}
{{- if .Values.metrics.enabled }}
  - name: mac-metrics
    containerPort: {{ int .Values.metrics.port }}
    protocol: TCP
{{- end }}
envFrom:
  - configMapRef:
      name: {{ include "mac-sidecar.fullname" . }}
{{- with .Values.extraEnvFrom }}
{{- toYaml . | nindent 2 }}
{{- end }}
env:
  - name: MAC_REDIS_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "mac-sidecar.redisUrlSecretName" . }}
        key: {{ include "mac-sidecar.redisUrlSecretKey" . }}
{{- if or .Values.redis.existingPasswordSecret .Values.redis.password }}
  - name: MAC_REDIS_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ .Values.redis.existingPasswordSecret | default (include "mac-sidecar.secretName" .) }}
        key: {{ ternary .Values.redis.existingPasswordSecretKey "redis-auth-password" (not (empty .Values.redis.existingPasswordSecret)) }}
{{- end }}
{{- if or .Values.redis.sentinel.existingPasswordSecret .Values.redis.sentinel.password }}
  - name: MAC_REDIS_SENTINEL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ .Values.redis.sentinel.existingPasswordSecret | default (include "mac-sidecar.secretName" .) }}
        key: {{ ternary .Values.redis.sentinel.existingPasswordSecretKey "redis-sentinel-password" (not (empty .Values.redis.sentinel.existingPasswordSecret)) }}
{{- end }}
{{- if not .Values.identitySecret.asFile }}
  - name: MAC_IDENTITY_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ include "mac-sidecar.identitySecretName" . }}
        key: {{ include "mac-sidecar.identitySecretKey" . }}
{{- end }}
{{- if and .Values.adminToken.enabled (not .Values.adminToken.asFile) }}
  - name: MAC_ADMIN_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "mac-sidecar.adminTokenSecretName" . }}
        key: {{ include "mac-sidecar.adminTokenSecretKey" . }}
{{- end }}
{{- if include "mac-sidecar.webhooks" . }}
  - name: MAC_WEBHOOK_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "mac-sidecar.webhookUrlSecretName" . }}
        key: {{ include "mac-sidecar.webhookUrlSecretKey" . }}
  - name: MAC_WEBHOOK_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ include "mac-sidecar.webhookSecretName" . }}
        key: {{ include "mac-sidecar.webhookSecretKey" . }}
{{- end }}
{{- with .Values.extraEnv }}
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- if .Values.probes.startup.enabled }}
startupProbe:
  {{- include "mac-sidecar.probe" (dict "root" . "probe" .Values.probes.startup "path" "/livez") | trim | nindent 2 }}
{{- end }}
{{- if .Values.probes.liveness.enabled }}
livenessProbe:
  {{- include "mac-sidecar.probe" (dict "root" . "probe" .Values.probes.liveness "path" "/livez") | trim | nindent 2 }}
{{- end }}
{{- if .Values.probes.readiness.enabled }}
readinessProbe:
  {{- include "mac-sidecar.probe" (dict "root" . "probe" .Values.probes.readiness "path" "/readyz") | trim | nindent 2 }}
{{- end }}
{{- if .Values.preStopSleepSeconds }}
lifecycle:
  preStop:
    exec:
      command: ["sleep", {{ int .Values.preStopSleepSeconds | toString | quote }}]
{{- end }}
terminationMessagePolicy: FallbackToLogsOnError
volumeMounts:
  - name: mac-sidecar-tmp
    mountPath: /tmp
  - name: mac-sidecar-journal
    mountPath: {{ include "mac-sidecar.journalDir" . }}
{{- if include "mac-sidecar.socket" . }}
  - name: mac-sidecar-socket
    mountPath: {{ .Values.grpc.socket.dir }}
{{- end }}
{{- if .Values.planCatalog }}
  - name: mac-sidecar-plans
    mountPath: /etc/mac-sidecar/plans
    readOnly: true
{{- end }}
{{- if .Values.identitySecret.asFile }}
  - name: mac-sidecar-identity
    mountPath: /etc/mac-sidecar/identity
    readOnly: true
{{- end }}
{{- if and .Values.adminToken.enabled .Values.adminToken.asFile }}
  - name: mac-sidecar-admin-token
    mountPath: /etc/mac-sidecar/admin-token
    readOnly: true
{{- end }}
{{- if .Values.adminTokens.existingSecret }}
  - name: mac-sidecar-admin-tokens
    mountPath: /etc/mac-sidecar/admin-tokens
    readOnly: true
{{- end }}
{{- if .Values.tls.enabled }}
  - name: mac-sidecar-tls
    mountPath: /etc/mac-sidecar/tls
    readOnly: true
{{- if .Values.tls.admin.enabled }}
  - name: mac-sidecar-admin-tls
    mountPath: /etc/mac-sidecar/admin-tls
    readOnly: true
{{- end }}
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The container as a native sidecar: an init container with restartPolicy: Always. */}}
{{- define "mac-sidecar.initContainer" -}}
{{- include "mac-sidecar.container" . }}
restartPolicy: Always
{{- end }}

{{/*
List items for a parent chart's pod spec, following sidecar.native:
  initContainers:
    {{- include "mac-sidecar.initContainers" (index .Subcharts "mac-sidecar") | nindent 4 }}
  containers:
    - name: routing
    {{- include "mac-sidecar.containers" (index .Subcharts "mac-sidecar") | nindent 4 }}
*/}}
{{- define "mac-sidecar.initContainers" -}}
{{- if .Values.sidecar.native -}}
- {{ include "mac-sidecar.initContainer" . | nindent 2 | trim }}
{{- end }}
{{- end }}

{{- define "mac-sidecar.containers" -}}
{{- if not .Values.sidecar.native -}}
- {{ include "mac-sidecar.container" . | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* The pod volumes the container mounts, as list items. */}}
{{- define "mac-sidecar.volumes" -}}
- name: mac-sidecar-tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: mac-sidecar-journal
  emptyDir:
    {{- with .Values.journal.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ .Values.journal.sizeLimit }}
{{- if include "mac-sidecar.socket" . }}
{{- /* shared with the app container, which mounts it too ("mac-sidecar.socketVolumeMount") */}}
- name: mac-sidecar-socket
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- if .Values.planCatalog }}
- name: mac-sidecar-plans
  configMap:
    name: {{ include "mac-sidecar.plansName" . }}
{{- end }}
{{- if .Values.identitySecret.asFile }}
- name: mac-sidecar-identity
  secret:
    secretName: {{ include "mac-sidecar.identitySecretName" . }}
    defaultMode: 0444
    items:
      - key: {{ include "mac-sidecar.identitySecretKey" . }}
        path: identity-secret
{{- end }}
{{- /* Whole Secret volumes, never subPath mounts: the kubelet updates them when the Secret
changes, and the sidecar reads the files again. */}}
{{- if and .Values.adminToken.enabled .Values.adminToken.asFile }}
- name: mac-sidecar-admin-token
  secret:
    secretName: {{ include "mac-sidecar.adminTokenSecretName" . }}
    defaultMode: 0444
    items:
      - key: {{ include "mac-sidecar.adminTokenSecretKey" . }}
        path: admin-token
{{- end }}
{{- with .Values.adminTokens.existingSecret }}
- name: mac-sidecar-admin-tokens
  secret:
    secretName: {{ . }}
    defaultMode: 0444
    items:
      - key: {{ $.Values.adminTokens.existingSecretKey }}
        path: admin-tokens
{{- end }}
{{- if .Values.tls.enabled }}
- name: mac-sidecar-tls
  secret:
    secretName: {{ include "mac-sidecar.tlsSecretName" . }}
    defaultMode: 0444
{{- if .Values.tls.admin.enabled }}
- name: mac-sidecar-admin-tls
  secret:
    secretName: {{ include "mac-sidecar.adminTlsSecretName" . }}
    defaultMode: 0444
{{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* topologySpreadConstraints, each with the pods' selector unless it names one. */}}
{{- define "mac-sidecar.topologySpreadConstraints" -}}
{{- $selector := include "mac-sidecar.selectorLabels" . | fromYaml }}
{{- $constraints := list }}
{{- range .Values.topologySpreadConstraints }}
{{- $constraint := deepCopy . }}
{{- if not $constraint.labelSelector }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}
