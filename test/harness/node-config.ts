// Pure: the test node's layout and every configuration file its components read,
// rendered from that layout. node-cluster.ts writes them and starts the processes.
import { join } from 'node:path';

/** The single node's fixed network plan. Nothing here routes off the machine (see nodeGuardRules). */
export const nodeNetwork = {
  nodeName: 'mtls-egress-node',
  /** All pods of the cluster; the node's own range is the first /24, which kube-controller-manager assigns it. */
  clusterCidr: '10.244.0.0/16',
  podCidr: '10.244.0.0/24',
  clusterDomain: 'cluster.local',
  /** The CoreDNS Service's ClusterIP, from control-plane.ts's Service range. */
  clusterDnsIp: '10.96.0.10',
  /** The CNI bridge; at most 15 characters, as every interface name. */
  bridge: 'mtls-egress0',
  /** The parent cgroup of every pod, in every cgroup v1 hierarchy (kubelet cgroupRoot). */
  cgroupRoot: 'mtls-egress-node',
  /** Our nftables table, which keeps cluster traffic on this machine. */
  guardTable: 'mtls-egress-node-guard',
  ports: { kubelet: 10250, kubeletHealthz: 10248, kubeProxyHealthz: 10256, kubeProxyMetrics: 10249, controllerManager: 10257, scheduler: 10259 },
} as const;

/** Every path a node cluster writes, under its state directory. */
export interface NodeLayout {
  stateDir: string;
  /** The machine's own address (the kubelet refuses loopback) and the interface that carries it. */
  nodeIp: string;
  uplink: string;
  logDir: string;
  pkiDir: string;
  containerd: { dir: string; config: string; root: string; state: string; socket: string; runcRoot: string; registryConfigDir: string; tmp: string };
  cni: { confDir: string; ipamDir: string };
  kubelet: { dir: string; rootDir: string; config: string; kubeconfig: string; podLogsDir: string; resolvConf: string };
  kubeProxy: { config: string; kubeconfig: string };
  controllerManager: { kubeconfig: string };
  scheduler: { kubeconfig: string };
  addonsDir: string;
}

export function nodeLayout(stateDir: string, nodeIp: string, uplink: string): NodeLayout {
  const containerd = join(stateDir, 'containerd');
  const kubelet = join(stateDir, 'kubelet');
  return {
    stateDir,
    nodeIp,
    uplink,
    logDir: join(stateDir, 'logs'),
    pkiDir: join(stateDir, 'control-plane/pki'),
    containerd: {
      dir: containerd,
      config: join(containerd, 'config.toml'),
      root: join(containerd, 'root'),
      state: join(containerd, 'state'),
      socket: join(containerd, 'containerd.sock'),
      runcRoot: join(containerd, 'runc'),
      registryConfigDir: join(containerd, 'certs.d'),
      tmp: join(containerd, 'tmp'),
    },
    cni: { confDir: join(stateDir, 'cni/net.d'), ipamDir: join(stateDir, 'cni/ipam') },
    kubelet: {
      dir: kubelet,
      rootDir: join(kubelet, 'root'),
      config: join(kubelet, 'config.yaml'),
      kubeconfig: join(kubelet, 'kubeconfig'),
      podLogsDir: join(stateDir, 'pod-logs'),
      resolvConf: join(kubelet, 'resolv.conf'),
    },
    kubeProxy: { config: join(stateDir, 'kube-proxy/config.yaml'), kubeconfig: join(stateDir, 'kube-proxy/kubeconfig') },
    controllerManager: { kubeconfig: join(stateDir, 'kube-controller-manager/kubeconfig') },
    scheduler: { kubeconfig: join(stateDir, 'kube-scheduler/kubeconfig') },
    addonsDir: join(stateDir, 'addons'),
  };
}

export interface ContainerdBinaries {
  /** Directory with containerd, containerd-shim-runc-v2 and ctr. */
  containerdDir: string;
  /** Directory with `runc`: the shim looks it up on PATH by that name for `-info`. */
  runcDir: string;
  cniPluginDir: string;
}

/**
 * containerd 2.4 (config version 4): every path under the state directory, so nothing of
 * this runtime outlives `down` but what it cannot be told to move (see host-state.ts).
 */
