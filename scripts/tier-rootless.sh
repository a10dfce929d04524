#!/usr/bin/env bash
# Usage: scripts/tier-rootless.sh LIST RESULT [LIBTEST ARGS...]
#
# Tier "rootless": the real-component test executables of LIST ("name path"
# lines, built by root) run by rootless podman as an unprivileged test user
# that this script creates, prepares and removes again:
#   - subuid/subgid ranges, /run/user/UID (0700) as XDG_RUNTIME_DIR;
#   - /dev/net/tun usable by the user (slirp4netns), mode restored after;
#   - the user's containers.conf (nproc capped at pid_max: rootless podman
#     refuses more) and storage.conf (overlay, else podman picks vfs);
#   - the test registry image copied from root's store into the user's.
# Tests that need root (ROOT_ONLY_TESTS in tier-lib.sh) are skipped by name.
# Writes "PASSED FAILED VERSION" to RESULT. Run as root after
# `eval "$(scripts/test-env.sh)"` (uidmap and slirp4netns are installed here).
#
# Env: DRCACHE_TIER_USER (default drtier): the test user; it must not exist.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tier-lib.sh
. scripts/tier-lib.sh

TEST_USER=${DRCACHE_TIER_USER:-drtier}

log() { printf 'tier-rootless: [%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -ge 2 ] || die "usage: $0 LIST RESULT [LIBTEST ARGS...]"
list=$1 result=$2
shift 2
[ "$(id -u)" -eq 0 ] || die "must run as root"
: "${DRCACHE_TEST_IMAGE:?run eval \"\$(scripts/test-env.sh)\" first}"
: "${CONTAINERS_CONF:?run eval \"\$(scripts/test-env.sh)\" first}"

missing=()
for p in uidmap slirp4netns; do
    dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2 || {
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}" >&2
    }
fi

if id "$TEST_USER" >/dev/null 2>&1; then
    die "user $TEST_USER exists already (left by an interrupted run? remove it with userdel -r $TEST_USER)"
fi

tun_mode=
uid=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    set +e
    if [ -n "$uid" ]; then
        as_user podman rm --all --force --time 0 >/dev/null 2>&1
        as_user podman system reset --force >/dev/null 2>&1
        # Whatever the user still runs (podman's pause process, conmon,
        # slirp4netns, rootlessport) ends with it, by pid.
        local pids
        pids=$(ps -o pid= -u "$uid" 2>/dev/null)
        # shellcheck disable=SC2086 # one pid a word
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
        sleep 0.2
        userdel -r "$TEST_USER" 2>/dev/null
        rm -rf "/run/user/$uid"
    fi
    [ -n "$tun_mode" ] && chmod "$tun_mode" /dev/net/tun
}
trap cleanup EXIT

log "creating user $TEST_USER"
useradd --create-home --shell /bin/sh "$TEST_USER"
uid=$(id -u "$TEST_USER")
home=$(getent passwd "$TEST_USER" | cut -d: -f6)
# Debian's useradd adds the ranges; add them where it does not.
grep -q "^$TEST_USER:" /etc/subuid || usermod --add-subuids 200000-265535 "$TEST_USER"
grep -q "^$TEST_USER:" /etc/subgid || usermod --add-subgids 200000-265535 "$TEST_USER"

runtime=/run/user/$uid
mkdir -p "$runtime"
chown "$TEST_USER:" "$runtime"
chmod 700 "$runtime"

tun_mode=$(stat -c '%a' /dev/net/tun)
chmod 666 /dev/net/tun

# The same podman settings as root's test containers.conf (nproc is capped
# at pid_max there), owned by the user; overlay storage. Both are named in
# the environment: tests run drcache with XDG_CONFIG_HOME pointing nowhere.
conf_dir=$home/.config/containers
mkdir -p "$conf_dir"
cp "$CONTAINERS_CONF" "$conf_dir/containers.conf"
printf '[storage]\ndriver = "overlay"\n' > "$conf_dir/storage.conf"
chown -R "$TEST_USER:" "$home/.config"

as_user() {
    runuser -u "$TEST_USER" -- env -i HOME="$home" USER="$TEST_USER" LOGNAME="$TEST_USER" \
        XDG_RUNTIME_DIR="$runtime" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
        CI="${CI:-}" CONTAINERS_CONF="$conf_dir/containers.conf" \
        CONTAINERS_STORAGE_CONF="$conf_dir/storage.conf" \
        CONTAINERS_REGISTRIES_CONF="$CONTAINERS_REGISTRIES_CONF" \
        DRCACHE_TEST_IMAGE="$DRCACHE_TEST_IMAGE" DRCACHE_TEST_ROOTLESS_TIER=1 \
        "$@"
}

log "copying $DRCACHE_TEST_IMAGE into the user's store"
podman save "$DRCACHE_TEST_IMAGE" | as_user podman load -q >/dev/null
driver=$(as_user podman info --format '{{.Store.GraphDriverName}}')
[ "$driver" = overlay ] || die "rootless podman uses storage driver $driver, not overlay"

# The executables root built, and drcache, must be readable and executable
# by the user, down their whole path.
while read -r _ path; do
    for f in "$path" "$(dirname "$path")/../drcache"; do
        chmod o+rx "$f"
        d=$(dirname "$(readlink -f "$f")")
        while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
    done
done < "$list"

version=$(as_user podman version --format '{{.Client.Version}}')
log "podman $version rootless ($(as_user podman info --format '{{.Host.NetworkBackend}}'))"
mapfile -t skips < <(skip_args)
rc=0
TEST_RUNNER=(as_user)
run_binaries "$list" "$result.counts" "${skips[@]}" "$@" || rc=$?
echo "$(cat "$result.counts") $version" > "$result"
mv -f "$result.counts.skipped" "$result.skipped"
rm -f "$result.counts"
exit "$rc"
