#!/usr/bin/env bash
# Usage: scripts/tier-trixie.sh prepare
#        scripts/tier-trixie.sh run LIST RESULT [LIBTEST ARGS...]
#
# Tier "podman5": the real-component test binaries, run as root by Debian
# trixie's podman 5 inside a trixie root made with debootstrap. The root is
# entered in private mount, network and pid namespaces, so its podman (same
# bridge name, same firewall tables as the host's) never meets the host's,
# and every process it started dies with the namespace.
#
# The root is cached between runs (keyed by suite, mirror and package list);
# a fresh machine builds it (debootstrap + apt, a few minutes). The repo is
# bind-mounted at the same path, so the host-built test binaries find
# drcache, the fixtures and the scripts where they were compiled to look.
#
# prepare: build the root if needed and run scripts/test-env.sh in it (with
#          the host's network: it may install packages).
# run:     prepare, then run the binaries of LIST ("name path" lines) inside
#          the namespaces; writes "PASSED FAILED VERSION" to RESULT and the
#          tests' opted-out lines to RESULT.skipped.
#
# Env: DRCACHE_TRIXIE_CACHE (default /var/tmp/drtier-trixie),
#      DRCACHE_TRIXIE_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd -P)
# shellcheck source=scripts/tier-lib.sh
. scripts/tier-lib.sh

SUITE=trixie
MIRROR=${DRCACHE_TRIXIE_MIRROR:-http://deb.debian.org/debian}
CACHE=${DRCACHE_TRIXIE_CACHE:-/var/tmp/drtier-trixie}
# What test-env.sh installs, plus what the namespace setup uses inside.
PACKAGES=(podman runc netavark aardvark-dns nftables iptables docker-registry
          skopeo containerd firewalld dbus ca-certificates iproute2 util-linux
          mount procps)

log() { printf 'tier-trixie: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2 || {
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
    }
fi
for tool in unshare chroot; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

key=$(printf '%s\n' "$SUITE" "$MIRROR" "${PACKAGES[@]}" | sha256sum | cut -c1-16)
ROOT=$CACHE/root-$key

# Build the root once per package list; an interrupted build is redone.
build_root() {
    [ -f "$ROOT/.drcache-ready" ] && return 0
    mkdir -p "$CACHE"
    # Roots of older package lists are ours and stale.
    for old in "$CACHE"/root-*; do
        [ -e "$old" ] && [ "$old" != "$ROOT" ] && { log "removing stale $old"; rm -rf "$old"; }
    done
    rm -rf "$ROOT"
    log "debootstrap $SUITE into $ROOT"
    local started=$SECONDS
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >&2
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # No init runs in the root: package scripts must not start services.
    printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
    chmod 755 "$ROOT/usr/sbin/policy-rc.d"
    log "installing ${PACKAGES[*]}"
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
        sh "${PACKAGES[@]}" >&2
    touch "$ROOT/.drcache-ready"
    log "root built in $((SECONDS - started)) s"
}

# enter NET CMD...: run CMD (bash -c) as root in the trixie root, in private
# mount and pid namespaces, and a private network namespace when NET=private.
enter() {
    local net=$1; shift
    local flags=(--mount --pid --fork --kill-child)
    [ "$net" = private ] && flags+=(--net)
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare "${flags[@]}" -- bash -euo pipefail -c '
        root=$1 repo=$2 net=$3; shift 3
        mount --make-rprivate /
        # Its / must be a mount point, else podman build cannot remount it.
        mount --bind "$root" "$root"
        mount -t proc proc "$root/proc"
        mount -t sysfs sysfs "$root/sys"
        mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
        mount -t tmpfs -o mode=755 tmpfs "$root/run"
        mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
        mkdir -p "$root$repo"
        mount --bind "$repo" "$root$repo"
        [ "$net" = private ] && ip link set lo up
        exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            LANG=C.UTF-8 CI="${CI:-}" bash -euo pipefail -c "cd \"$repo\" && $*"
    ' enter "$ROOT" "$REPO" "$net" "$@"
}

prepare() {
    build_root
    # With the host's network: test-env.sh installs what is missing and
    # downloads the libvirt zone file on the first run.
    enter host 'scripts/test-env.sh >/dev/null'
}

q() { printf '%q' "$1"; }

# Inside the namespaces: drop whatever an interrupted run left in this
# private podman (it is ours alone; images stay cached).
RESET_PODMAN='podman rm --all --force --time 0 >/dev/null 2>&1 || true
        podman volume rm --all --force >/dev/null 2>&1 || true
        podman secret rm --all >/dev/null 2>&1 || true'

case "${1:-}" in
prepare)
    prepare
    ;;
run)
    [ $# -ge 3 ] || die "usage: $0 run LIST RESULT [LIBTEST ARGS...]"
    list=$2 result=$3
    shift 3
    args=
    [ $# -eq 0 ] || args=$(printf '%q ' "$@")
    prepare
    # Exchanged through the repo: the root sees it at the same path.
    out=$REPO/target/tier-trixie
    rm -rf "$out"
    mkdir -p "$out"
    cp "$list" "$out/list"
    rc=0
    # shellcheck disable=SC2016 # expanded inside the namespaces
    enter private "
        eval \"\$(scripts/test-env.sh)\"
        . scripts/tier-lib.sh
        $RESET_PODMAN
        podman version --format '{{.Client.Version}}' > $(q "$out/version")
        rc=0
        run_binaries $(q "$out/list") $(q "$out/result") $args || rc=\$?
        $RESET_PODMAN
        exit \$rc
    " || rc=$?
    [ -s "$out/result" ] || die "the tests did not run to the end"
    echo "$(cat "$out/result") $(cat "$out/version")" > "$result"
    cp "$out/result.skipped" "$result.skipped"
    exit "$rc"
    ;;
*)
    die "usage: $0 prepare | run LIST RESULT"
    ;;
esac