export function renderContainerdConfig(layout: NodeLayout, binaries: ContainerdBinaries, sandboxImage: string): string {
  const quote = (value: string): string => JSON.stringify(value);
  return `version = 4
root = ${quote(layout.containerd.root)}
state = ${quote(layout.containerd.state)}
temp = ${quote(layout.containerd.tmp)}
# Not the host's /etc/containerd/conf.d drop-ins (an empty list means that default).
imports = [${quote(join(layout.containerd.dir, 'conf.d/*.toml'))}]
# Plugins that would use paths outside the state directory (opt: /opt/containerd; NRI:
# /var/run/nri; image verifiers: /opt/containerd), or that a single overlayfs node never uses.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.nri.v1.nri",
  "io.containerd.image-verifier.v1.bindir",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[plugins.'io.containerd.server.v1.grpc']
  address = ${quote(layout.containerd.socket)}
[plugins.'io.containerd.server.v1.ttrpc']
  address = ${quote(`${layout.containerd.socket}.ttrpc`)}

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    # Built here from Kubernetes' pause.c; the node never pulls an image.
    sandbox = ${quote(sandboxImage)}
  [plugins.'io.containerd.cri.v1.images'.registry]
    # Every registry resolves to a closed local port (see renderRegistryHosts): an image
    # that was not imported fails at once, and no pull leaves the machine.
    config_path = ${quote(layout.containerd.registryConfigDir)}

[plugins.'io.containerd.cri.v1.runtime']
  # Even root lacks CAP_SYS_RESOURCE on these machines, so runc cannot set the negative
  # oom_score_adj the kubelet asks for its infrastructure ("can't get final child's PID
  # from pipe"). This clamps it to containerd's own.
  restrict_oom_score_adj = true
  # Network namespaces under the state directory rather than /var/run/netns.
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  disable_apparmor = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = ${quote(join(binaries.containerdDir, 'containerd-shim-runc-v2'))}
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = ${quote(join(binaries.runcDir, 'runc'))}
        # runc's own state, which defaults to /run/containerd/runc.
        Root = ${quote(layout.containerd.runcRoot)}
        # cgroup v1 with the kubelet's cgroupfs driver: the machine's init holds cgroups
        # in v1 hierarchies, so neither systemd nor pure v2 is possible.
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [${quote(binaries.cniPluginDir)}]
    conf_dir = ${quote(layout.cni.confDir)}

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
`;
}

/**
 * containerd's hosts.toml for every registry (`_default`): the discard port on loopback,
 * where nothing listens. A pod whose image is not on the node reports
 * "dial tcp 127.0.0.1:9: connect: connection refused" instead of reaching for the internet.
 */
export function renderRegistryHosts(): string {
  return `# No registry: images are imported (test/harness/build-images.sh, npm run image).
server = "http://127.0.0.1:9"

[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
`;
}

/**
 * A bridge with host-local addresses from the node's pod range, no masquerade (nothing
 * leaves the machine, so there is nothing to hide pod addresses from), hairpin so a pod
 * reaches itself through its Service, and portmap for hostPort.
 */
export function renderCniConfig(layout: NodeLayout): string {
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'mtls-egress-node',
      plugins: [
        {
          type: 'bridge',
          bridge: nodeNetwork.bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: nodeNetwork.podCidr }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: layout.cni.ipamDir,
          },
        },
        { type: 'portmap', capabilities: { portMappings: true }, backend: 'nftables' },
      ],
    },
    null,
    2,
  )}\n`;
}

export interface KubeletCertificates {
  caCert: string;
  servingCert: string;
  servingKey: string;
}

/** The kubelet, as the trial on these machines found it must run (see the comments). */
export function renderKubeletConfig(layout: NodeLayout, certificates: KubeletCertificates): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 is mounted and the machine's init holds cgroups in it, so pure v2 is impossible;
# kubelets from 1.35 refuse v1 unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
# Every pod cgroup under one parent of ours, created before and removed after.
cgroupRoot: /${nodeNetwork.cgroupRoot}
# Root lacks CAP_SYS_RESOURCE here: no negative oom_score_adj for the kubelet itself.
oomScoreAdj: 0
containerRuntimeEndpoint: unix://${layout.containerd.socket}
address: ${layout.nodeIp}
port: ${nodeNetwork.ports.kubelet}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${nodeNetwork.ports.kubeletHealthz}
tlsCertFile: ${certificates.servingCert}
tlsPrivateKeyFile: ${certificates.servingKey}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${certificates.caCert}}
authorization: {mode: Webhook}
clusterDomain: ${nodeNetwork.clusterDomain}
clusterDNS: [${nodeNetwork.clusterDnsIp}]
# Pods get cluster DNS only: no host resolver to forward to, so no query leaves the machine.
resolvConf: ${layout.kubelet.resolvConf}
podLogsDir: ${layout.kubelet.podLogsDir}
# Images are imported, never pulled: garbage-collecting one would lose it for good.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The disk is shared with other work on the machine; evict only when it is really full.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
failSwapOn: false
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
`;
}

export function renderKubeProxyConfig(layout: NodeLayout): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
# nftables: native on this kernel and Debian's nft, one table that cleanup removes whole,
# and no iptables-legacy/nft ambiguity.
mode: nftables
clientConnection:
  kubeconfig: ${layout.kubeProxy.kubeconfig}
