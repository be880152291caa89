#!/usr/bin/env bash
# Builds the data planes the host tests run: Debian trixie's HAProxy and nginx, the very
# packages the image installs, made runnable on this machine whatever its own Debian is.
#
#   bash test/harness/build-data-planes.sh           build them unless cached
#   bash test/harness/build-data-planes.sh --check   build nothing; print "haproxy PATH" and
#                                                    "nginx PATH", or exit 3 if one is missing
#
# Installing trixie's packages on a bookworm host would drag in trixie's libc6 and the
# libssl3t64 transition, so they stay in a rootfs of their own: a debootstrap minbase of
# trixie with the two packages installed by apt inside it (chroot). Each binary is copied
# out and patched (patchelf) to load trixie's dynamic loader and to find every library,
# its dependencies' too, in that rootfs: DT_RPATH, not DT_RUNPATH, because only DT_RPATH
# of the executable applies to the libraries it loads (libcrypto, libjemalloc, liblua).
# The result is an ordinary executable on the host's filesystem: HAProxy's master re-execs
# it on a reload (-W) by the same path, and nginx -t and reloads work as with Debian's own.
# The host's /etc/ssl (the system trust store) is what it reads, as in the image.
#
# Cached under ${MTLS_EGRESS_CACHE:-~/.cache/mtls-egress}/data-planes/<suite>-<versions>;
# first build about 2 minutes (debootstrap), nothing after. Every build appends
# "name version seconds epoch" to $cache/build-times.tsv, as build-binaries.sh does.
set -euo pipefail

mode=build
case ${1:-} in
  --check) mode=check ;;
  '') ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

log() { printf 'build-data-planes: %s\n' "$*" >&2; }

# The upstream series the README's proven-versions table names, and the image's Debian
# suite (the Dockerfile's NODE_IMAGE is node:24-trixie-slim). Not an exact Debian version:
# the archive keeps only the newest build of each package, so a pin to one would stop a
# fresh clone from bootstrapping on the day Debian ships a security update; the image's
# own `apt-get install` takes that newest build too. The series is checked after the
# install, and the exact versions go to $dir/versions and the build log.
debian_suite=trixie
haproxy_series=3.0
nginx_series=1.26
# Bump when the recipe below changes, so cached builds are made again.
recipe=2

debian_mirror=${MTLS_EGRESS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache_dir=${MTLS_EGRESS_CACHE:-$HOME/.cache/mtls-egress}
build_times=$cache_dir/build-times.tsv
name=$debian_suite-haproxy_$haproxy_series-nginx_$nginx_series-r$recipe
dir=$cache_dir/data-planes/$name
key="suite=$debian_suite haproxy=$haproxy_series nginx=$nginx_series recipe=$recipe"

# Complete only once the key is written, after both binaries ran.
is_current() { [ "$(cat "$dir/key" 2>/dev/null)" = "$key" ] && [ -x "$dir/bin/haproxy" ] && [ -x "$dir/bin/nginx" ]; }

if [ "$mode" = check ]; then
  if ! is_current; then
    log "Debian $debian_suite's HAProxy $haproxy_series and nginx $nginx_series are not built for this host; build them with: bash test/bootstrap.sh (or bash test/harness/build-data-planes.sh)"
    exit 3
  fi
  echo "haproxy $dir/bin/haproxy"
  echo "nginx $dir/bin/nginx"
  exit 0
fi

mkdir -p "$cache_dir/data-planes"
# One build at a time per cache: worktrees bootstrapping at once would race on the rootfs.
exec 9>"$cache_dir/data-planes/.build.lock"
flock 9
is_current && exit 0

[ "$(id -u)" = 0 ] || { log "building the data planes needs root (debootstrap, chroot)"; exit 1; }
for tool in debootstrap patchelf; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { log "$tool is missing (apt-get install -y $tool)"; exit 1; }
done

log "building Debian $debian_suite's HAProxy $haproxy_series and nginx $nginx_series for this host (first time only; about 2 minutes)"
started=$(date +%s)
# The rootfs is built where it stays: the patched binaries name its loader and libraries
# by absolute path.
rm -rf "$dir"
mkdir -p "$dir"
rootfs=$dir/rootfs
build_log=$dir/build.log
fail() { tail -20 "$build_log" >&2; log "$1; the log: $build_log"; exit 1; }
PATH=$PATH:/usr/sbin debootstrap --variant=minbase "$debian_suite" "$rootfs" "$debian_mirror" >"$build_log" 2>&1 || fail "debootstrap failed"
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $debian_mirror $debian_suite main
deb $debian_mirror $debian_suite-updates main
deb ${debian_mirror%/debian}/debian-security $debian_suite-security main
EOF
# The packages' maintainer scripts would start a system nginx and HAProxy: not here.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
chroot "$rootfs" apt-get update -qq >>"$build_log" 2>&1 || fail "apt-get update in the $debian_suite rootfs failed"
if ! DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get install -y -qq --no-install-recommends \
  haproxy nginx >>"$build_log" 2>&1; then
  fail "apt-get install haproxy nginx in the $debian_suite rootfs failed"
fi
chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' haproxy nginx >"$dir/versions"
chroot "$rootfs" apt-get clean >>"$build_log" 2>&1
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/{doc,man,locale}/*

mkdir -p "$dir/bin"
rpath=$rootfs/usr/lib/x86_64-linux-gnu:$rootfs/lib/x86_64-linux-gnu
for binary in haproxy nginx; do
  install -m 0755 "$rootfs/usr/sbin/$binary" "$dir/bin/$binary"
  patchelf --set-interpreter "$rootfs/lib64/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$rpath" "$dir/bin/$binary"
  # Every library from the rootfs, none from the host.
  # (Output read whole before matching: grep -q would close the pipe early, and pipefail
  # would call that a failure.)
  libraries=$(ldd "$dir/bin/$binary")
  if grep -v -e "=> $rootfs/" -e 'linux-vdso' -e "^[[:space:]]*$rootfs/" <<<"$libraries" | grep -q .; then
    echo "$libraries" >>"$build_log"
    fail "$binary loads a library from outside the rootfs"
  fi
done
# Another series (a point release of Debian moving HAProxy off 3.0 LTS) is a different
# data plane from the one the README proves: stop and say so rather than test it silently.
[[ $("$dir/bin/haproxy" -v 2>&1) == *"version $haproxy_series."* ]] || fail "bin/haproxy -v is not HAProxy $haproxy_series: $("$dir/bin/haproxy" -v 2>&1 | head -1)"
[[ $("$dir/bin/nginx" -v 2>&1) == *"nginx/$nginx_series."* ]] || fail "bin/nginx -v is not nginx $nginx_series: $("$dir/bin/nginx" -v 2>&1)"
echo "$key" >"$dir/key"
seconds=$(( $(date +%s) - started ))
printf '%s\t%s\t%s\t%s\n' data-planes "$name" "$seconds" "$(date +%s)" >>"$build_times"
log "built $name in ${seconds}s ($(tr '\n' ' ' <"$dir/versions")): $dir/bin/haproxy, $dir/bin/nginx"
