#!/usr/bin/env bash
# The cache set-up of the older helper that drcache replaces, step by step and
# one podman call after the other, with no readiness wait. scripts/bench runs
# it side by side with `drcache start`; it is a yardstick, not a tool.
#
# Usage: bench-baseline.sh PREFIX IMAGE UPSTREAM_URL FIRST_PORT
#   caches PREFIX-quay-io ... PREFIX-gcr-io on FIRST_PORT ... FIRST_PORT+4,
#   each proxying UPSTREAM_URL. $PODMAN (default: podman) is the executable.
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: $0 PREFIX IMAGE UPSTREAM_URL FIRST_PORT" >&2; exit 2; }
prefix=$1 image=$2 upstream=$3 port=$4
podman=${PODMAN:-podman}
# A label name that Go templates can address as .Config.Labels.NAME.
hash_label=drbase_hash

"$podman" info >/dev/null

for registry in quay.io docker.io registry.k8s.io ghcr.io gcr.io; do
    name=$prefix-${registry//./-}
    args=(--name "$name" --publish "$port:5000" --volume "$name:/var/lib/registry"
          --env "REGISTRY_PROXY_REMOTEURL=$upstream"
          --env REGISTRY_LOG_LEVEL=info --env OTEL_TRACES_EXPORTER=none)
    hash=$(printf '%s\n' "$image" "${args[@]}" | sha256sum)
    hash=${hash:0:16}
    port=$((port + 1))

    if "$podman" container exists "$name"; then
        running=$("$podman" inspect --format '{{.State.Running}}' "$name")
        if [ "$running" = true ]; then
            current=$("$podman" inspect --format "{{.Config.Labels.$hash_label}}" "$name")
            [ "$current" = "$hash" ] && continue
        fi
        "$podman" rm --force "$name" >/dev/null
    fi
    "$podman" run --detach "${args[@]}" --label "$hash_label=$hash" "$image" >/dev/null
done
