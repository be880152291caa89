{{/*
Object names are fixed (mtls-egress-controller, mtls-egress-proxy, ...), not derived from
the release name: the controller and the agent find the proxy's ConfigMap, Lease and
Service by these names, and the CRD and ClusterRoles are cluster-wide. One release per
cluster, as with the kustomize install.
*/}}

{{/* Labels every object carries. */}}
{{- define "mtls-egress.labels" -}}
app.kubernetes.io/part-of: mtls-egress
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The image reference: by digest when one is given, else by tag (default: appVersion). */}}
{{- define "mtls-egress.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Whether a proxy runs: every data plane but none. */}}
{{- define "mtls-egress.proxyEnabled" -}}
{{- if ne .Values.dataPlane "none" }}true{{ end -}}
{{- end }}

{{/* Whether the controller reads the cluster's networks: with any proxy, since the nodes' own addresses are refused whatever clusterCidrs says. */}}
{{- define "mtls-egress.readsClusterNetworks" -}}
{{- if include "mtls-egress.proxyEnabled" . }}true{{ end -}}
{{- end }}

{{/* Pod-level settings a platform team places: pull secrets, node selection, priority. */}}
{{- define "mtls-egress.podPlacement" -}}
{{- $root := index . 0 -}}
{{- $pod := index . 1 -}}
{{- with $root.Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with $pod.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Who may reach the metrics and status ports: pods matching metricsAccess, as one NetworkPolicy peer. */}}
{{- define "mtls-egress.metricsPeers" -}}
- namespaceSelector:
    {{- toYaml (.Values.metricsAccess.namespaceSelector | default (dict "matchLabels" (dict "mtls-egress.io/monitoring" "true"))) | nindent 4 }}
  {{- with .Values.metricsAccess.podSelector }}
  podSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Settings no value can make invalid for the controller fail here, at install, not in a crash loop. */}}
{{- define "mtls-egress.validate" -}}
{{- $ports := .Values.listenerPorts -}}
{{- if gt (int $ports.first) (int $ports.last) }}
{{- fail (printf "listenerPorts: first (%d) is above last (%d)" (int $ports.first) (int $ports.last)) }}
{{- end }}
{{- if and (le (int $ports.first) 8081) (ge (int $ports.last) 8081) }}
{{- fail (printf "listenerPorts %d-%d holds 8081, the proxy's status port" (int $ports.first) (int $ports.last)) }}
{{- end }}
{{- $pdb := .Values.proxy.podDisruptionBudget -}}
{{- if and (include "mtls-egress.proxyEnabled" .) $pdb.enabled $pdb.minAvailable (not (kindIs "string" $pdb.minAvailable)) }}
{{- if ge (int $pdb.minAvailable) (int .Values.proxy.replicas) }}
{{- fail (printf "proxy.podDisruptionBudget.minAvailable (%d) must be below proxy.replicas (%d), or no node running a proxy pod could ever be drained" (int $pdb.minAvailable) (int .Values.proxy.replicas)) }}
{{- end }}
{{- end }}
{{- if and (include "mtls-egress.proxyEnabled" .) $pdb.enabled (not (hasKey $pdb "minAvailable")) (has (toString $pdb.maxUnavailable) (list "0" "0%")) }}
{{- fail "proxy.podDisruptionBudget.maxUnavailable 0 would keep every node running a proxy pod from ever being drained" }}
{{- end }}
{{- end }}

{{/* The cluster's pod and Service ranges and the nodes' addresses, refused as egress destinations. */}}
{{- define "mtls-egress.clusterNetworksRules" }}
  # What is refused as egress destinations: the nodes' own addresses (always), and the
  # cluster's pod and Service ranges (--cluster-cidrs auto): Nodes' spec.podCIDRs and
  # status.addresses, ServiceCIDRs, and Calico's IP pools where Calico runs. List and
  # watch only: no single object is read, and nothing is written.
  - apiGroups: [""]
    resources: [nodes]
    verbs: [list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [servicecidrs]
    verbs: [list, watch]
  - apiGroups: [crd.projectcalico.org]
    resources: [ippools]
    verbs: [list, watch]
  # Where the API server itself listens (the kubernetes Service's Endpoints, by name): the
  # proxy's egress NetworkPolicy opens it, since it is often a node's address.
  - apiGroups: [""]
    resources: [endpoints]
    resourceNames: [kubernetes]
    verbs: [get, list, watch]
{{- end }}
