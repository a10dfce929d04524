#!/usr/bin/env bash
# Prepare the real components that drcache's integration tests use on a Debian
# machine (Debian 12 or 13; see docs/testing.md): apt packages, a
# test-only podman configuration, a registry image built FROM scratch (no
# internet needed) and the firewalld "libvirt" zone file.
#
# Idempotent and quiet: progress goes to stderr, and stdout carries only
# `export` lines, so callers do:   eval "$(scripts/test-env.sh)"
#
# Environment: DRCACHE_TEST_DIR (state dir, default /var/tmp/drcache-test).
set -euo pipefail

STATE_DIR=${DRCACHE_TEST_DIR:-/var/tmp/drcache-test}
IMAGE=localhost/drcache-test-registry:2
HASH_LABEL=io.drcache.test.inputs-hash

log() { printf 'test-env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, runs root podman)"

mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd -P)   # absolute: it ends up in exported paths
# Serialize concurrent runs (e.g. parallel test binaries): one builds, the
# others then find the image up to date.
exec 9>"$STATE_DIR/.lock"
flock 9

# ---------------------------------------------------------------- packages
# iptables, nftables: netavark needs one of them for -p publishing (1.4 on
# Debian 12 uses iptables, 1.14 on Debian 13 nftables, only a Recommends);
# iproute2: `ip` in firewalld-ns.sh; dbus: system bus for firewalld;
# ca-certificates: copied into the registry image; shellcheck: scripts/test
# checks the scripts; pyflakes3: scripts/test lints scripts/bench; systemd:
# `systemd-analyze verify` of the autostart units (the package alone: it does
# not become PID 1 without systemd-sysv, and nothing here boots with it);
# curl: the clients filter test (requests from network namespaces).
PACKAGES=(podman runc netavark aardvark-dns iptables nftables docker-registry
          skopeo containerd firewalld dbus ca-certificates iproute2 shellcheck
          pyflakes3 systemd curl)

# One dpkg-query for all (fast when everything is there); only a fully
# installed package counts, not "config-files" leftovers. It exits 1 when a
# package is unknown, so the status is ignored and missing names are derived.
installed=" $(dpkg-query -W -f='${db:Status-Status} ${Package}\n' "${PACKAGES[@]}" 2>/dev/null \
    | awk '$1 == "installed" { printf "%s ", $2 }' || true)"
missing=()
for p in "${PACKAGES[@]}"; do
    [[ $installed == *" $p "* ]] || missing+=("$p")
done

apt_updated=0
apt_update() {
    [ "$apt_updated" -eq 1 ] && return 0
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    apt_updated=1
}

if [ "${#missing[@]}" -gt 0 ]; then
    apt_update
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2
fi

# Temp dirs (build context, download) are removed however the script exits.
tmp_dirs=()
trap 'rm -rf ${tmp_dirs[@]+"${tmp_dirs[@]}"}' EXIT

# Write a file only when its content changes, atomically, so repeated runs
# leave mtimes alone and a concurrent reader never sees a half-written file.
write_if_changed() { # PATH CONTENT
    local path=$1 content=$2
    if [ -f "$path" ] && [ "$(cat "$path")" == "$content" ]; then
        return 0
    fi
    printf '%s\n' "$content" > "$path.tmp.$$"
    mv -f "$path.tmp.$$" "$path"
    log "wrote $path"
}

# ------------------------------------------------------ podman configuration
# Default podman fails here with "crun: setrlimit RLIMIT_NOFILE: Operation not
# permitted" (root lacks CAP_SYS_RESOURCE, so limits may not exceed the hard
# ones) and "crun: cgroups in hybrid mode not supported" -> runc + cgroupfs
# and explicit ulimits no higher than ours.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$nproc" = unlimited ] || { [ "$pid_max" -lt "$nproc" ] 2>/dev/null; }; then
    nproc=$pid_max
fi
[ "$nofile" = unlimited ] && nofile=1048576

