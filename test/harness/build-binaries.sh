#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, etcd) from the Go module proxy into a
# cache outside the repo, keyed by version, so tests run the same release everywhere
# without Docker or a download site. Does nothing when both binaries are already cached.
#
# Versions live only in test/harness/go/*/go.mod; bump them with test/harness/go/pin.sh.
#
#   bash test/harness/build-binaries.sh           build what is missing; silent when nothing is
#   bash test/harness/build-binaries.sh --check   build nothing; print the binaries' paths, one a
#                                                 line, or exit 3 if one is missing
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

mode=build
case ${1:-} in
  --check) mode=check ;;
  '') ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

log() { printf 'build-binaries: %s\n' "$*" >&2; }

cache_dir=${MTLS_EGRESS_CACHE:-$HOME/.cache/mtls-egress}
bin_dir=$cache_dir/bin

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

human_size() { du -sh "$1" 2>/dev/null | cut -f1; }

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

build_one() {
  local name=$1 module=$2 package=$3 version out started seconds ldflags='-s -w'
  version=$(pinned_version "$here/go/$name/go.mod" "$module")
  [ -n "$version" ] || { log "no $module version in $here/go/$name/go.mod"; exit 1; }
  out=$bin_dir/$name-$version
  if [ ! -x "$out" ] && [ "$mode" = check ]; then
    log "$out is missing; build it with: bash test/harness/build-binaries.sh"
    exit 3
  fi
  if [ ! -x "$out" ]; then
    log "building $name $version from $package (first time only; several minutes)"
    started=$(date +%s)
    if [ "$module" = k8s.io/kubernetes ]; then ldflags+=$(kubernetes_version_ldflags "$version"); fi
    # Static and stripped: smaller binaries, and no cgo toolchain needed. -trimpath keeps
    # local paths out of the binary, so builds on different machines match.
    (cd "$here/go/$name" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$out.partial.$$" "$package")
    # Rename last, so an interrupted build never leaves a binary that looks finished.
    mv "$out.partial.$$" "$out"
    seconds=$(( $(date +%s) - started ))
    log "built $name $version in ${seconds}s; binary $(human_size "$out")"
    built_any=1
  fi
  if [ "$mode" = check ]; then echo "$out"; fi
}

# The order is the output's order, which control-plane.ts relies on.
build_all() {
  build_one kube-apiserver k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver
  build_one etcd go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
}

if [ "$mode" = check ]; then
  build_all
  exit 0
fi

mkdir -p "$bin_dir"
# Two shells bootstrapping at once (two terminals, two CI steps) would otherwise build the
# same multi-minute binaries twice on a 2-core machine; the second waits for the first.
exec 9>"$bin_dir/.build.lock"
flock 9

built_any=0
total_started=$(date +%s)
build_all
if [ "$built_any" = 1 ]; then
  log "total build time $(( $(date +%s) - total_started ))s"
  log "disk: binaries $(human_size "$bin_dir"), GOMODCACHE $(human_size "$(go env GOMODCACHE)"), GOCACHE $(human_size "$(go env GOCACHE)")"
fi