hostnameOverride: ${nodeNetwork.nodeName}
clusterCIDR: ${nodeNetwork.clusterCidr}
detectLocalMode: ClusterCIDR
healthzBindAddress: 127.0.0.1:${nodeNetwork.ports.kubeProxyHealthz}
metricsBindAddress: 127.0.0.1:${nodeNetwork.ports.kubeProxyMetrics}
nodePortAddresses: [${layout.nodeIp}/32]
# Root lacks CAP_SYS_RESOURCE here.
oomScoreAdj: 0
# Leave the machine's conntrack sysctls as they are.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`;
}

export interface AddonImages {
  coredns: string;
  kubeNetworkPolicies: string;
}

/**
 * The cluster's own pods: CoreDNS behind the cluster DNS Service, and kube-network-policies,
 * which enforces NetworkPolicy. Images are local (imagePullPolicy: Never says so).
 */
export function renderAddons(images: AddonImages): string {
  const { clusterDnsIp, clusterDomain } = nodeNetwork;
  return `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - apiGroups: [""]
    resources: [services, namespaces, pods]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Cluster names only. No forward plugin: there is no upstream resolver this cluster may
  # reach, so other names fail here instead of leaving the machine.
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes ${clusterDomain} in-addr.arpa ip6.arpa {
            pods insecure
            ttl 30
        }
        cache 30
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      tolerations: [{operator: Exists}]
      containers:
        - name: coredns
          image: ${images.coredns}
          imagePullPolicy: Never
          args: [-conf, /etc/coredns/Corefile]
          # Port 1053 and a non-root user: CoreDNS passes the restricted Pod Security level.
          ports:
            - {name: dns, containerPort: 1053, protocol: UDP}
            - {name: dns-tcp, containerPort: 1053, protocol: TCP}
          readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
          livenessProbe: {httpGet: {path: /health, port: 8080}}
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
            seccompProfile: {type: RuntimeDefault}
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: ${clusterDnsIp}
  selector: {k8s-app: kube-dns}
  ports:
    - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
    - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: kube-network-policies, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kube-network-policies}
rules:
  - apiGroups: [""]
    resources: [pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kube-network-policies}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kube-network-policies}
subjects: [{kind: ServiceAccount, name: kube-network-policies, namespace: kube-system}]
---
# As kind runs it (the project's install.yaml), less NRI: containerd's NRI is off here,
# and pod IPs come from the API.
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-network-policies, namespace: kube-system, labels: {k8s-app: kube-network-policies}}
spec:
  selector: {matchLabels: {k8s-app: kube-network-policies}}
  template:
    metadata: {labels: {k8s-app: kube-network-policies}}
    spec:
      hostNetwork: true
      serviceAccountName: kube-network-policies
      priorityClassName: system-node-critical
      tolerations: [{operator: Exists}]
      containers:
        - name: kube-network-policies
          image: ${images.kubeNetworkPolicies}
          imagePullPolicy: Never
          args:
            - --hostname-override=$(NODE_NAME)
            - --disable-nri
            # Kernels from 6.12 have the conntrack fix this works around.
            - --netfilter-bug-1766-fix=false
            - --metrics-bind-address=127.0.0.1:9080
            - --nfqueue-id=98
            - --v=2
          env:
            - name: NODE_NAME
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
          securityContext:
            capabilities: {add: [NET_ADMIN]}
`;
}

/**
 * Our nftables table: forwarded traffic never crosses the machine's uplink (so no pod
 * and no Service reaches beyond this machine, and nothing outside reaches in), and the
 * cluster's listening ports refuse the uplink. A drop in any base chain is final in
 * nftables, whatever other tables (kube-proxy's, the policy's) accept.
 */
export function renderGuardRules(layout: NodeLayout): string {
  const uplink = JSON.stringify(layout.uplink);
  return `table inet ${nodeNetwork.guardTable} {
  # The ports the cluster listens on beyond loopback; the apiserver's is added once it has one.
  set cluster_ports {
    type inet_service
    elements = { ${nodeNetwork.ports.kubelet} }
  }
  chain forward {
    type filter hook forward priority -10; policy accept;
    oifname ${uplink} drop
    iifname ${uplink} oifname ${JSON.stringify(nodeNetwork.bridge)} drop
  }
  chain postrouting {
    type filter hook postrouting priority -10; policy accept;
    oifname ${uplink} ip saddr ${nodeNetwork.clusterCidr} drop
  }
  chain input {
    type filter hook input priority -10; policy accept;
    iifname ${uplink} tcp dport @cluster_ports drop
  }
}
`;
}