CONTAINERS_CONF_FILE=$STATE_DIR/containers.conf
REGISTRIES_CONF_FILE=$STATE_DIR/registries.conf

# network_backend is pinned because a leftover /etc/cni/net.d config would
# otherwise make podman 4.3 try CNI (whose plugins are not installed).
write_if_changed "$CONTAINERS_CONF_FILE" "# Written by drcache scripts/test-env.sh: test-only, do not edit.
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
# Tests never pull from the internet.
pull_policy = \"never\"

[network]
network_backend = \"netavark\""

write_if_changed "$REGISTRIES_CONF_FILE" "# Written by drcache scripts/test-env.sh: block real registries in tests.
unqualified-search-registries = []

[[registry]]
location = \"docker.io\"
blocked = true

[[registry]]
location = \"quay.io\"
blocked = true"

export CONTAINERS_CONF=$CONTAINERS_CONF_FILE
export CONTAINERS_REGISTRIES_CONF=$REGISTRIES_CONF_FILE

# ------------------------------------------------------------ registry image
REGISTRY_BIN=/usr/bin/docker-registry
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -x "$REGISTRY_BIN" ] || die "$REGISTRY_BIN missing (package docker-registry)"
[ -f "$CA_BUNDLE" ] || die "$CA_BUNDLE missing (package ca-certificates)"

