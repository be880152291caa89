#!/usr/bin/env bash
# Builds the test cluster's binaries from the Go module proxy into a cache outside the
# repo, keyed by version, so tests run the same release everywhere without Docker or a
# download site. Does nothing when everything asked for is already cached.
#
# Versions live only in test/harness/go/*/go.mod; bump them with test/harness/go/pin.sh.
#
#   bash test/harness/build-binaries.sh [--check] [PART...]
#
#   control-plane   kube-apiserver, etcd: every integration test, and `npm run demo`
#   tools           helm, promtool: the deploy/ tests (the chart, the alert rules, the dashboard)
#   node            the node cluster, its control plane included: kube-apiserver, etcd, kubelet,
#                   kube-proxy, kube-controller-manager, kube-scheduler, kubectl, containerd,
#                   runc, CNI plugins, CoreDNS, kube-network-policies
#
#   no PART         control-plane tools: what the unit, integration and e2e tests need
#   --node          control-plane tools node: everything (what `npm test` needs)
#   --check         build nothing; print "name path" per binary of those parts (a directory
#                   for containerd and cni-plugins), or exit 3 if one is missing
#
# Every build appends "name version seconds epoch" to $cache/build-times.tsv, which
# `npm run bench:cluster` reports as the first-run cost.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

mode=build
parts=()
for argument in "$@"; do
  case $argument in
    --check) mode=check ;;
    --node) parts+=(control-plane tools node) ;;
    control-plane | tools | node) parts+=("$argument") ;;
    *) echo "usage: $0 [--check] [--node | control-plane | tools | node ...]" >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -gt 0 ] || parts=(control-plane tools)
wants_part() { local part; for part in "${parts[@]}"; do [ "$part" = "$1" ] && return 0; done; return 1; }
# The node cluster runs the same control plane.
wants_part node && parts+=(control-plane)

log() { printf 'build-binaries: %s\n' "$*" >&2; }

cache_dir=${MTLS_EGRESS_CACHE:-$HOME/.cache/mtls-egress}
bin_dir=$cache_dir/bin
build_times=$cache_dir/build-times.tsv

if ! command -v go >/dev/null 2>&1; then
  [ -x /usr/local/go/bin/go ] || { log "Go 1.26+ is required (not on PATH, not at /usr/local/go)"; exit 1; }
  export PATH="/usr/local/go/bin:$PATH"
fi

# Reads "<module> <version>" from a go.mod without loading the module graph, so a
# cached run needs neither the network nor the module cache.
pinned_version() {
  local go_mod=$1 module=$2
  sed -nE "s#^[[:space:]]*(require[[:space:]]+)?${module}[[:space:]]+(v[^[:space:]]+).*#\2#p" "$go_mod" | head -n1
}

require_version() {
  local name=$1 module=$2 version
  version=$(pinned_version "$here/go/$name/go.mod" "$module")
  [ -n "$version" ] || { log "no $module version in $here/go/$name/go.mod"; exit 1; }
  echo "$version"
}

human_size() { du -sh "$1" 2>/dev/null | cut -f1; }

# A short digest of files that shape a binary beyond its upstream version (a patch, a
# main.go of ours), so editing one rebuilds the binary instead of reusing a stale one.
content_key() { cat "$@" | sha256sum | cut -c1-8; }

