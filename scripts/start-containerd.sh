#!/usr/bin/env bash
# Usage: scripts/start-containerd.sh DIR
#
# Starts a private containerd for tests (e.g. to pull through a drcache cache
# as a cluster node would), entirely under DIR: config DIR/config.toml,
# root DIR/root, state DIR/state, socket DIR/containerd.sock, log
# DIR/containerd.log, pid DIR/containerd.pid. The CRI plugin is disabled (no
# kubelet here). Waits until `ctr --address DIR/containerd.sock version`
# answers, then prints the socket path on stdout. If a containerd from an
# earlier call still answers on DIR, just prints the socket again.
#
# Stop it with:  kill "$(cat DIR/containerd.pid)"
# Env: CONTAINERD_START_TIMEOUT  seconds to wait (default 30).
set -euo pipefail

log() { printf 'start-containerd: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -eq 1 ] || die "usage: $0 DIR"
[ "$(id -u)" -eq 0 ] || die "must run as root"
for tool in containerd ctr; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/test-env.sh first"
done

dir=$(realpath -m -- "$1")
sock=$dir/containerd.sock
pidfile=$dir/containerd.pid
logfile=$dir/containerd.log

# Unix socket paths are limited to 107 bytes (sun_path); the ttrpc socket
# adds ".ttrpc".
[ ${#sock} -le 101 ] || die "socket path too long (${#sock} > 101 bytes): $sock"
mkdir -p "$dir"

answers() { ctr --address "$sock" --timeout 2s version >/dev/null 2>&1; }

if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && answers; then
    printf '%s\n' "$sock"
    exit 0
fi

# Every path containerd would otherwise take from /var/lib, /run/containerd or
# /opt/containerd points into DIR, so it never touches the host's containerd.
cat > "$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
EOF

rm -f "$sock" "$sock.ttrpc" "$pidfile"
# All fds redirected: a caller capturing our stdout with $(...) must not wait
# for the daemon to close the pipe.
containerd --config "$dir/config.toml" </dev/null >"$logfile" 2>&1 &
pid=$!
echo "$pid" > "$pidfile"

timeout=${CONTAINERD_START_TIMEOUT:-30}
deadline=$((SECONDS + timeout))
until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 20 "$logfile" >&2 || true
        die "containerd exited during startup (log: $logfile)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        kill "$pid" 2>/dev/null || true
        tail -n 20 "$logfile" >&2 || true
        die "containerd did not answer within ${timeout}s (log: $logfile)"
    fi
    sleep 0.05
done

printf '%s\n' "$sock"
