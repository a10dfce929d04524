#!/usr/bin/env bash
# Usage: scripts/firewalld-ns.sh CMD [ARGS...]
#
# Runs CMD next to a real firewalld daemon that lives in a private mount and
# network namespace, so tests can drive firewall-cmd for real without ever
# touching the machine's firewall, its /etc/firewalld or its network namespace.
# Each invocation starts from a fresh scratch copy of /etc/firewalld plus the
# "libvirt" zone ($DRCACHE_TEST_LIBVIRT_ZONE, else
# ${DRCACHE_TEST_DIR:-/var/tmp/drcache-test}/libvirt.xml; see test-env.sh).
# Exits with CMD's exit status (1 if the namespace could not be set up).
#
# Env: FIREWALLD_NS_TIMEOUT  seconds to wait for firewalld (default 30);
#      FIREWALLD_NS_DEBUG=1   trace with timestamps; firewalld logs are printed
#                             on startup failure.
set -euo pipefail
if [ -n "${FIREWALLD_NS_DEBUG:-}" ]; then PS4='+ ${EPOCHREALTIME} '; set -x; fi

log() { printf 'firewalld-ns: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------ outside part
# The script re-runs itself inside the namespaces as
#   firewalld-ns.sh __inside__ SCRATCH CMD...
# (argv, not env, so that the marker cannot leak into other processes).
if [ "${1:-}" != __inside__ ]; then
    [ $# -gt 0 ] || die "usage: $0 CMD [ARGS...]"
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    zone=${DRCACHE_TEST_LIBVIRT_ZONE:-${DRCACHE_TEST_DIR:-/var/tmp/drcache-test}/libvirt.xml}
    [ -s "$zone" ] || die "libvirt zone file $zone missing: run scripts/test-env.sh first"
    for tool in firewalld firewall-cmd dbus-daemon ip unshare; do
        command -v "$tool" >/dev/null || die "$tool not found: run scripts/test-env.sh first"
    done

    scratch=$(mktemp -d "${TMPDIR:-/tmp}/firewalld-ns.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    # Copy, never bind, the host config: firewalld writes --permanent changes.
    cp -a /etc/firewalld "$scratch/etc-firewalld"
    mkdir -p "$scratch/etc-firewalld/zones"
    cp "$zone" "$scratch/etc-firewalld/zones/libvirt.xml"

    # The mount points must exist before we can mount tmpfs over them; these
    # empty directories are the only thing created outside the namespace.
    mkdir -p /run/dbus /run/firewalld

    # Not exec: the trap removes the scratch dir after the namespace is gone.
    rc=0
    self=$(readlink -f "${BASH_SOURCE[0]}")
    unshare --mount --net --fork -- bash "$self" __inside__ "$scratch" "$@" || rc=$?
    exit "$rc"
fi

# ------------------------------------------------------------- inside part
[ $# -ge 3 ] || die "internal: usage: $0 __inside__ SCRATCH CMD..."
scratch=$2
shift 2
# Safety net before any mount: our grandparent is the outer part of this
# script (parent: unshare), which lives in the caller's namespaces; ours must
# differ in both. A direct call of __inside__ from the host fails here, as
# does anything unreadable (/proc/1/ns may be). Checked against the process
# tree, not PID 1: the machine's namespaces are the caller's ones.
grandparent=$(awk '/^PPid:/ { print $2 }' "/proc/$PPID/status" 2>/dev/null || true)
ns_differs() { # NS: ours vs the grandparent's
    local ours theirs
    ours=$(readlink "/proc/self/ns/$1" 2>/dev/null) || return 1
    theirs=$(readlink "/proc/$grandparent/ns/$1" 2>/dev/null) || return 1
    [ -n "$ours" ] && [ -n "$theirs" ] && [ "$ours" != "$theirs" ]
}
if [ -z "$grandparent" ] || ! ns_differs net || ! ns_differs mnt; then
    die "internal: not in a private mount+network namespace, refusing to continue"
fi
[ -d "$scratch/etc-firewalld" ] || die "internal: no scratch config in $scratch"

# Keep every mount below private to this namespace (the host's / may be shared).
mount --make-rprivate /
mount --bind "$scratch/etc-firewalld" /etc/firewalld
# Fresh, empty runtime dirs: no sockets/pids of the host or of earlier runs.
mount -t tmpfs -o mode=0755 tmpfs /run/dbus
mount -t tmpfs -o mode=0755 tmpfs /run/firewalld
# No D-Bus activation: it would start polkitd, which daemonizes away from us
# (a zombie of PID 1 once our bus goes). Without polkit firewalld falls back
# to "caller is uid 0", which is what the tests use.
for d in /usr/share/dbus-1/system-services /usr/local/share/dbus-1/system-services \
         /lib/dbus-1/system-services; do
    if [ -d "$d" ] && [ ! -L "$d" ]; then
        mount -t tmpfs -o ro,mode=0755 tmpfs "$d"
    fi
done
ip link set lo up

fw_pid='' dbus_pid=''
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    # Stop and reap both daemons ourselves: daemons left to be reparented to
    # PID 1 become zombies where PID 1 is not a reaping init.
    local pid
    for pid in $fw_pid $dbus_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

startup_failed() {
    cat "$scratch/dbus.err" "$scratch/firewalld.out" "$scratch/firewalld.log" >&2 2>/dev/null || true
    die "$1"
}
timeout=${FIREWALLD_NS_TIMEOUT:-30}
deadline=$((SECONDS + timeout))
check_deadline() {
    [ "$SECONDS" -lt "$deadline" ] || startup_failed "firewalld not running after ${timeout}s"
}

# Own system bus. --nofork (not --fork) keeps it our child, so it is reaped;
# --print-address is written once the bus accepts connections.
dbus-daemon --system --nofork --nopidfile --print-address=3 \
    3>"$scratch/dbus.address" 2>"$scratch/dbus.err" &
dbus_pid=$!
until [ -s "$scratch/dbus.address" ]; do
    kill -0 "$dbus_pid" 2>/dev/null || startup_failed "dbus-daemon exited during startup"
    check_deadline
    sleep 0.05
done

# --log-file: keep firewalld's log out of the host's /var/log/firewalld.
firewalld --nofork --nopid --log-file "$scratch/firewalld.log" \
    >"$scratch/firewalld.out" 2>&1 &
fw_pid=$!
until [ "$(firewall-cmd --state 2>/dev/null || true)" = running ]; do
    kill -0 "$fw_pid" 2>/dev/null || startup_failed "firewalld exited during startup"
    check_deadline
    sleep 0.1
done

rc=0
"$@" || rc=$?
exit "$rc"