# Kubernetes stamps its version into the binary at link time (hack/lib/version.sh); without
# it /version says v0.0.0-master and clients such as kubectl warn about version skew.
kubernetes_version_ldflags() {
  local version=$1 minor package
  minor=${version#v1.}
  minor=${minor%%.*}
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- ' -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean' \
      "$package" "$version" "$package" "$package" "$minor" "$package"
  done
}

missing=()
report() { if [ "$mode" = check ]; then echo "$1 $2"; fi; }

# Checks one artifact of a part (a file, or a directory holding several binaries); in check
# mode a missing one fails, in build mode it is added to the list to build.
want() {
  local part=$1 name=$2 path=$3
  if [ ! -e "$path" ]; then
    if [ "$mode" = check ]; then
      log "$path is missing; build it with: bash test/harness/build-binaries.sh $part"
      exit 3
    fi
    missing+=("$name")
  fi
  report "$name" "$path"
}

record_build() {
  local name=$1 version=$2 started=$3 path=$4 seconds
  seconds=$(( $(date +%s) - started ))
  printf '%s\t%s\t%s\t%s\n' "$name" "$version" "$seconds" "$(date +%s)" >>"$build_times"
  log "built $name $version in ${seconds}s; $(human_size "$path")"
  built_any=1
}

is_missing() { local name=$1 entry; for entry in "${missing[@]}"; do [ "$entry" = "$name" ] && return 0; done; return 1; }

# --- Kubernetes: every binary from one wrapper module in ONE `go build`, so the
# packages they share (client-go, apimachinery, ...) compile once.
kubernetes_commands=()
wants_part control-plane && kubernetes_commands+=(kube-apiserver)
wants_part node && kubernetes_commands+=(kubelet kube-proxy kube-controller-manager kube-scheduler kubectl)
kubernetes_version=$(require_version kubernetes k8s.io/kubernetes)

build_kubernetes() {
  local commands=() command packages=() started out ldflags
  for command in ${kubernetes_commands[@]+"${kubernetes_commands[@]}"}; do is_missing "$command" && commands+=("$command"); done
  [ ${#commands[@]} -gt 0 ] || return 0
  for command in "${commands[@]}"; do packages+=("k8s.io/kubernetes/cmd/$command"); done
  log "building ${commands[*]} $kubernetes_version (first time only; several minutes)"
  started=$(date +%s)
  out=$bin_dir/.kubernetes.partial.$$
  rm -rf "$out" && mkdir -p "$out"
  ldflags="-s -w$(kubernetes_version_ldflags "$kubernetes_version")"
  # Static and stripped: smaller binaries, and no cgo toolchain needed. -trimpath keeps
  # local paths out of the binary, so builds on different machines match.
  (cd "$here/go/kubernetes" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$out/" "${packages[@]}")
  # Rename last, so an interrupted build never leaves a binary that looks finished.
  for command in "${commands[@]}"; do mv "$out/$command" "$bin_dir/$command-$kubernetes_version"; done
  rmdir "$out"
  record_build "$(IFS=+; echo "${commands[*]}")" "$kubernetes_version" "$started" "$bin_dir/${commands[0]}-$kubernetes_version"
}

# --- etcd
etcd_version=$(require_version etcd go.etcd.io/etcd/server/v3)

build_etcd() {
  is_missing etcd || return 0
  local started out=$bin_dir/etcd-$etcd_version
  log "building etcd $etcd_version (first time only; a few minutes)"
  started=$(date +%s)
  (cd "$here/go/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out.partial.$$" go.etcd.io/etcd/server/v3)
  mv "$out.partial.$$" "$out"
  record_build etcd "$etcd_version" "$started" "$out"
}

# --- helm, for the chart's tests (lint, template, install). Stamped as upstream's Makefile
# stamps it, so `helm version` says the release; the Kubernetes version `helm template`
# assumes comes from the client-go in the build info, as upstream's does.
helm_version=$(require_version helm helm.sh/helm/v4)

build_helm() {
  is_missing helm || return 0
  local started out=$bin_dir/helm-$helm_version
  log "building helm $helm_version (first time only; a few minutes)"
  started=$(date +%s)
  (cd "$here/go/helm" && CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    -o "$out.partial.$$" helm.sh/helm/v4/cmd/helm)
  mv "$out.partial.$$" "$out"
  record_build helm "$helm_version" "$started" "$out"
}

# --- promtool, for the alert rules and the dashboard's queries (test rules, check rules).
# remove_all_sd leaves out the cloud service-discovery plugins (AWS, Azure, GCE, ...), which
# only `promtool check config` of such a config would use: upstream's own build tag for
# trimming them, and it saves most of the cold build.
prometheus_module=github.com/prometheus/prometheus
promtool_version=$(require_version promtool "$prometheus_module")

build_promtool() {
  is_missing promtool || return 0
  local started out=$bin_dir/promtool-$promtool_version ldflags
  log "building promtool $promtool_version (first time only; a few minutes)"
  started=$(date +%s)
  ldflags="-s -w -X github.com/prometheus/common/version.Version=$promtool_version -X github.com/prometheus/common/version.Branch=release"
  (cd "$here/go/promtool" && CGO_ENABLED=0 go build -trimpath -tags 'netgo remove_all_sd' -ldflags="$ldflags" \
    -o "$out.partial.$$" "$prometheus_module/cmd/promtool")
  mv "$out.partial.$$" "$out"
  record_build promtool "$promtool_version" "$started" "$out"
}

# --- containerd: containerd, its runc shim and ctr, in a directory of their own because
# containerd finds the shim by its exact name next to its own binary.
containerd_module=github.com/containerd/containerd/v2
build_containerd() {
  is_missing containerd || return 0
  local version=$1 started out=$bin_dir/containerd-$1 ldflags
  log "building containerd $version (first time only; about 2 minutes)"
  started=$(date +%s)
  rm -rf "$out.partial.$$" && mkdir -p "$out.partial.$$"
  ldflags="-s -w -X $containerd_module/version.Version=$version -X $containerd_module/version.Revision=$version"
  # Static: the shim must not depend on the host's libc, as in upstream's release builds.
  # Without cgo the btrfs snapshotter is left out, which an overlayfs node never uses.
  (cd "$here/go/containerd" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$out.partial.$$/" \
    "$containerd_module/cmd/containerd" "$containerd_module/cmd/containerd-shim-runc-v2" "$containerd_module/cmd/ctr")
  mv "$out.partial.$$" "$out"
  record_build containerd "$version" "$started" "$out"
}

# --- runc. From the Go module proxy rather than Debian: bookworm's runc 1.1.5 is past
# upstream support and lacks the 2025 container-escape fixes, and containerd 2.4 is tested
# against runc 1.5. runc needs cgo (its nsexec is C) and libseccomp for seccomp
# profiles (RuntimeDefault, which the restricted Pod Security level requires); linked
# statically, as upstream's release binaries are, so it runs wherever it was built.
build_runc() {
  is_missing runc || return 0
  local version=$1 started out=$bin_dir/runc-$1
  [ -f /usr/include/seccomp.h ] || { log "runc needs libseccomp-dev (apt-get install -y libseccomp-dev)"; exit 1; }
  log "building runc $version (first time only; about a minute)"
  started=$(date +%s)
  # In a directory as plain `runc`: containerd's shim looks it up on PATH by that name.
  rm -rf "$out.partial.$$" && mkdir -p "$out.partial.$$"
  (cd "$here/go/runc" && CGO_ENABLED=1 go build -trimpath -buildmode=pie -tags 'seccomp urfave_cli_no_docs netgo osusergo' \
    -ldflags="-s -w -X main.gitCommit=$version -linkmode external -extldflags -static-pie" -o "$out.partial.$$/runc" github.com/opencontainers/runc)
  mv "$out.partial.$$" "$out"
  record_build runc "$version" "$started" "$out"
}

# --- CNI plugins: bridge, host-local, loopback and portmap, by their exact names in one
# directory, which is what containerd's CNI bin_dirs expects.
cni_module=github.com/containernetworking/plugins
build_cni_plugins() {
  is_missing cni-plugins || return 0
  local version=$1 started out=$bin_dir/cni-plugins-$1
  log "building CNI plugins $version (first time only; about a minute)"
  started=$(date +%s)
  rm -rf "$out.partial.$$" && mkdir -p "$out.partial.$$"
  (cd "$here/go/cni-plugins" && CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X $cni_module/pkg/utils/buildversion.BuildVersion=$version" -o "$out.partial.$$/" \
    "$cni_module/plugins/main/bridge" "$cni_module/plugins/ipam/host-local" "$cni_module/plugins/main/loopback" "$cni_module/plugins/meta/portmap")
  mv "$out.partial.$$" "$out"
  record_build cni-plugins "$version" "$started" "$out"
}

# --- CoreDNS, from go/coredns/main.go: upstream's coremain with the plugins the cluster uses.
build_coredns() {
  is_missing coredns || return 0
  local version=$1 out=$2 started
  log "building CoreDNS $version (first time only; a few minutes)"
  started=$(date +%s)
  (cd "$here/go/coredns" && CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$version" -o "$out.partial.$$" .)
  mv "$out.partial.$$" "$out"
  record_build coredns "$version" "$started" "$out"
}

# --- kube-network-policies, with go/kube-network-policies/nfqueue-compat.patch applied to
# a copy of the module (see that directory's README for why). The wrapper's go.sum pins
# every dependency; only the module itself is replaced by the patched copy.
knp_module=sigs.k8s.io/kube-network-policies
build_kube_network_policies() {
  is_missing kube-network-policies || return 0
  local version=$1 out=$2 started upstream work
  log "building kube-network-policies $version, patched (first time only; a few minutes)"
  started=$(date +%s)
  upstream=$(cd "$here/go/kube-network-policies" && go mod download -json "$knp_module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [ -d "$upstream" ] || { log "could not download $knp_module@$version"; exit 1; }
  work=$(mktemp -d "$cache_dir/.kube-network-policies.XXXXXX")
  # shellcheck disable=SC2064 # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  cp -r "$upstream" "$work/src" && chmod -R u+w "$work/src"
  patch -s -d "$work/src" -p1 <"$here/go/kube-network-policies/nfqueue-compat.patch"
  mkdir "$work/wrapper"
  cp "$here/go/kube-network-policies/go.mod" "$here/go/kube-network-policies/go.sum" "$work/wrapper/"
  (cd "$work/wrapper" && go mod edit -replace="$knp_module=$work/src" &&
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out.partial.$$" "$knp_module/cmd")
  mv "$out.partial.$$" "$out"
  rm -rf "$work"
  trap - EXIT
  record_build kube-network-policies "$version" "$started" "$out"
}

# The order is the output's order.
check_all() {
  if wants_part control-plane; then
    want control-plane kube-apiserver "$bin_dir/kube-apiserver-$kubernetes_version"
    want control-plane etcd "$bin_dir/etcd-$etcd_version"
  fi
  if wants_part tools; then
    want tools helm "$bin_dir/helm-$helm_version"
    want tools promtool "$bin_dir/promtool-$promtool_version"
  fi
  wants_part node || return 0
  local command
  for command in kubelet kube-proxy kube-controller-manager kube-scheduler kubectl; do
    want node "$command" "$bin_dir/$command-$kubernetes_version"
  done
  containerd_version=$(require_version containerd "$containerd_module")
  runc_version=$(require_version runc github.com/opencontainers/runc)
  cni_version=$(require_version cni-plugins "$cni_module")
  coredns_version=$(require_version coredns github.com/coredns/coredns)
  coredns_out=$bin_dir/coredns-$coredns_version-$(content_key "$here/go/coredns/main.go")
  knp_version=$(require_version kube-network-policies "$knp_module")
  knp_out=$bin_dir/kube-network-policies-$knp_version-$(content_key "$here/go/kube-network-policies/nfqueue-compat.patch")
  want node containerd "$bin_dir/containerd-$containerd_version"
  want node runc "$bin_dir/runc-$runc_version"
  want node cni-plugins "$bin_dir/cni-plugins-$cni_version"
  want node coredns "$coredns_out"
  want node kube-network-policies "$knp_out"
}

if [ "$mode" = check ]; then
  check_all
  exit 0
fi

# Everything asked for is cached: done, without waiting on another shell's build of other parts.
check_all
[ ${#missing[@]} -gt 0 ] || exit 0

mkdir -p "$bin_dir"
# Two shells bootstrapping at once (two terminals, two CI steps) would otherwise build the
# same multi-minute binaries twice on a 2-core machine; the second waits for the first,
# then builds only what that one did not.
exec 9>"$bin_dir/.build.lock"
flock 9

built_any=0
total_started=$(date +%s)
missing=()
check_all
build_kubernetes
build_etcd
build_helm
build_promtool
if wants_part node; then
  build_containerd "$containerd_version"
  build_runc "$runc_version"
  build_cni_plugins "$cni_version"
  build_coredns "$coredns_version" "$coredns_out"
  build_kube_network_policies "$knp_version" "$knp_out"
fi
if [ "$built_any" = 1 ]; then
  log "total build time $(( $(date +%s) - total_started ))s"
  log "disk: binaries $(human_size "$bin_dir"), GOMODCACHE $(human_size "$(go env GOMODCACHE)"), GOCACHE $(human_size "$(go env GOCACHE)")"
fi