# Shared libraries as the dynamic loader resolves them, at the paths it looks
# them up under (ldd prints "name => /path (addr)" and "/path/ld.so (addr)";
# the vdso has no file). A static binary makes ldd fail: then no libs.
mapfile -t LIBS < <(ldd "$REGISTRY_BIN" 2>/dev/null \
    | awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' \
    | sort -u || true)

# The settings of the official registry:3 image's default config (deletes,
# blob descriptor cache, debug server, storage health check), so tests see
# what users run; tests check that a cache with a login keeps every one.
REGISTRY_CONFIG='version: 0.1
log:
  fields:
    service: registry
storage:
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
  debug:
    addr: :5001
    prometheus:
      enabled: true
      path: /metrics
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3'

NSSWITCH='hosts: files dns'

# Like the official registry images, whose entrypoint serves a config file
# given as the only argument (drcache passes one for caches with a login).
CONTAINERFILE='FROM scratch
COPY rootfs/ /
VOLUME /var/lib/registry
EXPOSE 5000
ENTRYPOINT ["/bin/registry", "serve"]
CMD ["/etc/docker/registry/config.yml"]'

# --layers=false: no cached intermediate images left behind (podman images -a).
BUILD_OPTS=(--quiet --layers=false)

# Content hash of everything that goes into the image; stored as a label so a
# changed binary/lib/cert (apt upgrade) or recipe triggers a rebuild. Hashing
# the 20 MB binary costs ~0.15 s, so file digests are cached in the state dir,
# keyed by the files' size/mtime/inode (like git's index).
INPUT_FILES=("$REGISTRY_BIN" "$CA_BUNDLE" ${LIBS[@]+"${LIBS[@]}"})
stat_key=$(stat -L -c '%n %s %Y %i' "${INPUT_FILES[@]}")
digest_cache=$STATE_DIR/image-inputs.sha256
if [ -f "$digest_cache.key" ] && [ "$(cat "$digest_cache.key")" == "$stat_key" ] \
   && [ -s "$digest_cache" ]; then
    file_digests=$(cat "$digest_cache")
else
    file_digests=$(sha256sum "${INPUT_FILES[@]}")
    printf '%s\n' "$file_digests" > "$digest_cache"
    printf '%s\n' "$stat_key" > "$digest_cache.key"
fi
inputs_hash=$(
    printf '%s\n' "$CONTAINERFILE" "$REGISTRY_CONFIG" "$NSSWITCH" "${BUILD_OPTS[*]}" \
        "$file_digests" | sha256sum | cut -d' ' -f1
)

current_hash=$(podman image inspect --format "{{index .Labels \"$HASH_LABEL\"}}" \
    "$IMAGE" 2>/dev/null || true)

if [ "$current_hash" != "$inputs_hash" ]; then
    log "building $IMAGE"
    old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    ctx=$(mktemp -d "$STATE_DIR/build.XXXXXX")
    tmp_dirs+=("$ctx")
    root=$ctx/rootfs
    mkdir -p "$root/bin" "$root/etc/docker/registry" "$root/etc/ssl/certs" \
             "$root/var/lib/registry"
    cp -L "$REGISTRY_BIN" "$root/bin/registry"
    cp -L "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
    for lib in ${LIBS[@]+"${LIBS[@]}"}; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"    # -L: copy the file, not the soname symlink
    done
    printf '%s\n' "$REGISTRY_CONFIG" > "$root/etc/docker/registry/config.yml"
    printf '%s\n' "$NSSWITCH" > "$root/etc/nsswitch.conf"
    printf '%s\n' "$CONTAINERFILE" > "$ctx/Containerfile"
    podman build "${BUILD_OPTS[@]}" --label "$HASH_LABEL=$inputs_hash" -t "$IMAGE" \
        -f "$ctx/Containerfile" "$ctx" >/dev/null
    # Drop the superseded image, unless a container still uses it.
    new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
        podman rmi "$old_id" >/dev/null 2>&1 || true
    fi
fi

# --------------------------------------------------------- libvirt zone file
# firewalld ships no "libvirt" zone; libvirt does. Only the one file is
# extracted, the package is never installed. Debian 12 has it in
# libvirt-daemon-system; in Debian 13 that is a metapackage and the file is in
# libvirt-daemon-driver-network: the first candidate that exists here and
# holds the file wins.
LIBVIRT_ZONE=$STATE_DIR/libvirt.xml
ZONE_IN_DEB=./usr/lib/firewalld/zones/libvirt.xml
ZONE_PACKAGES=(libvirt-daemon-driver-network libvirt-daemon-system)
if [ ! -s "$LIBVIRT_ZONE" ]; then
    dl=$(mktemp -d "$STATE_DIR/download.XXXXXX")
    tmp_dirs+=("$dl")
    # apt's sandbox user _apt must be able to write the download dir.
    chmod 755 "$dl"
    chown _apt "$dl" 2>/dev/null || true
    # Fresh machine: no package lists yet.
    apt-cache show "${ZONE_PACKAGES[@]}" >/dev/null 2>&1 || apt_update
    for pkg in "${ZONE_PACKAGES[@]}"; do
        apt-cache show "$pkg" >/dev/null 2>&1 || continue
        (cd "$dl" && apt-get download -q "$pkg" >&2)
        deb=$(ls "$dl/${pkg}"_*.deb)
        if dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -xF "$ZONE_IN_DEB" >/dev/null; then
            log "extracting libvirt.xml from $pkg"
            dpkg-deb --fsys-tarfile "$deb" | tar -xO "$ZONE_IN_DEB" > "$LIBVIRT_ZONE.tmp.$$"
            break
        fi
        log "$pkg has no libvirt.xml"
    done
    [ -s "$LIBVIRT_ZONE.tmp.$$" ] || die "no package of ${ZONE_PACKAGES[*]} holds libvirt.xml"
    mv -f "$LIBVIRT_ZONE.tmp.$$" "$LIBVIRT_ZONE"
fi

# ------------------------------------------------------------------ exports
q() { printf '%q' "$1"; }
echo "export CONTAINERS_CONF=$(q "$CONTAINERS_CONF_FILE")"
echo "export CONTAINERS_REGISTRIES_CONF=$(q "$REGISTRIES_CONF_FILE")"
echo "export DRCACHE_TEST_IMAGE=$(q "$IMAGE")"
echo "export DRCACHE_TEST_DIR=$(q "$STATE_DIR")"
echo "export DRCACHE_TEST_LIBVIRT_ZONE=$(q "$LIBVIRT_ZONE")"
