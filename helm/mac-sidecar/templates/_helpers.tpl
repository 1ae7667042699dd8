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

{{/* The Secret the chart generates or fills (admin token, identity secret, Redis URL). */}}
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

{{/* Whether the chart's own Secret has anything to hold: "true" or "". */}}
{{- define "mac-sidecar.ownSecret" -}}
{{- if or (not .Values.identitySecret.existingSecret) (and .Values.adminToken.enabled (not .Values.adminToken.existingSecret)) .Values.redis.url .Values.redis.enabled }}true{{ end }}
{{- end }}

{{/* The checks of the values that the schema cannot express; every rendering runs them. */}}
{{- define "mac-sidecar.validate" -}}
{{- $sources := list }}
{{- if .Values.redis.url }}{{ $sources = append $sources "redis.url" }}{{ end }}
{{- if .Values.redis.existingSecret }}{{ $sources = append $sources "redis.existingSecret" }}{{ end }}
{{- if .Values.redis.enabled }}{{ $sources = append $sources "redis.enabled" }}{{ end }}
{{- if ne (len $sources) 1 }}
{{- fail (printf "mac-sidecar: configure exactly one Redis: redis.url (a redis://, rediss:// or unix:// URL), redis.existingSecret (a Secret holding the URL) or redis.enabled=true (a small bundled Redis for trials); %s" (ternary "none is set" (printf "%s are all set, keep one" (join ", " $sources)) (empty $sources))) }}
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
MAC_ADMIN_ADDR: {{ printf "0.0.0.0:%d" (int .Values.admin.port) | quote }}
{{- end }}
MAC_METRICS_ADDR: {{ ternary (printf "0.0.0.0:%d" (int .Values.metrics.port)) "" .Values.metrics.enabled | quote }}
{{- if .Values.planCatalog }}
MAC_PLAN_CATALOG: "/etc/mac-sidecar/plans/plans.json"
{{- end }}
{{- if .Values.identitySecret.asFile }}
MAC_IDENTITY_SECRET_FILE: "/etc/mac-sidecar/identity/identity-secret"
{{- end }}
{{- if and .Values.adminToken.enabled .Values.adminToken.asFile }}
MAC_ADMIN_TOKEN_FILE: "/etc/mac-sidecar/admin-token/admin-token"
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
checksum/mac-sidecar-secret: {{ list .Values.redis.url .Values.redis.existingSecret .Values.redis.existingSecretKey .Values.identitySecret .Values.adminToken | toJson | sha256sum }}
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
